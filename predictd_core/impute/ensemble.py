"""Ensemble imputation: average (arcsinh) the predictions of several fitted models, pair by pair.

PREDICTD's protocol: an observed experiment is imputed by the models whose test fold holds it -- they
never saw it, so its imputation is out of sample and can be scored -- and a pair that was never
measured (or that no model held out) by every model. Each model solves its own genome factors per
bin from the experiments it was allowed to see (training and validation, never its test fold), so
one chunk costs one ridge solve and one matrix product per model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictd_core.model.factors import CellAssayFactors, Layout
from predictd_core.solvers import als


@dataclass(frozen=True)
class EnsembleMember:
    """One fitted model as the ensemble uses it.

    Attributes
    ----------
    name : str
        e.g. ``"test0-valid3"``.
    factors : CellAssayFactors
    input_columns : ndarray of int
        Store columns whose signal feeds this model's per-bin genome-factor solve.
    """

    name: str
    factors: CellAssayFactors
    input_columns: np.ndarray


@dataclass(frozen=True)
class Ensemble:
    """Which models impute which (cell, assay) pair.

    Attributes
    ----------
    layout : Layout
        The store's grid; pairs are ``layout.all_pairs()`` (cell-major).
    ridge : float
        The genome-factor ridge (PREDICTD's ri2), shared by the members.
    members : tuple of EnsembleMember
    weights : ndarray of shape (n_members, n_pairs), bool
        ``weights[m, p]``: member ``m`` takes part in pair ``p``'s average. Every pair has one at least.
    """

    layout: Layout
    ridge: float
    members: tuple[EnsembleMember, ...]
    weights: np.ndarray

    def __post_init__(self) -> None:
        n_pairs = len(self.layout.cells) * len(self.layout.assays)
        if self.weights.shape != (len(self.members), n_pairs):
            raise ValueError(f"weights must be ({len(self.members)}, {n_pairs}), got {self.weights.shape}")
        if not self.weights.any(axis=0).all():
            raise ValueError("every pair needs at least one ensemble member")

    @property
    def n_pairs(self) -> int:
        return int(self.weights.shape[1])

    def pair_index(self, cell: int, assay: int) -> int:
        """Column of pair (cell, assay) in the ensemble's output (cell-major)."""
        return cell * len(self.layout.assays) + assay

    def members_of(self, cell: int, assay: int) -> list[EnsembleMember]:
        """The members averaged for pair (cell, assay)."""
        column = self.weights[:, self.pair_index(cell, assay)]
        return [member for member, used in zip(self.members, column) if used]

    def seen_columns(self, cell: int, assay: int) -> np.ndarray:
        """The store columns pair (cell, assay)'s members were allowed to see (sorted): its imputation's
        inputs, and so the baseline's and the refinement's."""
        return np.unique(np.concatenate([member.input_columns for member in self.members_of(cell, assay)]))


def ensemble_chunk(Y: np.ndarray, ensemble: Ensemble, with_spread: bool = False, pairs: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Ensemble imputation of one chunk for every pair of the grid (or for ``pairs``).

    Parameters
    ----------
    Y : ndarray of shape (n_bins, n_experiments)
        The chunk's stored signal (arcsinh, NaN = no data).
    with_spread : bool
        Also return the per-bin standard deviation of the averaged predictions.
    pairs : ndarray of int, optional
        Pair indices (:meth:`Ensemble.pair_index`) to impute, in this order; default every pair.

    Returns
    -------
    mean : ndarray of shape (n_bins, n_pairs or len(pairs)), arcsinh, not clipped
    spread : ndarray of that shape, or None
        Population standard deviation over the pair's members (0 for a single member).
    """
    cells, assays = ensemble.layout.all_pairs()
    weights = ensemble.weights
    if pairs is not None:
        cells, assays, weights = cells[pairs], assays[pairs], weights[:, pairs]
    shape = (Y.shape[0], weights.shape[1])
    total, squares = None, np.zeros(shape) if with_spread else None
    for member, used in zip(ensemble.members, weights):
        columns = member.input_columns
        prediction = als.predict(Y[:, columns], member.factors, ensemble.layout.cell_of[columns],
                                 ensemble.layout.assay_of[columns], cells[used], assays[used], ensemble.ridge)
        if squares is not None:
            squares[:, used] += np.square(prediction)
        if total is None and used.all():  # becomes the sum itself: no zeros and no pass to add them
            total = prediction
            continue
        if total is None:
            total = np.zeros(shape)
        if used.all():  # the common case (every pair a member's): no gather-scatter copies
            total += prediction
        else:
            total[:, used] += prediction
    counts = weights.sum(axis=0)
    mean = total if (counts == 1).all() else total / counts
    if squares is None:
        return mean, None
    # E[x^2] - E[x]^2 can dip below 0 by rounding when the members agree.
    return mean, np.sqrt(np.maximum(squares / counts - np.square(mean), 0.0))


def left_out_chunk(Y: np.ndarray, ensemble: Ensemble, members: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """What ``members`` would impute for each of the store ``columns`` had it not been measured.

    The mean over the members (a bool mask over ``ensemble.members``) of each column's prediction from
    genome factors solved without it (:func:`~predictd_core.solvers.als.left_out_predictions`); a member
    that does not take the column as an input predicts its pair as usual. For a measured track this is
    an out-of-sample imputation of the same kind as an unmeasured pair's, so the two can be compared
    with the track; C and A still saw it in training (one track among hundreds at Roadmap scale).

    Returns
    -------
    ndarray of shape (n_bins, len(columns)), arcsinh, not clipped.
    """
    layout, columns = ensemble.layout, np.asarray(columns)
    total = np.zeros((Y.shape[0], columns.size))
    chosen = [member for member, used in zip(ensemble.members, members) if used]
    for member in chosen:
        inputs = member.input_columns
        position = {int(column): j for j, column in enumerate(inputs)}
        inside = np.array([int(column) in position for column in columns], dtype=bool)
        if inside.any():
            left_out = als.left_out_predictions(Y[:, inputs], member.factors, layout.cell_of[inputs],
                                                layout.assay_of[inputs], ensemble.ridge)
            total[:, inside] += left_out[:, [position[int(column)] for column in columns[inside]]]
        if not inside.all():
            outside = columns[~inside]
            total[:, ~inside] += als.predict(Y[:, inputs], member.factors, layout.cell_of[inputs],
                                             layout.assay_of[inputs], layout.cell_of[outside],
                                             layout.assay_of[outside], ensemble.ridge)
    return total / len(chosen)
