"""Extending a fitted model to new tracks without refitting what it already knows.

A compendium grows: new tracks arrive for existing cell types, for a new cell type, or of a new
assay. A fitted model already holds a row of C (and b_c) for every cell type it saw and a row of A
(and b_a) for every assay; only the new cell types and assays lack one. Extending keeps mu and every
existing row and bias exactly and fits only the new rows, by the same ALS sweeps as a fit (one pass
over the extended store per sweep, then the new rows solved from the sufficient statistics) with the
other side fixed where it is old. G needs nothing: it is never stored, each bin's ridge solve at
imputation time uses whatever tracks are observed, the new ones included.

New rows start where a model knows least about a row: a new cell type at the mean cell (the centre
cell rows shrink toward, see ``solvers.als``) with the mean cell bias, a new assay at the mean assay
row and bias. Sweeps stop on validation MSE as a fit does and keep the best iterate.
"""

from __future__ import annotations

import numpy as np

from predictd_core.errors import PredictdInputError
from predictd_core.model.estimator import Predictd, ProgressFn
from predictd_core.model.factors import CellAssayFactors, Layout

STAGE = "extend"


def extend_model(model: Predictd, engine, layout: Layout, train_columns: np.ndarray, valid_columns: np.ndarray,
                 progress: ProgressFn | None = None) -> Predictd:
    """Fit the cell types and assays of ``layout`` that ``model`` lacks; keep every other parameter.

    Parameters
    ----------
    model : Predictd
        A fitted model; left untouched.
    engine : LocalEngine or SparkEngine
        Maps solver functions over the extended store's chunks.
    layout : Layout
        The extended store's layout. Cell types and assays are matched to the model's by name, in
        any order; it must hold every one of the model's.
    train_columns, valid_columns : ndarray of int
        Disjoint columns of the extended store to fit the new rows on and to stop on.
    progress : callable, optional
        Called with each history row.

    Returns
    -------
    Predictd
        A new model on ``layout``: mu and the rows and biases of the model's cell types and assays
        are the model's, bit for bit; new rows come from ALS sweeps, whatever solver fitted the
        model, scored on every validation column, old and new (history rows labelled
        ``"stage": "extend"`` appended to the model's history, ``best_iteration_`` their best
        sweep). Without new cell types or assays no sweep runs and the factors are the model's.

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
    extended.n_bins_ = int(engine.store.bins.n_bins)
    extended.train_columns_, extended.valid_columns_ = train_columns, valid_columns
    if new_cells.size == 0 and new_assays.size == 0:
        extended.factors_, extended.history_ = start, list(model.history_)
        extended.best_iteration_ = model.best_iteration_
        return extended
    factors, history, best_iteration = extended._fit_als(engine, start, train_columns, valid_columns, progress,
                                                         cell_rows=new_cells, assay_rows=new_assays, stage=STAGE)
    extended.factors_, extended.history_, extended.best_iteration_ = factors, model.history_ + history, best_iteration
    return extended


def extended_start(model: Predictd, layout: Layout) -> tuple[CellAssayFactors, np.ndarray, np.ndarray]:
    """The model's factors on ``layout``'s rows, new rows at the mean of the rows fitted on data.

    Returns
    -------
    factors : CellAssayFactors
        Rows of ``layout.cells`` and ``layout.assays``: copies of the model's where it has the name;
        otherwise the cell centre (``ScaledPenalties.cell_centre``) and mean cell bias, or the mean
        assay row and bias, over the model's cell types and assays with training data.
    new_cells, new_assays : ndarray of int
        Rows of ``layout`` the model lacks.
    """
    f, old = model.factors_, model.layout_
    trained = model.train_columns_
    cells_seen, assays_seen = np.unique(old.cell_of[trained]), np.unique(old.assay_of[trained])
    centre = model.scaled_penalties().cell_centre(f.C, np.bincount(old.cell_of[trained], minlength=len(old.cells)))
    C, b_c, new_cells = _rows_by_name(old.cells, layout.cells, f.C, f.b_c, "cells", centre,
                                      f.b_c[cells_seen].mean())
    A, b_a, new_assays = _rows_by_name(old.assays, layout.assays, f.A, f.b_a, "assays",
                                       f.A[assays_seen].mean(axis=0), f.b_a[assays_seen].mean())
    return CellAssayFactors(f.mu, C, A, b_c, b_a), new_cells, new_assays


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
