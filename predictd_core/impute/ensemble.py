"""Ensemble imputation: average (arcsinh) the predictions of several fitted models, pair by pair.

PREDICTD's protocol: an observed experiment is imputed by the models whose test fold holds it -- they
never saw it, so its imputation is out of sample and can be scored -- and a pair that was never
measured (or that no model held out) by every model. Each model solves its own genome factors per
bin from the experiments it was allowed to see (training and validation, never its test fold). Those
solves and the predictions are linear in a bin's signal, so every member's solve comes from one product
of the chunk, and the average of their predictions from one more (:func:`ensemble_chunk`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from predictd_core.model.factors import CellAssayFactors, Layout
from predictd_core.model.normal_equations import ridge_penalty, solution_operator, with_bias_column
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
    trained_columns : ndarray of int, optional
        Store columns its C and A were fitted on (None: all of ``input_columns``). Its validation tracks
        are inputs it never trained on.
    """

    name: str
    factors: CellAssayFactors
    input_columns: np.ndarray
    trained_columns: np.ndarray | None = None

    def trained_on(self, columns: np.ndarray) -> np.ndarray:
        """Whether the member's C and A were fitted on each of ``columns`` (bool, same shape)."""
        trained = self.input_columns if self.trained_columns is None else self.trained_columns
        return np.isin(columns, trained)


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

    Each member's ridge solve ``[G b_i] = (y - o) D (D'D + P)^-1`` and prediction ``[G b_i 1] [Zo' ; 1 ; oo]``
    are linear in the bin's signal ``y``, and so is their average: for bins that observe every input, the
    members' solutions come from one product of the chunk with their solution operators side by side, and
    the pairs' averages from one product of those with the members' output designs stacked and weighted
    (or, when that is fewer operations, from one product of the chunk with the two composed). The offsets
    enter as a constant row, so the chunk is read once and never copied per member. Bins missing some input
    are solved afterwards, member by member, as :func:`~predictd_core.solvers.als.genome_step` solves them.

    The products run in the chunk's precision: float32 for the store's float32 chunks (the imputations are
    written as float32; each member's operators are built in float64, then cast), float64 for a float64
    chunk.

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
        float64 for a float64 chunk, else float32.
    spread : ndarray of that shape, or None
        Population standard deviation over the pair's members (0 for a single member).
    """
    dtype = np.float64 if Y.dtype == np.float64 else np.float32
    Y = Y.astype(dtype, copy=False)
    with _small_solves():
        maps = _ensemble_maps(ensemble, pairs)
    solve, outputs = (operator.astype(dtype, copy=False) for operator in _stacked_operators(maps))
    mean = np.empty((Y.shape[0], maps.counts.size), dtype)
    if _composing_is_cheaper(Y.shape[0], maps.inputs.size, solve.shape[1], maps.counts.size):
        holey = _impute_composed(Y, maps.inputs, solve, outputs, mean)
    else:
        holey = _impute_stacked(Y, maps.inputs, solve, outputs, mean)
    with _small_solves():
        solutions = _holey_solutions(Y, holey, maps, ensemble.ridge)
    if holey.size:
        width = solutions.shape[1]
        mean[holey] = solutions.astype(dtype) @ outputs[:width] + maps.constant.astype(dtype)
    if not with_spread:
        return mean, None
    return mean, _spread(Y, maps, solve, mean, holey, solutions)


def _small_solves():
    """BLAS on one thread while the members' small systems are solved (inverses of (K+1) x (K+1) Gram matrices,
    one per member and per pattern of holes): threads gain nothing on them, and on a machine whose cores
    are busy every threaded LAPACK call waits for its threads to be scheduled (measured here: 24 ms per
    101 x 101 inverse instead of 0.3 ms)."""
    return threadpool_limits(1, user_api="blas")


# Rows of the chunk per product: the gathered inputs and the members' solutions of a block stay a few MB,
# and products of this height run as fast per row as the whole chunk's.
ROW_BLOCK = 4096
# Rows per block of the spread: a member's predictions of a block for the Roadmap grid's 3,048 pairs (3 MB)
# stay in cache while they become squared deviations.
SPREAD_ROWS = 256


@dataclass(frozen=True)
class _MemberMaps:
    """One member's linear maps, for the requested pairs.

    ``positions``: its input columns among the ensemble's inputs; ``Z``, ``offset``: its input design;
    ``solver``: ``[Z 1] ([Z 1]'[Z 1] + P)^-1``, which takes a bin's signal less offsets to ``[G b_i]``;
    ``shift``: ``offset @ solver``, what the offsets would add to ``[G b_i]`` were they left in the signal;
    ``used``: the requested pairs it averages into; ``outputs``: ``[Zo' ; 1]`` of those pairs;
    ``out_offset``: their offsets.
    """

    positions: np.ndarray
    Z: np.ndarray
    offset: np.ndarray
    solver: np.ndarray
    shift: np.ndarray
    used: np.ndarray
    outputs: np.ndarray
    out_offset: np.ndarray


@dataclass(frozen=True)
class _EnsembleMaps:
    """The members that impute some requested pair, over ``inputs`` (the union of their input columns,
    sorted); ``counts``: members per pair; ``constant``: the pairs' average offsets (a bin's mean when every
    member's ``[G b_i]`` is 0)."""

    inputs: np.ndarray
    members: tuple[_MemberMaps, ...]
    counts: np.ndarray
    constant: np.ndarray


def _ensemble_maps(ensemble: Ensemble, pairs: np.ndarray | None) -> _EnsembleMaps:
    """Every member's maps for ``pairs`` (default all); members that average no requested pair are left out."""
    layout = ensemble.layout
    cells, assays = layout.all_pairs()
    weights = ensemble.weights
    if pairs is not None:
        cells, assays, weights = cells[pairs], assays[pairs], weights[:, pairs]
    counts = weights.sum(axis=0)
    chosen = [(member, used) for member, used in zip(ensemble.members, weights) if used.any()]
    inputs = np.unique(np.concatenate([np.zeros(0, np.int64)] + [member.input_columns for member, _ in chosen]))
    constant, members = np.zeros(counts.size), []
    for member, used in chosen:
        columns, factors = member.input_columns, member.factors
        Z, offset = factors.design(layout.cell_of[columns], layout.assay_of[columns])
        solver = solution_operator(with_bias_column(Z), ridge_penalty(Z.shape[1], ensemble.ridge, 0.0))
        Zo, out_offset = factors.design(cells[used], assays[used])
        constant[used] += out_offset / counts[used]
        members.append(_MemberMaps(np.searchsorted(inputs, columns), Z, offset, solver, offset @ solver, used,
                                   with_bias_column(Zo).T, out_offset))
    return _EnsembleMaps(inputs, tuple(members), counts, constant)


def _stacked_operators(maps: _EnsembleMaps) -> tuple[np.ndarray, np.ndarray]:
    """The members' solution operators side by side and their output designs stacked, float64.

    ``solve`` (n_inputs, S + 1): member m's ``solver`` in its block of columns, zero on the inputs it does
    not see, and a last column of ones, whose product with a bin's signal is NaN exactly where the bin
    misses an input. ``outputs`` (S + 1, n_pairs): member m's ``outputs`` over its pair counts in its block
    of rows, zero for pairs it does not average; the last row the constant that makes ``[Y solve, 1] @
    outputs`` the mean: the average offsets less what the offsets left in ``Y`` add.
    """
    width = sum(member.solver.shape[1] for member in maps.members)
    solve = np.zeros((maps.inputs.size, width + 1))
    solve[:, width] = 1.0
    outputs = np.zeros((width + 1, maps.counts.size))
    outputs[width] = maps.constant
    at = 0
    for member in maps.members:
        block = slice(at, at + member.solver.shape[1])
        solve[member.positions, block] = member.solver
        weighted = member.outputs / maps.counts[member.used]
        outputs[block, member.used] = weighted
        outputs[width, member.used] -= member.shift @ weighted
        at = block.stop
    return solve, outputs


def _composing_is_cheaper(n_bins: int, n_inputs: int, width: int, n_pairs: int) -> bool:
    """Whether the chunk's product with the composed map ``solve @ outputs`` (n_inputs x n_pairs, built for the
    chunk) takes fewer operations than its two products through the ``width`` stacked solutions: for one
    model the stacked path wins many times over, for tens of members the composed one."""
    stacked = n_bins * width * (n_inputs + n_pairs)
    composed = (n_bins + width) * n_inputs * n_pairs
    return composed < stacked


def _row_blocks(Y: np.ndarray, columns: np.ndarray, size: int | None = None):
    """``(first row, Y[rows, columns])`` for blocks of ``size`` (default ``ROW_BLOCK``) rows: views when
    ``columns`` are all of ``Y``'s (sorted and distinct, so in order), else gathered into one reused buffer."""
    size = size or ROW_BLOCK
    if columns.size == Y.shape[1]:
        for lo in range(0, Y.shape[0], size):
            yield lo, Y[lo:lo + size]
        return
    buffer = np.empty((min(size, Y.shape[0]), columns.size), Y.dtype)
    for lo in range(0, Y.shape[0], size):
        rows = Y[lo:lo + size]
        yield lo, np.take(rows, columns, axis=1, out=buffer[:rows.shape[0]], mode="clip")


def _impute_stacked(Y: np.ndarray, inputs: np.ndarray, solve: np.ndarray, outputs: np.ndarray, mean: np.ndarray
                    ) -> np.ndarray:
    """``mean = [Y solve, 1] @ outputs`` block by block; returns the rows missing some input (NaN in ``mean``)."""
    W = np.empty((min(ROW_BLOCK, Y.shape[0]), solve.shape[1]), mean.dtype)
    holey = []
    for lo, rows in _row_blocks(Y, inputs):
        block = np.matmul(rows, solve, out=W[:rows.shape[0]])
        holey.append(lo + np.flatnonzero(np.isnan(block[:, -1])))
        block[:, -1] = 1.0
        np.matmul(block, outputs, out=mean[lo:lo + rows.shape[0]])
    return np.concatenate(holey) if holey else np.zeros(0, dtype=np.int64)


def _impute_composed(Y: np.ndarray, inputs: np.ndarray, solve: np.ndarray, outputs: np.ndarray, mean: np.ndarray
                     ) -> np.ndarray:
    """``mean = Y (solve outputs) + constant`` block by block; returns the rows missing some input.

    The composed map is built in the chunk's precision: in float32 its sums over the members' solutions
    round as the chunk's own products do, at half the time of float64.
    """
    width = solve.shape[1] - 1
    composed = solve[:, :width] @ outputs[:width]
    constant = outputs[width]
    ones = np.ones(inputs.size, mean.dtype)
    holey = []
    for lo, rows in _row_blocks(Y, inputs):
        block = np.matmul(rows, composed, out=mean[lo:lo + rows.shape[0]])
        block += constant
        holey.append(lo + np.flatnonzero(np.isnan(rows @ ones)))
    return np.concatenate(holey) if holey else np.zeros(0, dtype=np.int64)


def _holey_solutions(Y: np.ndarray, rows: np.ndarray, maps: _EnsembleMaps, ridge: float) -> np.ndarray:
    """Every member's ``[G b_i]`` (side by side, float64) of the bins ``rows``, which miss some input: each
    bin's ridge on the inputs it has, 0 where it has none (:func:`~predictd_core.solvers.als.genome_step`)."""
    if rows.size == 0:
        return np.zeros((0, sum(member.solver.shape[1] for member in maps.members)))
    signal = np.take(Y[rows], maps.inputs, axis=1)
    return np.hstack([als.genome_step(signal[:, member.positions], member.Z, member.offset, ridge)[0]
                      for member in maps.members])


def _spread(Y: np.ndarray, maps: _EnsembleMaps, solve: np.ndarray, mean: np.ndarray, holey: np.ndarray,
            solutions: np.ndarray) -> np.ndarray:
    """Each pair's population standard deviation over its members, from their deviations from ``mean``
    (two passes: no cancellation of large squares in float32); exactly 0 for a pair of one member.

    Member by member, over blocks of ``SPREAD_ROWS`` rows, so that each member's predictions, deviations and
    squares stay in cache while they are made; the pairs a member does not average are computed too and
    masked out, which costs less than gathering and scattering the others' columns.
    """
    squares = np.zeros_like(mean)
    shifts = np.concatenate([member.shift for member in maps.members])
    shared = maps.counts > 1
    designs, masks = [], []
    for member in maps.members:
        # [Zo' ; 1 ; offsets less shift] on every requested pair: [G b_i + shift, 1] @ it is the prediction
        design = np.zeros((member.outputs.shape[0] + 1, maps.counts.size), mean.dtype)
        design[:-1, member.used] = member.outputs
        design[-1, member.used] = member.out_offset - member.shift @ member.outputs
        mine = member.used & shared
        designs.append(design)
        masks.append(None if mine.all() else mine.astype(mean.dtype))
    for lo, rows in _row_blocks(Y, maps.inputs, SPREAD_ROWS):
        hi = lo + rows.shape[0]
        W = rows @ solve  # [G b_i] with the offsets left in (+ shift), as the mean's products had them
        inside = slice(np.searchsorted(holey, lo), np.searchsorted(holey, hi))
        W[holey[inside] - lo, :shifts.size] = solutions[inside] + shifts
        W[:, -1] = 1.0
        deviation = np.empty((rows.shape[0], maps.counts.size), mean.dtype)
        at = 0
        for design, mask in zip(designs, masks):
            width = design.shape[0] - 1
            own = np.concatenate([W[:, at:at + width], W[:, -1:]], axis=1)
            np.matmul(own, design, out=deviation)
            deviation -= mean[lo:hi]
            deviation *= deviation
            if mask is not None:
                deviation *= mask
            squares[lo:hi] += deviation
            at += width
    return np.sqrt(squares / maps.counts, out=squares)


def left_out_chunk(Y: np.ndarray, ensemble: Ensemble, members: np.ndarray, columns: np.ndarray,
                   unseen_only: bool = False) -> np.ndarray:
    """What ``members`` would impute for each of the store ``columns`` had it not been measured.

    The mean over the members (a bool mask over ``ensemble.members``) of each column's prediction from
    genome factors solved without it (:func:`~predictd_core.solvers.als.left_out_predictions`); a member
    that does not take the column as an input predicts its pair as usual. C and A still saw a column the
    member trained on, and on a small grid they can carry much of it: on the training tracks of the pilot's
    Latin square cyclic-3 this left-out prediction has MSE1obs 3.1 where a model refitted without the track
    has 6.4 (``bench/tensor_left_out.py``).

    With ``unseen_only``, only the members whose C and A were fitted without the column are averaged
    (:meth:`EnsembleMember.trained_on`: those that validated on it, or never took it in), which is exactly
    how an unmeasured pair is imputed; NaN where every member trained on it.

    Returns
    -------
    ndarray of shape (n_bins, len(columns)), arcsinh, not clipped.
    """
    layout, columns = ensemble.layout, np.asarray(columns)
    total, count = np.zeros((Y.shape[0], columns.size)), np.zeros(columns.size)
    chosen = [member for member, used in zip(ensemble.members, members) if used]
    for member in chosen:
        counted = ~member.trained_on(columns) if unseen_only else np.ones(columns.size, dtype=bool)
        if not counted.any():
            continue
        inputs = member.input_columns
        position = {int(column): j for j, column in enumerate(inputs)}
        inside = np.array([int(column) in position for column in columns], dtype=bool)
        measured, unmeasured = inside & counted, ~inside & counted
        if measured.any():
            left_out = als.left_out_predictions(Y[:, inputs], member.factors, layout.cell_of[inputs],
                                                layout.assay_of[inputs], ensemble.ridge)
            total[:, measured] += left_out[:, [position[int(column)] for column in columns[measured]]]
        if unmeasured.any():
            outside = columns[unmeasured]
            total[:, unmeasured] += als.predict(Y[:, inputs], member.factors, layout.cell_of[inputs],
                                                layout.assay_of[inputs], layout.cell_of[outside],
                                                layout.assay_of[outside], ensemble.ridge)
        count += counted
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count
