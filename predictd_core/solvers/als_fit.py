"""Fitting by exact ALS: sweeps of :mod:`predictd_core.solvers.als` until validation stops improving.

Each sweep maps :func:`~predictd_core.solvers.als.sweep_statistics` over the chunks once (G step and
statistics), scores the factors it ran with, then updates C, A and the biases on the driver from the
statistics alone. The counterpart of :func:`predictd_core.solvers.nadam.fit_nadam`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from predictd_core.model.factors import CellAssayFactors, Layout
from predictd_core.model.settings import ModelSettings
from predictd_core.solvers import als

if TYPE_CHECKING:  # typing only: the solvers call an engine's methods and import none of its modules
    from predictd_core.engine.base import Engine


def fit_als(engine: Engine, start: CellAssayFactors, layout: Layout, train_columns: np.ndarray,
            valid_columns: np.ndarray, settings: ModelSettings,
            progress: Callable[[dict[str, Any]], None] | None) -> tuple[CellAssayFactors, list[dict[str, Any]], int]:
    """ALS sweeps from ``start`` until validation stops improving; return the best iterate.

    Parameters
    ----------
    engine : Engine
        Maps :func:`~predictd_core.solvers.als.sweep_statistics` over the store's chunks, once a sweep.
    start : CellAssayFactors
        mu (kept fixed) and the starting C, A, b_c, b_a.
    layout : Layout
    train_columns, valid_columns : ndarray of int
        Store columns to fit and to select on.
    settings : ModelSettings
        ``penalties`` (scaled by :meth:`~predictd_core.solvers.als.ScaledPenalties.from_settings`),
        ``cell_shrinkage``, ``inner_iters``, ``max_iters``, ``patience``, ``tol``.
    progress : callable, optional
        Called with each history row.

    Returns
    -------
    factors : CellAssayFactors
        The factors of the sweep with the lowest validation MSE.
    history : list of dict
        One row per sweep: ``iteration``, ``objective``, ``train_mse``, ``valid_mse``, ``seconds``.
    best_iteration : int
    """
    penalties = als.ScaledPenalties.from_settings(settings, start.rank, len(layout.cells), len(layout.assays))
    ridge = settings.penalties.ri2
    factors = start
    history, best, best_score, best_iteration = [], factors, np.inf, 0
    for iteration in range(1, settings.max_iters + 1):
        started = time.perf_counter()
        inputs = als.SweepInputs(factors, layout.cell_of, layout.assay_of, train_columns, valid_columns, ridge)
        stats = engine.map_reduce(als.sweep_statistics, inputs)
        train_mse = stats.train_sse / max(stats.train_count, 1.0)
        valid_mse = float(stats.valid_sse.sum() / stats.valid_count.sum()) if valid_columns.size else train_mse
        row = {"iteration": iteration, "objective": als.objective(stats, inputs, penalties),
               "train_mse": train_mse, "valid_mse": valid_mse}
        # The score belongs to the factors the pass was run with; keep the best of them.
        if valid_mse < best_score * (1.0 - settings.tol):
            best, best_score, best_iteration = factors, valid_mse, iteration
        factors = als.update_cell_assay(stats, inputs, penalties, settings.inner_iters)
        row["seconds"] = time.perf_counter() - started
        history.append(row)
        if progress is not None:
            progress(row)
        if iteration - best_iteration >= settings.patience:
            break
    return best, history, best_iteration
