"""The folds of a cross-validation: which observed experiments each model tests, validates on and trains on.

PREDICTD's scheme (``generate_folds.py``): the observed experiments are dealt into ``n_test`` test
folds (5), and for each test fold the remaining experiments are dealt again into ``n_valid``
validation folds (8). Model ``(i, j)`` trains on everything outside test fold ``i`` and validation
fold ``j``, stops early on validation fold ``j`` and is scored on test fold ``i``; the 8 models of
test fold ``i`` are averaged to impute its experiments (5 x 8 = 40 models in all).

With a single test fold (``n_test`` 1) no observed experiment is tested: the run's holdout targets are
the test set, as in a Latin-square hold-out, and the experiments are only dealt into validation folds.
Model ``(0, j)`` trains on everything outside validation fold ``j``, and the ``n_valid`` models are
averaged to impute every pair: PREDICTD's ensemble for one test fold.

A :class:`Folds` is one such assignment. :mod:`predictd_core.crossval.dealing` makes it (balanced, and
every model keeping training data for every cell type and assay) and extends it when the compendium
grows; :mod:`predictd_core.crossval.folds_file` writes and reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Sequence

import numpy as np


@dataclass(frozen=True, eq=False)  # eq below compares the arrays by value
class Folds:
    """A test x validation assignment of a compendium's observed experiments.

    Attributes
    ----------
    experiments : tuple of str
        ``"CELL:ASSAY"`` of every observed experiment, in store column order.
    test_fold : ndarray of shape (n_experiments,), int
        Test fold of each experiment, in ``[0, n_test)``; -1 where no model tests it: a pinned
        experiment, which every model trains on (see :mod:`predictd_core.crossval.dealing`), or with a
        single test fold (``n_test`` 1) every experiment, since the holdout targets are the test set.
    valid_fold : ndarray of shape (n_test, n_experiments), int
        ``valid_fold[i, e]``: the validation fold, in ``[0, n_valid)``, of experiment ``e`` among the
        experiments left after test fold ``i``; -1 where ``e`` is in test fold ``i`` or pinned.
        A pinned experiment is -1 in both arrays.
    n_test, n_valid : int
        Number of test folds (1: none of the experiments, the holdout targets are the test set) and
        of validation folds per test fold.
    seed, tries : int
        What :func:`~predictd_core.crossval.dealing.make_folds` was called with (same layout, seed and
        tries: same folds).
    """

    experiments: tuple[str, ...]
    test_fold: np.ndarray
    valid_fold: np.ndarray
    n_test: int
    n_valid: int
    seed: int
    tries: int

    def __post_init__(self) -> None:
        test = np.array(self.test_fold, dtype=np.int64)
        valid = np.array(self.valid_fold, dtype=np.int64)
        n = len(self.experiments)
        if test.shape != (n,) or valid.shape != (self.n_test, n):
            raise ValueError(f"expected test_fold of shape ({n},) and valid_fold of shape ({self.n_test}, {n}), "
                             f"got {test.shape} and {valid.shape}")
        test.flags.writeable = False
        valid.flags.writeable = False
        object.__setattr__(self, "experiments", tuple(self.experiments))
        object.__setattr__(self, "test_fold", test)
        object.__setattr__(self, "valid_fold", valid)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Folds):
            return NotImplemented
        same_scheme = (self.n_test, self.n_valid, self.seed, self.tries) == (other.n_test, other.n_valid, other.seed,
                                                                             other.tries)
        return (same_scheme and self.experiments == other.experiments
                and np.array_equal(self.test_fold, other.test_fold)
                and np.array_equal(self.valid_fold, other.valid_fold))

    __hash__ = None  # holds arrays: not hashable

    @property
    def pinned(self) -> np.ndarray:
        """Store columns that no model holds out (their cell type or assay has too few experiments)."""
        return np.flatnonzero((self.test_fold == -1) & (self.valid_fold == -1).all(axis=0))

    def models(self) -> list[tuple[int, int]]:
        """Every (test fold, validation fold) pair: one model each."""
        return list(product(range(self.n_test), range(self.n_valid)))

    def columns(self, test_fold: int, valid_fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Store columns of model ``(test_fold, valid_fold)``.

        Returns
        -------
        train, valid, test : ndarray of int
            Sorted, disjoint, together every experiment: ``test`` is test fold ``test_fold``,
            ``valid`` is validation fold ``valid_fold`` of the rest, ``train`` is everything else
            (pinned experiments included).
        """
        if not 0 <= test_fold < self.n_test or not 0 <= valid_fold < self.n_valid:
            raise IndexError(f"model ({test_fold}, {valid_fold}) is outside {self.n_test} test x "
                             f"{self.n_valid} validation folds")
        test = self.test_fold == test_fold
        valid = self.valid_fold[test_fold] == valid_fold
        return np.flatnonzero(~test & ~valid), np.flatnonzero(valid), np.flatnonzero(test)


def _grid(experiments: Sequence[str]) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Cell types and assays of ``"CELL:ASSAY"`` names (in order of first appearance) and each name's rows."""
    cells = list(dict.fromkeys(name.partition(":")[0] for name in experiments))
    assays = list(dict.fromkeys(name.partition(":")[2] for name in experiments))
    cell_index = {c: k for k, c in enumerate(cells)}
    assay_index = {a: k for k, a in enumerate(assays)}
    cell_of = np.array([cell_index[name.partition(":")[0]] for name in experiments], dtype=np.int64)
    assay_of = np.array([assay_index[name.partition(":")[2]] for name in experiments], dtype=np.int64)
    return cells, assays, cell_of, assay_of


def _starved(cell_of: np.ndarray, assay_of: np.ndarray, n_cells: int, n_assays: int, test_fold: np.ndarray,
             valid_fold: np.ndarray, n_valid: int) -> list[tuple[int, int, str, int]]:
    """Models left without a training experiment for an observed cell type or assay.

    Returns ``(test fold, validation fold, "cell type" or "assay", its index)`` for each gap.
    """
    problems = []
    for axis, group, n_groups in (("cell type", cell_of, n_cells), ("assay", assay_of, n_assays)):
        observed = np.bincount(group, minlength=n_groups) > 0
        for i in range(valid_fold.shape[0]):
            outside = test_fold != i
            left = np.bincount(group[outside], minlength=n_groups)
            held = valid_fold[i] >= 0
            per_valid = np.bincount(group[held] * n_valid + valid_fold[i, held], minlength=n_groups * n_valid)
            train = left[:, None] - per_valid.reshape(n_groups, n_valid)
            for g, j in zip(*np.nonzero(observed[:, None] & (train < 1))):
                problems.append((int(i), int(j), axis, int(g)))
    return problems
