"""Exact alternating least squares for PREDICTD's model, one read of the data per sweep.

Model, for bin i and experiment e = (c, a), on the arcsinh scale::

    y_hat[i, e] = mu + b_c[c] + b_a[a] + b_i[i] + sum_k C[c, k] A[a, k] G[i, k]

Objective over the observed training entries (NaN = not observed; an observed 0 is data)::

    J = sum (y - y_hat)^2 + ri2 sum_i |G_i|^2
        + rc sum_c N_c |C_c - m|^2 + ra sum_a N_a |A_a|^2 + rbc sum_c N_c b_c^2 + rba sum_a N_a b_a^2

where N_c (N_a) is the number of training entries of cell c (assay a): the scaled penalties act per
entry, as in PREDICTD's per-sample SGD (and Spark's ALS-WR "weighted lambda"); ri2 is PREDICTD's
phase-2 ridge on G. mu is the mean of the training entries and stays fixed.

Cell factors shrink toward their mean m (``cell_shrinkage="mean"``, the default) rather than toward 0
(PREDICTD, ``"zero"``, m = 0). A departure on purpose: shrinking to 0 pulls a poorly measured cell's
predictions toward the all-assay average of each bin, which erases the assay's own shape; shrinking
to the mean cell pulls them toward "this assay as in the other cells". m is the mean of the cell rows
weighted by their training entries N_c, the m that minimises J for the current C, updated before each
cell step (block coordinate descent on J with m as a block, so J still never increases; the plain mean
of the rows is not that minimiser when cells have unequal numbers of training experiments, and J
could then rise slightly near convergence).

A sweep, given (C, A, b_c, b_a):

1. **G step** (per chunk, closed form): every bin solves a ridge regression on the same design
   D = [Z 1], Z[e] = C[c_e] * A[a_e], so [G b_i] = (Y - offset) D (D'D + diag(ri2, ..., ri2, 0))^-1,
   one matrix product per chunk. Bins whose tracks have holes are grouped by their pattern of
   observed experiments, each pattern with its own small solve.
2. **Statistics** (same pass): sums over bins of G'G, G'1, G'b_i, 1'b_i and G'Y (second matrix
   product), plus training and validation squared errors. Holes inside observed training tracks are
   filled with the current prediction first (an EM step), so one design serves every bin and J
   still cannot increase.
3. **C, A and bias steps** (driver, no data): each cell row [C_c; b_c] solves a (K+1) system built
   from the statistics (see :func:`_row_equations`), then each assay row; repeated ``inner_iters`` times.

The ridge algebra of each row (penalty, solve, leverages) is :mod:`predictd_core.model.normal_equations`;
the loop of sweeps is :func:`predictd_core.solvers.als_fit.fit_als`. All functions here are pure numpy;
the engines only map them over chunks and add the results.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from predictd_core.model.factors import CellAssayFactors
from predictd_core.model.normal_equations import (
    NormalEquations, leverages, ridge_penalty, row_penalty, solve_rows, solve_shared_design, with_bias_column,
)
from predictd_core.model.settings import ModelSettings


def genome_step(Y: np.ndarray, Z: np.ndarray, offset: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge for every bin's genome factors and bias, C and A fixed.

    Parameters
    ----------
    Y : ndarray of shape (n_bins, n_experiments)
        Signal of the experiments used to fit (NaN = no data at that bin).
    Z : ndarray of shape (n_experiments, K)
        ``C[c_e] * A[a_e]`` for each of those experiments.
    offset : ndarray of shape (n_experiments,)
        ``mu + b_c[c_e] + b_a[a_e]``.
    ridge : float
        L2 penalty on G (the bias b_i is not penalised).

    Returns
    -------
    W : ndarray of shape (n_bins, K + 1)
        ``[G, b_i]``; zero for bins with no data at all.
    has_data : ndarray of shape (n_bins,), bool
        Bins with at least one observed experiment.
    """
    W, holey, seen = _fit_bins(np.subtract(Y, offset, dtype=np.float64), with_bias_column(Z), ridge)
    return W, _has_data(W.shape[0], holey, seen)


def _fit_bins(R: np.ndarray, design: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[G, b_i]`` of every bin from its offset-free signal ``R`` (n_bins, n_experiments), NaN = missing.

    Returns ``W`` (zero for bins with no data), the rows of the bins missing some experiment and,
    for those rows only, which experiments they have (bool, rows x n_experiments).
    """
    penalty = _genome_penalty(design, ridge)
    rhs = R @ design
    # The bias column of rhs is each bin's sum over experiments, NaN exactly where one is missing:
    # holes are found without a mask of the whole chunk, and complete chunks never build one.
    holey = np.flatnonzero(np.isnan(rhs[:, -1]))
    W = solve_shared_design(rhs, design, penalty)
    seen = ~np.isnan(R[holey])
    W[holey] = 0.0
    patterns, which = _distinct_rows(seen)
    for p, pattern in enumerate(patterns):
        rows, columns = holey[which == p], np.flatnonzero(pattern)
        if columns.size:
            W[rows] = solve_shared_design(R[np.ix_(rows, columns)] @ design[columns], design[columns], penalty)
    return W, holey, seen


def _genome_penalty(design: np.ndarray, ridge: float) -> np.ndarray:
    """The ridge on each column of ``[Z 1]``: ``ridge`` on G, none on the bias b_i."""
    return ridge_penalty(design.shape[1] - 1, ridge, 0.0)


def _distinct_rows(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a bool matrix and the index of each row among them.

    Rows are packed into bytes and compared as single keys: ``np.unique(axis=0)`` on a thousand bins
    with holes across 900 experiments takes longer than the whole G step.
    """
    packed = np.packbits(mask, axis=1)
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, which = np.unique(keys, return_index=True, return_inverse=True)
    return mask[first], which


def _has_data(n_bins: int, holey: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Bins with at least one observed experiment, from :func:`_fit_bins`'s holey rows."""
    has_data = np.ones(n_bins, dtype=bool)
    has_data[holey] = seen.any(axis=1)
    return has_data


class FieldwiseSum:
    """``a + b`` adds a dataclass field by field: the reduction every engine applies to chunk results."""

    def __add__(self, other):
        return type(self)(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass
class SweepStatistics(FieldwiseSum):
    """Everything the C, A and bias steps and the loss need from one pass; sums over chunks.

    ``n`` bins with training data; ``S = G'G``, ``g = G'1``, ``h = G'b_i``, ``sb = 1'b_i``;
    ``P = G'Y`` (K, n_train) and ``s = 1'Y`` (n_train,) over hole-filled training data;
    squared errors and entry counts for training (scalars) and validation (per experiment).
    """

    n: float
    S: np.ndarray
    g: np.ndarray
    h: np.ndarray
    sb: float
    P: np.ndarray
    s: np.ndarray
    train_sse: float
    train_count: float
    valid_sse: np.ndarray
    valid_count: np.ndarray


@dataclass(frozen=True)
class SweepInputs:
    """What every chunk needs for one sweep (broadcast once per sweep)."""

    factors: CellAssayFactors
    cell_of: np.ndarray
    assay_of: np.ndarray
    train_columns: np.ndarray
    valid_columns: np.ndarray
    ridge: float


def sweep_statistics(Y: np.ndarray, inputs: SweepInputs) -> SweepStatistics:
    """G step and sufficient statistics for one chunk (two matrix products).

    The chunk's training and validation columns are read once, into one float64 array of signal less
    offsets; everything after is a matrix product or works on cache-sized blocks of rows. A chunk
    whose training tracks have no holes builds no mask, fills nothing and solves one system.

    Parameters
    ----------
    Y : ndarray of shape (n_bins, n_experiments)
        The chunk, every store column.
    inputs : SweepInputs
    """
    f, n_train = inputs.factors, inputs.train_columns.size
    columns = np.concatenate([inputs.train_columns, inputs.valid_columns])
    Z, offset = f.design(inputs.cell_of[columns], inputs.assay_of[columns])
    design, ot = with_bias_column(Z), offset[:n_train]
    R = _centred_columns(Y, columns, offset)  # training then validation experiments: the chunk is read once
    Rt = R[:, :n_train]
    W, holey, seen = _fit_bins(Rt, design[:n_train], inputs.ridge)
    has_data = _has_data(R.shape[0], holey, seen)
    squares, absent = _squared_errors(R, W, design)
    # EM step: holes in training tracks take the prediction, so one design serves every bin
    Rt[holey] = np.where(seen, Rt[holey], W[holey] @ design[:n_train].T)

    K = W.shape[1] - 1
    G, b_i = W[:, :K], W[:, K]
    h, sb = G.T @ b_i, float(b_i.sum())
    Gx = W  # [G 1], the 1 on bins with data, over b_i (used up): G'R and 1'R in one product
    Gx[:, K] = has_data
    sums, gram = Gx.T @ Rt, Gx.T @ Gx
    n, g = float(has_data.sum()), gram[:K, K]
    return SweepStatistics(
        n=n, S=gram[:K, :K], g=g, h=h, sb=sb, P=sums[:K] + np.outer(g, ot), s=sums[K] + n * ot,
        train_sse=float(squares[:n_train].sum()), train_count=float(Rt.size - np.count_nonzero(~seen)),
        valid_sse=squares[n_train:], valid_count=R.shape[0] - absent[n_train:],
    )


def _centred_columns(Y: np.ndarray, columns: np.ndarray, offset: np.ndarray, block: int = 1024) -> np.ndarray:
    """``Y[:, columns] - offset`` in float64, reading the chunk once and writing the result once.

    Gathering a block of rows at a time keeps the gathered copy (in the chunk's dtype, float32 from
    the store) in cache instead of a chunk-sized temporary.
    """
    R = np.empty((Y.shape[0], columns.size))
    for lo in range(0, Y.shape[0], block):
        np.subtract(np.take(Y[lo:lo + block], columns, axis=1), offset, out=R[lo:lo + block])
    return R


def _squared_errors(R: np.ndarray, W: np.ndarray, design: np.ndarray, block: int = 512
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per experiment: the sum of squared residuals ``R - W design'`` and the number of missing entries.

    Blocks of rows: each block's predictions (one product) meet its signal while in cache, so no
    chunk-sized prediction or residual array is ever made.
    """
    squares, absent = np.zeros(R.shape[1]), np.zeros(R.shape[1])
    E = np.empty((min(block, R.shape[0]), R.shape[1]))
    for lo in range(0, R.shape[0], block):
        residual = np.matmul(W[lo:lo + block], design.T, out=E[:R.shape[0] - lo])
        residual -= R[lo:lo + block]
        block_squares = np.einsum("ij,ij->j", residual, residual)
        if np.isnan(block_squares).any():  # only blocks with missing entries pay for a mask
            missing = np.isnan(residual)
            residual[missing] = 0.0
            absent += missing.sum(axis=0)
            block_squares = np.einsum("ij,ij->j", residual, residual)
        squares += block_squares
    return squares, absent


def column_moments(Y: np.ndarray, _inputs=None) -> np.ndarray:
    """Per-column sum and count of observed entries of a chunk: array of shape (2, n_experiments)."""
    seen = ~np.isnan(Y)
    return np.stack([np.where(seen, Y, 0.0).sum(axis=0, dtype=np.float64), seen.sum(axis=0).astype(np.float64)])


@dataclass(frozen=True)
class ScaledPenalties:
    """Penalties as they enter J (already divided by rank x axis length where PREDICTD did)."""

    rc: float
    ra: float
    ri2: float
    rbc: float
    rba: float
    cell_shrinkage: str = "mean"

    @classmethod
    def from_settings(cls, settings: ModelSettings, rank: int, n_cells: int, n_assays: int) -> "ScaledPenalties":
        """The settings' penalties divided as PREDICTD's ``train_model.py`` did: rc / (K n_cells), ra / (K n_assays)."""
        p, K = settings.penalties, rank
        return cls(rc=p.rc / (K * n_cells), ra=p.ra / (K * n_assays), ri2=p.ri2, rbc=p.rbc, rba=p.rba,
                   cell_shrinkage=settings.cell_shrinkage)

    def cell_centre(self, C: np.ndarray, cell_entries: np.ndarray) -> np.ndarray:
        """m: the mean cell row weighted by training entries, or 0 for PREDICTD's penalty.

        Parameters
        ----------
        cell_entries : ndarray of shape (n_cells,)
            Training entries of each cell (or its training experiments: only the proportions
            matter); cells without any carry no weight.
        """
        if self.cell_shrinkage == "zero":
            return np.zeros(C.shape[1])
        return np.average(C, axis=0, weights=cell_entries)


def update_cell_assay(stats: SweepStatistics, inputs: SweepInputs, penalties: ScaledPenalties,
                      inner_iters: int) -> CellAssayFactors:
    """C, A and bias steps from the statistics alone: alternate cell rows and assay rows."""
    f = inputs.factors
    cells, assays = inputs.cell_of[inputs.train_columns], inputs.assay_of[inputs.train_columns]
    C, A, b_c, b_a = f.C.copy(), f.A.copy(), f.b_c.copy(), f.b_a.copy()
    per_cell = np.bincount(cells, minlength=C.shape[0])
    for _ in range(inner_iters):
        centre = penalties.cell_centre(C, per_cell)
        C, b_c = _solve_rows(stats, cells, C, b_c, A[assays], f.mu + b_a[assays], penalties.rc, penalties.rbc,
                             centre)
        A, b_a = _solve_rows(stats, assays, A, b_a, C[cells], f.mu + b_c[cells], penalties.ra, penalties.rba,
                             np.zeros(A.shape[1]))
    return CellAssayFactors(f.mu, C, A, b_c, b_a)


def _solve_rows(stats: SweepStatistics, own: np.ndarray, X: np.ndarray, b: np.ndarray, other: np.ndarray,
                other_offset: np.ndarray, lam: float, lam_bias: float, centre: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Solve each row r of one side (cells or assays), the other side fixed; rows with no training
    experiment keep their values.

    ``own`` is the row of each training experiment on this side, ``other`` and ``other_offset`` the
    other side's row and ``mu`` + bias of each; the equations are :func:`_row_equations`, the penalties
    ``lam N`` toward ``centre`` and ``lam_bias N`` toward 0.
    """
    return solve_rows(lambda r: _row_equations(stats, own == r, other, other_offset), np.unique(own), X, b, lam,
                      lam_bias, centre)


def _row_equations(stats: SweepStatistics, mine: np.ndarray, other: np.ndarray, other_offset: np.ndarray
                   ) -> NormalEquations:
    """The normal equations of one row from the statistics alone; ``mine`` marks its training experiments.

    For those experiments j, with u_j the other side's factor row and o_j = mu + its bias, the unknowns
    x = [X_r; b_r] minimise sum_j sum_i (y_ij - o_j - b_i - b_r - G_i.(u_j * X_r))^2, whose normal
    equations are

        [ S o (U'U)              (sum_j u_j) o g ] [X_r]   [ sum_j u_j o (P_j - o_j g - h) ]
        [ ((sum_j u_j) o g)'     n t             ] [b_r] = [ sum_j (s_j - n o_j - sb)      ]

    with U the stacked u_j (t of them, so N = n t entries) and o the elementwise product; the penalties,
    weighted by N, are added by :func:`~predictd_core.model.normal_equations.solve_rows`.
    """
    U, o, t = other[mine], other_offset[mine], int(mine.sum())
    K = U.shape[1]
    N = stats.n * t
    u_sum = U.sum(axis=0)
    gram = np.empty((K + 1, K + 1))
    gram[:K, :K] = stats.S * (U.T @ U)
    gram[:K, K] = gram[K, :K] = u_sum * stats.g
    gram[K, K] = N
    rhs = np.empty(K + 1)
    rhs[:K] = (U * stats.P[:, mine].T).sum(axis=0) - (o @ U) * stats.g - u_sum * stats.h
    rhs[K] = (stats.s[mine] - stats.n * o - stats.sb).sum()
    return NormalEquations(gram, rhs, N)


def objective(stats: SweepStatistics, inputs: SweepInputs, penalties: ScaledPenalties) -> float:
    """J for the factors the statistics were computed with (see the module docstring)."""
    f = inputs.factors
    cells, assays = inputs.cell_of[inputs.train_columns], inputs.assay_of[inputs.train_columns]
    n_cell = stats.n * np.bincount(cells, minlength=f.C.shape[0])
    n_assay = stats.n * np.bincount(assays, minlength=f.A.shape[0])
    centre = penalties.cell_centre(f.C, n_cell)
    cell_factors, cell_biases = row_penalty(n_cell, f.C, f.b_c, penalties.rc, penalties.rbc, centre)
    assay_factors, assay_biases = row_penalty(n_assay, f.A, f.b_a, penalties.ra, penalties.rba, 0.0)
    return float(stats.train_sse + penalties.ri2 * np.trace(stats.S)
                 + cell_factors + cell_biases + assay_factors + assay_biases)


def left_out_predictions(Y: np.ndarray, factors: CellAssayFactors, input_cells: np.ndarray,
                         input_assays: np.ndarray, ridge: float) -> np.ndarray:
    """Each input experiment's prediction from genome factors solved without it, C and A fixed.

    The G step is a ridge regression per bin, so leaving one observation out has a closed form: its
    left-out residual is the in-sample residual over ``1 - h``, with ``h`` its leverage in the bin's
    hat matrix ``D (D'D + penalty)^-1 D'``. One G step gives every input's out-of-sample prediction,
    which is what the imputation of an unmeasured pair is. An entry the bin does not observe was not
    in its solve: its prediction is the ordinary one. Where the entry was the bin's only observation
    (``h`` = 1), the bin has no data without it and the prediction is the offsets alone.

    Parameters
    ----------
    Y : ndarray of shape (n_bins, n_inputs)
        Observed signal of the input experiments (NaN = no data).
    input_cells, input_assays : ndarray of shape (n_inputs,)
        Grid rows of those experiments.

    Returns
    -------
    ndarray of shape (n_bins, n_inputs), arcsinh scale, not clipped.
    """
    Z, offset = factors.design(input_cells, input_assays)
    design = with_bias_column(Z)
    R = np.subtract(Y, offset, dtype=np.float64)
    W, holey, seen = _fit_bins(R, design, ridge)
    fitted = W @ design.T
    penalty = _genome_penalty(design, ridge)
    leverage = np.broadcast_to(leverages(design, penalty), R.shape).copy()
    patterns, which = _distinct_rows(seen)
    for p, pattern in enumerate(patterns):
        rows, columns = holey[which == p], np.flatnonzero(pattern)
        leverage[rows] = 0.0  # unobserved entries: not in the solve, nothing to leave out
        if columns.size:
            leverage[np.ix_(rows, columns)] = leverages(design[columns], penalty)
    with np.errstate(divide="ignore", invalid="ignore"):
        left_out = fitted - np.nan_to_num(R - fitted) * leverage / (1.0 - leverage)
    alone = leverage > 1.0 - 1e-9  # the bin's only observation: no data without it
    left_out[alone] = 0.0
    return left_out + offset


def predict(Y: np.ndarray, factors: CellAssayFactors, input_cells: np.ndarray, input_assays: np.ndarray,
            out_cells: np.ndarray, out_assays: np.ndarray, ridge: float) -> np.ndarray:
    """Impute a chunk: G step on the input experiments, then every requested (cell, assay) pair.

    Parameters
    ----------
    Y : ndarray of shape (n_bins, n_inputs)
        Observed signal of the input experiments (NaN = no data).
    input_cells, input_assays : ndarray of shape (n_inputs,)
        Grid rows of those experiments.
    out_cells, out_assays : ndarray of shape (n_pairs,)
        Grid rows of the pairs to predict.

    Returns
    -------
    ndarray of shape (n_bins, n_pairs), arcsinh scale, not clipped.
    """
    Zi, oi = factors.design(input_cells, input_assays)
    W, _ = genome_step(Y, Zi, oi, ridge)
    Zo, oo = factors.design(out_cells, out_assays)
    # [G b_i 1] @ [Zo' ; 1 ; offsets]: one product, no further passes over the (bins x pairs) result
    return with_bias_column(W) @ np.vstack([Zo.T, np.ones((1, oo.size)), oo[None, :]])
