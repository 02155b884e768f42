"""Extending a fitted model to new tracks: one pass over the data, then a closed-form solve.

A compendium grows: new tracks arrive for existing cell types, for a new cell type, or of a new
assay. A fitted model already holds a row of C (and b_c) for every cell type it saw and a row of A
(and b_a) for every assay; only the new cell types and assays lack one. Extending keeps mu and every
existing row and bias exactly and fits only the new rows.

One pass suffices because G is determined by the old experiments: with every old row fixed, each
bin's [G_i, b_i] is the genome step's ridge solve (``als.genome_step``, the model's ridge) on the
training experiments whose cell type and assay the model knows (the "known" columns). Given G, the
new rows are a linear least squares: a new cell type's [C_c; b_c] enters its experiments'
predictions ``mu + b_a + b_i + b_c + (G_i * A_a) . C_c`` linearly, with design rows [G_i * A_a, 1].
So the pass collects, for every new experiment j (one with a new cell type or a new assay), the
Gram matrix

    M_j = sum_i v_i v_i',  v_i = [G_i, 1, y_ij - b_i]

over the bins where j is observed and the known columns have data. M_j holds the normal equations of
any row j depends on (its blocks are sum G G', sum G, the count n_j, sum G (y - b_i), sum (y - b_i)
and sum (y - b_i)^2) and the exact squared error of any parameters: w' M_j w with
w = [-(C_c * A_a), -(mu + b_c + b_a), 1]. Holes in the new tracks cost nothing: each M_j sums only
over the bins the track has.

On the driver, a new cell row minimises the squared error of its training experiments plus the
penalties of ``solvers.als`` on its N_c = sum_j n_j entries, scaled as a fit on the extended layout
scales them (shrinkage toward the centre of the old cells, weighted by their training experiments);
a new assay row likewise with the cell rows fixed and centre 0. Experiments of a new cell type *and*
a new assay couple the two solves, which then alternate on the same Gram matrices until they stop
moving, still without reading data. New rows start (and rows without training entries stay) where a
model knows least about a row: a new cell type at the centre of the old cells with their mean bias,
a new assay at the mean assay row and bias. G itself is never stored: imputation solves each bin's
G from whatever tracks are observed, the new ones included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from predictd_core.engine.base import Engine
from predictd_core.errors import PredictdInputError
from predictd_core.model.factors import CellAssayFactors, Layout
from predictd_core.model.normal_equations import NormalEquations, row_penalty, solve_rows, with_bias_column
from predictd_core.solvers import als
from predictd_core.train.estimator import Predictd

STAGE = "extend"
MAX_ROUNDS = 100  # alternations of new cell and new assay rows when experiments pair them
ROUND_TOL = 1e-10  # relative change of the new rows that ends the alternation


def extend_model(model: Predictd, engine: Engine, layout: Layout, train_columns: np.ndarray,
                 valid_columns: np.ndarray) -> Predictd:
    """Fit the cell types and assays of ``layout`` that ``model`` lacks; keep every other parameter.

    Parameters
    ----------
    model : Predictd
        A fitted model; left untouched.
    engine : Engine
        Maps :func:`extend_statistics` over the extended store's chunks, once.
    layout : Layout
        The extended store's layout. Cell types and assays are matched to the model's by name, in
        any order; it must hold every one of the model's.
    train_columns, valid_columns : ndarray of int
        Disjoint columns of the extended store. Training columns of known cell types and assays
        fix G; those with a new cell type or assay fit the new rows. New validation columns are scored.

    Returns
    -------
    Predictd
        A new model on ``layout``: mu and the rows and biases of the model's cell types and assays
        are the model's, bit for bit; new rows solve their least squares given G (see the module
        docstring), whatever solver fitted the model. One history row is appended to the model's:
        ``{"iteration": 1, "stage": "extend", "objective", "train_mse", "valid_mse", "seconds"}``,
        the MSEs over the new training and validation columns (``valid_mse`` is ``train_mse``
        without new validation columns, as in a fit) and ``objective`` the part of J the new rows
        change (their columns' squared errors and their penalties, G fixed). ``best_iteration_`` is
        the model's. Without new cell types or assays nothing is read and the factors are the model's.

    Raises
    ------
    PredictdInputError
        ``layout`` lacks a cell type or assay of the model (field ``cells`` or ``assays``).
    """
    train_columns = np.asarray(train_columns, dtype=np.int64)
    valid_columns = np.asarray(valid_columns, dtype=np.int64)
    start, new_cells, new_assays = extended_start(model, layout)
    extended = Predictd(model.settings)
    extended.rank_, extended.ridge_, extended.layout_ = model.rank_, model.ridge_, layout
    extended.n_bins_ = int(engine.n_bins)
    extended.train_columns_, extended.valid_columns_ = train_columns, valid_columns
    extended.best_iteration_ = model.best_iteration_
    if new_cells.size == 0 and new_assays.size == 0:
        extended.factors_, extended.history_ = start, list(model.history_)
        return extended

    started = time.perf_counter()
    is_new = np.isin(layout.cell_of, new_cells) | np.isin(layout.assay_of, new_assays)
    known = train_columns[~is_new[train_columns]]
    new_train, new_valid = train_columns[is_new[train_columns]], valid_columns[is_new[valid_columns]]
    Z, offset = start.design(layout.cell_of[known], layout.assay_of[known])
    stats = engine.map_reduce(extend_statistics,
                              ExtendInputs(known, Z, offset, model.ridge_, new_train, new_valid))
    penalties, centre = extended.scaled_penalties(), _old_cell_centre(model)
    train_pairs = layout.cell_of[new_train], layout.assay_of[new_train]
    factors = solve_new_rows(stats.train, start, *train_pairs, new_cells, new_assays, penalties, centre)
    train_sse = column_sse(stats.train, factors, *train_pairs)
    valid_sse = column_sse(stats.valid, factors, layout.cell_of[new_valid], layout.assay_of[new_valid])
    K = factors.rank
    train_mse = float(train_sse.sum() / max(stats.train[:, K, K].sum(), 1.0))
    valid_mse = float(valid_sse.sum() / stats.valid[:, K, K].sum()) if new_valid.size else train_mse
    penalty = _new_row_penalty(stats.train, factors, *train_pairs, new_cells, new_assays, penalties, centre)
    row = {"iteration": 1, "stage": STAGE, "objective": float(train_sse.sum() + penalty),
           "train_mse": train_mse, "valid_mse": valid_mse, "seconds": time.perf_counter() - started}
    extended.factors_, extended.history_ = factors, model.history_ + [row]
    return extended


@dataclass(frozen=True)
class ExtendInputs:
    """What every chunk needs for the extension's pass (broadcast once).

    ``known_columns`` fix G with their design ``Z`` and ``offset`` (``CellAssayFactors.design``) and
    the model's ``ridge``; ``train_columns`` and ``valid_columns`` are the new columns to summarise.
    """

    known_columns: np.ndarray
    Z: np.ndarray
    offset: np.ndarray
    ridge: float
    train_columns: np.ndarray
    valid_columns: np.ndarray


@dataclass
class ExtendStatistics(als.FieldwiseSum):
    """Gram matrices M_j (see the module docstring) of the new training and validation columns.

    ``train`` and ``valid`` have shape (n_columns, K + 2, K + 2); summed over chunks.
    """

    train: np.ndarray
    valid: np.ndarray


def extend_statistics(Y: np.ndarray, inputs: ExtendInputs) -> ExtendStatistics:
    """G step on the known columns, then each new column's Gram matrix, for one chunk.

    Parameters
    ----------
    Y : ndarray of shape (n_bins, n_experiments)
        The chunk, every store column.
    inputs : ExtendInputs
    """
    W, has_data = als.genome_step(Y[:, inputs.known_columns], inputs.Z, inputs.offset, inputs.ridge)
    return ExtendStatistics(_grams(Y[:, inputs.train_columns], W, has_data),
                            _grams(Y[:, inputs.valid_columns], W, has_data))


def _grams(Y: np.ndarray, W: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """M_j = sum of v v', v = [G_i, 1, y_ij - b_i], over the bins with data where column j is observed."""
    base = with_bias_column(W[:, :-1])
    R = Y.astype(np.float64) - W[:, -1:]
    M = np.empty((Y.shape[1], W.shape[1] + 1, W.shape[1] + 1))
    for j in range(Y.shape[1]):
        seen = has_data & ~np.isnan(R[:, j])
        V = np.hstack([base[seen], R[seen, j, None]])
        M[j] = V.T @ V
    return M


def column_sse(M: np.ndarray, factors: CellAssayFactors, cells: np.ndarray, assays: np.ndarray) -> np.ndarray:
    """Squared error of each column from its Gram matrix: w' M_j w, w = [-(C_c * A_a), -(mu + b_c + b_a), 1].

    Parameters
    ----------
    M : ndarray of shape (n_columns, K + 2, K + 2)
        Gram matrices from :func:`extend_statistics`.
    cells, assays : ndarray of shape (n_columns,)
        Grid rows of the columns.
    """
    Z, offset = factors.design(cells, assays)
    w = np.hstack([-Z, -offset[:, None], np.ones((offset.size, 1))])
    return np.einsum("jp,jpq,jq->j", w, M, w)


def solve_new_rows(M: np.ndarray, factors: CellAssayFactors, cells: np.ndarray, assays: np.ndarray,
                   new_cells: np.ndarray, new_assays: np.ndarray, penalties: als.ScaledPenalties,
                   centre: np.ndarray) -> CellAssayFactors:
    """The new cell and assay rows that minimise their columns' squared error plus penalties, G fixed.

    Parameters
    ----------
    M : ndarray of shape (n_columns, K + 2, K + 2)
        Gram matrices of the new training columns.
    factors : CellAssayFactors
        Every row; the new ones are where the solves start.
    cells, assays : ndarray of shape (n_columns,)
        Grid rows of the new training columns.
    new_cells, new_assays : ndarray of int
        The rows to solve; every other row is kept exactly.
    penalties : ScaledPenalties
    centre : ndarray of shape (K,)
        What new cell rows shrink toward (new assay rows shrink toward 0).

    Returns
    -------
    CellAssayFactors
        The new cell rows solved with the assay rows fixed, then the new assays with the cell rows
        fixed; alternated until the new rows change by less than ``ROUND_TOL`` of their norm (at
        most ``MAX_ROUNDS`` times), which only columns of a new cell and a new assay together need.
    """
    f = factors
    C, A, b_c, b_a = f.C, f.A, f.b_c, f.b_a
    before = _stacked(C, A, b_c, b_a, new_cells, new_assays)
    for _ in range(MAX_ROUNDS):
        C, b_c = _solve_from_grams(M, cells, C, b_c, A[assays], f.mu + b_a[assays], penalties.rc,
                                   penalties.rbc, centre, new_cells)
        A, b_a = _solve_from_grams(M, assays, A, b_a, C[cells], f.mu + b_c[cells], penalties.ra,
                                   penalties.rba, np.zeros(A.shape[1]), new_assays)
        after = _stacked(C, A, b_c, b_a, new_cells, new_assays)
        if np.linalg.norm(after - before) <= ROUND_TOL * np.linalg.norm(after):
            break
        before = after
    return CellAssayFactors(f.mu, C, A, b_c, b_a)


def _stacked(C: np.ndarray, A: np.ndarray, b_c: np.ndarray, b_a: np.ndarray, new_cells: np.ndarray,
             new_assays: np.ndarray) -> np.ndarray:
    """The new rows and biases as one vector, to measure how far a round moved them."""
    return np.concatenate([C[new_cells].ravel(), b_c[new_cells], A[new_assays].ravel(), b_a[new_assays]])


def _solve_from_grams(M: np.ndarray, own: np.ndarray, X: np.ndarray, b: np.ndarray, other: np.ndarray,
                      other_offset: np.ndarray, lam: float, lam_bias: float, centre: np.ndarray,
                      rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve the ``rows`` of one side (cells or assays) that have training entries, the other side fixed.

    ``own`` is the row of each column on this side, ``other`` and ``other_offset`` the other side's row
    and ``mu`` + bias of each; the equations are :func:`_column_equations`, the penalties scaled per
    entry as in ``solvers.als``: ``lam N`` toward ``centre`` and ``lam_bias N`` toward 0.
    """
    K = X.shape[1]
    entries = np.bincount(own, weights=M[:, K, K], minlength=X.shape[0])
    return solve_rows(lambda r: _column_equations(M, own == r, other, other_offset, entries[r]),
                      rows[entries[rows] > 0], X, b, lam, lam_bias, centre)


def _column_equations(M: np.ndarray, mine: np.ndarray, other: np.ndarray, other_offset: np.ndarray,
                      entries: float) -> NormalEquations:
    """The normal equations of one row from the Gram matrices of its columns (``mine``).

    Column j of the row, with u_j the other side's row and o_j = mu + its bias, predicts
    ``b_i + o_j + [G_i, 1] . (D_j x)`` for x = [X_r; b_r] and D_j = diag(u_j, 1), so the normal
    equations from the Gram blocks (S_j, g_j, n_j, P_j, s_j) of M_j are

        (sum_j D_j [[S_j, g_j], [g_j', n_j]] D_j) x = sum_j D_j [P_j - o_j g_j; s_j - o_j n_j]

    over ``entries`` = sum_j n_j entries.
    """
    K = other.shape[1]
    D = with_bias_column(other[mine])
    Mr = M[mine]
    gram = np.einsum("jp,jpq,jq->pq", D, Mr[:, :K + 1, :K + 1], D)
    rhs = np.einsum("jp,jp->p", D, Mr[:, :K + 1, K + 1] - other_offset[mine, None] * Mr[:, :K + 1, K])
    return NormalEquations(gram, rhs, entries)


def _new_row_penalty(M: np.ndarray, factors: CellAssayFactors, cells: np.ndarray, assays: np.ndarray,
                     new_cells: np.ndarray, new_assays: np.ndarray, penalties: als.ScaledPenalties,
                     centre: np.ndarray) -> float:
    """The penalties of the new rows in J, on their entries in the new training columns."""
    f, K = factors, factors.rank
    n_cell = np.bincount(cells, weights=M[:, K, K], minlength=f.C.shape[0])[new_cells]
    n_assay = np.bincount(assays, weights=M[:, K, K], minlength=f.A.shape[0])[new_assays]
    cell_factors, cell_biases = row_penalty(n_cell, f.C[new_cells], f.b_c[new_cells], penalties.rc, penalties.rbc,
                                            centre)
    assay_factors, assay_biases = row_penalty(n_assay, f.A[new_assays], f.b_a[new_assays], penalties.ra,
                                              penalties.rba, 0.0)
    return float(cell_factors + cell_biases + assay_factors + assay_biases)


def extended_start(model: Predictd, layout: Layout) -> tuple[CellAssayFactors, np.ndarray, np.ndarray]:
    """The model's factors on ``layout``'s rows, new rows at the mean of the rows fitted on data.

    Returns
    -------
    factors : CellAssayFactors
        Rows of ``layout.cells`` and ``layout.assays``: copies of the model's where it has the name;
        otherwise the old cells' centre (``ScaledPenalties.cell_centre``) and mean cell bias, or the
        mean assay row and bias, over the model's cell types and assays with training data.
    new_cells, new_assays : ndarray of int
        Rows of ``layout`` the model lacks.
    """
    f, old = model.factors_, model.layout_
    trained = model.train_columns_
    cells_seen, assays_seen = np.unique(old.cell_of[trained]), np.unique(old.assay_of[trained])
    C, b_c, new_cells = _rows_by_name(old.cells, layout.cells, f.C, f.b_c, "cells", _old_cell_centre(model),
                                      f.b_c[cells_seen].mean())
    A, b_a, new_assays = _rows_by_name(old.assays, layout.assays, f.A, f.b_a, "assays",
                                       f.A[assays_seen].mean(axis=0), f.b_a[assays_seen].mean())
    return CellAssayFactors(f.mu, C, A, b_c, b_a), new_cells, new_assays


def _old_cell_centre(model: Predictd) -> np.ndarray:
    """The centre of the model's cell rows, weighted by their training experiments (see ``solvers.als``)."""
    old = model.layout_
    weights = np.bincount(old.cell_of[model.train_columns_], minlength=len(old.cells))
    return model.scaled_penalties().cell_centre(model.factors_.C, weights)


def _rows_by_name(old_names: tuple[str, ...], names: tuple[str, ...], X: np.ndarray, b: np.ndarray, axis: str,
                  start_row: np.ndarray, start_bias: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` and ``b`` re-indexed from ``old_names`` to ``names``; unknown names get the start values."""
    missing = sorted(set(old_names) - set(names))
    if missing:
        raise PredictdInputError("store", axis, f"the extended store lacks {', '.join(missing)}, which the model "
                                 f"was fitted on; extending adds tracks, it cannot drop {axis}")
    index = {name: k for k, name in enumerate(old_names)}
    known = np.array([name in index for name in names], dtype=bool)
    old_rows = [index[name] for name in names if name in index]
    X_new = np.empty((len(names), X.shape[1]), dtype=X.dtype)
    b_new = np.empty(len(names), dtype=b.dtype)
    X_new[known], b_new[known] = X[old_rows], b[old_rows]
    X_new[~known], b_new[~known] = start_row, start_bias
    return X_new, b_new, np.flatnonzero(~known)
