"""The folds file: a :class:`~predictd_core.crossval.folds.Folds` as JSON, written atomically and checked when read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from predictd_core.crossval.folds import Folds, _grid, _starved
from predictd_core.errors import PredictdInputError
from predictd_core.io import read_bytes, write_atomic
from predictd_core.model.factors import Layout
from predictd_core.tracks.table import ExperimentNamesError, split_experiment_names

FORMAT = "predictd-folds/1"


def save_folds(folds: Folds, path: str | Path) -> None:
    """Write ``folds`` as JSON to ``path`` (local or a URL), atomically (readers see the old file or the
    whole new one)."""
    document = {
        "format": FORMAT,
        "n_test": folds.n_test,
        "n_valid": folds.n_valid,
        "seed": folds.seed,
        "tries": folds.tries,
        "experiments": list(folds.experiments),
        "test_fold": folds.test_fold.tolist(),
        "valid_fold": folds.valid_fold.tolist(),
    }
    write_atomic(path, (json.dumps(document, separators=(",", ":")) + "\n").encode())


def load_folds(path: str | Path, layout: Layout | None = None) -> Folds:
    """Read a folds file written by :func:`save_folds` (local or at a URL) and check it.

    Parameters
    ----------
    layout : Layout, optional
        The store the folds will be used with; its experiments must be the file's, in order.

    Raises
    ------
    PredictdInputError
        Naming the file and the field: missing file, not JSON, another format, a value of the wrong
        type or range, folds that do not partition the experiments, an empty fold, a model left
        without training data for a cell type or assay, or (with ``layout``) another compendium.
    """
    source = str(path)
    try:
        document = json.loads(read_bytes(path))
    except FileNotFoundError:
        raise PredictdInputError(source, "file", "folds file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PredictdInputError(source, "content", f"not a JSON folds file: {error}") from None
    if not isinstance(document, dict):
        raise PredictdInputError(source, "content", "expected a JSON object")
    if document.get("format") != FORMAT:
        raise PredictdInputError(source, "format", f"expected {FORMAT!r}, got {document.get('format')!r}")

    def integer(field: str, low: int) -> int:
        value = document.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise PredictdInputError(source, field, f"expected an integer >= {low}, got {value!r}")
        return value

    n_test, n_valid, tries = integer("n_test", 1), integer("n_valid", 2), integer("tries", 1)
    seed = document.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PredictdInputError(source, "seed", f"expected an integer, got {seed!r}")

    experiments = document.get("experiments")
    if not isinstance(experiments, list) or not experiments:
        raise PredictdInputError(source, "experiments", "expected a non-empty list of 'CELL:ASSAY' names")
    try:
        split_experiment_names(experiments)
    except ExperimentNamesError as error:
        field = "experiments" if error.index is None else f"experiments[{error.index}]"
        raise PredictdInputError(source, field, str(error)) from None
    n = len(experiments)

    test_fold = _int_array(source, "test_fold", document.get("test_fold"), (n,), -1, n_test)
    valid_fold = _int_array(source, "valid_fold", document.get("valid_fold"), (n_test, n), -1, n_valid)
    if n_test == 1 and (test_fold != -1).any():
        raise PredictdInputError(source, "test_fold", "a single test fold holds no experiment (the holdout targets "
                                 "are its test set): every entry must be -1")
    empty = sorted(set(range(n_test)) - set(test_fold.tolist())) if n_test > 1 else []
    if empty:
        raise PredictdInputError(source, "test_fold", f"test fold {empty[0]} is empty")
    for i in range(n_test):
        should_be_out = (test_fold == i) | (test_fold == -1)
        wrong = np.flatnonzero(should_be_out != (valid_fold[i] == -1))
        if wrong.size and n_test > 1:  # one test fold: a -1 is a pinned experiment, any entry is consistent
            raise PredictdInputError(source, f"valid_fold[{i}]",
                                     f"{experiments[wrong[0]]} must be -1 exactly when it is in test fold {i} or "
                                     f"pinned (test fold -1); the validation folds must partition the rest")
        empty = sorted(set(range(n_valid)) - set(valid_fold[i].tolist()))
        if empty:
            raise PredictdInputError(source, f"valid_fold[{i}]", f"validation fold {empty[0]} is empty")

    cells, assays, cell_of, assay_of = _grid(experiments)
    problems = _starved(cell_of, assay_of, len(cells), len(assays), test_fold, valid_fold, n_valid)
    if problems:
        i, j, axis, g = problems[0]
        name = cells[g] if axis == "cell type" else assays[g]
        raise PredictdInputError(source, "valid_fold", f"model (test {i}, valid {j}) has no training experiment "
                                 f"for {axis} {name}; every model must keep one ({len(problems)} such gap(s))")

    if layout is not None:
        expected = list(layout.column_names())
        if expected != experiments:
            raise PredictdInputError(source, "experiments",
                                     f"made for another compendium: the store has {len(expected)} experiments "
                                     f"({', '.join(expected[:3])}, ...), the file {n} "
                                     f"({', '.join(experiments[:3])}, ...); make the folds again for this store")
    return Folds(tuple(experiments), test_fold, valid_fold, n_test, n_valid, seed, tries)


def _int_array(source: str, field: str, value, shape: tuple[int, ...], low: int, high: int) -> np.ndarray:
    """``value`` as an int array of ``shape`` with entries in ``[low, high)``, or PredictdInputError."""
    try:
        array = np.array(value, dtype=object)
        ok = array.shape == shape and all(isinstance(v, int) and not isinstance(v, bool) for v in array.ravel())
    except ValueError:  # ragged nesting
        ok = False
    if not ok:
        raise PredictdInputError(source, field, f"expected integers in an array of shape {shape}")
    array = array.astype(np.int64)
    bad = (array < low) | (array >= high)
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        raise PredictdInputError(source, field, f"entry {list(where)} is {int(array[where])}; expected "
                                 f"{low} to {high - 1}")
    return array
