"""The NAdam-SGD driver: rounds until validation stops improving, with learning-rate halvings on plateaus
and the best snapshot kept (:mod:`predictd_core.solvers.nadam`). The counterpart of
:func:`predictd_core.solvers.als_fit.fit_als`."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from predictd_core.model.factors import CellAssayFactors, Layout
from predictd_core.model.settings import ModelSettings
from predictd_core.solvers.nadam.passes import EvalInputs, EvalStats, RoundInputs, evaluate_chunk, sgd_round
from predictd_core.solvers.nadam.state import NadamHyper, SharedState
from predictd_core.solvers.nadam.steps import penalty_rows

if TYPE_CHECKING:  # typing only: the solvers call an engine's methods and import none of its modules
    from predictd_core.engine.base import Engine


def _objective(stats: EvalStats, shared: SharedState, reg: np.ndarray, cell_of: np.ndarray,
               assay_of: np.ndarray) -> float:
    """J of :mod:`predictd_core.solvers.nadam`: SSE plus the per-entry-weighted penalties."""
    n_cell = np.bincount(cell_of, weights=stats.column_count, minlength=shared.cells.shape[0])
    n_assay = np.bincount(assay_of, weights=stats.column_count, minlength=shared.assays.shape[0])
    return float(stats.train_sse + stats.genome_penalty + n_cell @ (np.square(shared.cells) @ reg[0])
                 + n_assay @ (np.square(shared.assays) @ reg[1]))


@dataclass(frozen=True)
class _Snapshot:
    shared: SharedState
    states: dict
    score: float
    iteration: int


def fit_nadam(engine: Engine, start: CellAssayFactors, layout: Layout, train_columns: np.ndarray,
              valid_columns: np.ndarray, settings: ModelSettings, n_bins: int,
              progress: Callable[[dict[str, Any]], None] | None) -> tuple[CellAssayFactors, list[dict], int]:
    """Fit by PREDICTD's parallel NAdam SGD; return the iterate with the lowest validation MSE.

    Parameters
    ----------
    engine : Engine
        Provides ``map_state``, ``reset_state`` and ``collect_state`` over the store's chunks. Its
        per-chunk state is replaced; on return it holds the best snapshot's genome rows.
    start : CellAssayFactors
        Initial mu (kept fixed), C, A, b_c, b_a.
    layout : Layout
    train_columns, valid_columns : ndarray of int
        Store columns to fit and to select on.
    settings : ModelSettings
        ``learning_rate``, ``beta1``, ``beta2``, ``epsilon``, ``batch_size``, ``penalties``, ``seed``,
        ``max_iters`` (rounds), ``patience``, ``tol``, ``lrate_search_num``.
    n_bins : int
        Bins in the store (scales ``ri``).
    progress : callable, optional
        Called with each history row.

    Returns
    -------
    factors : CellAssayFactors
        The best snapshot by validation MSE.
    history : list of dict
        Rows ``iteration`` (0 = the start, before any round), ``objective``, ``train_mse``, ``valid_mse``,
        ``seconds``.
    best_iteration : int
    """
    train_columns = np.asarray(train_columns, dtype=np.int64)
    valid_columns = np.asarray(valid_columns, dtype=np.int64)
    mu = float(start.mu)
    reg = penalty_rows(settings.penalties, start.rank, len(layout.cells), len(layout.assays), n_bins)
    ridge = settings.penalties.ri2
    hyper = NadamHyper(settings.learning_rate, settings.beta1, settings.beta2, settings.epsilon)
    train_cells, train_assays = layout.cell_of[train_columns], layout.assay_of[train_columns]

    def evaluate(shared: SharedState, iteration: int, started: float) -> dict[str, Any]:
        inputs = EvalInputs(shared.factors(mu), layout.cell_of, layout.assay_of, train_columns, valid_columns,
                            ridge, reg[2])
        stats = engine.map_state(evaluate_chunk, inputs)
        train_mse = stats.train_sse / max(stats.train_count, 1.0)
        valid_mse = stats.valid_sse / stats.valid_count if stats.valid_count else train_mse
        row = {"iteration": iteration, "objective": _objective(stats, shared, reg, train_cells, train_assays),
               "train_mse": float(train_mse), "valid_mse": float(valid_mse),
               "seconds": time.perf_counter() - started}
        if progress is not None:
            progress(row)
        return row

    engine.reset_state(None)
    shared = SharedState.start(start)
    row = evaluate(shared, 0, time.perf_counter())  # also fits every chunk's starting G and b_i
    history = [row]
    best = _Snapshot(shared, engine.collect_state(), row["valid_mse"], 0)
    since_best, searches_left = 0, settings.lrate_search_num
    for round_ in range(1, settings.max_iters + 1):
        started = time.perf_counter()
        inputs = RoundInputs(shared, mu, hyper, reg, settings.batch_size, settings.seed, round_, layout.cell_of,
                             layout.assay_of, train_columns, ridge)
        shared = engine.map_state(sgd_round, inputs).averaged(shared)
        row = evaluate(shared, round_, started)
        history.append(row)
        if not (np.isfinite(row["valid_mse"]) and np.isfinite(row["train_mse"])):
            break  # diverged: keep the best snapshot (PREDICTD stopped on a NaN MSE too)
        if row["valid_mse"] < best.score * (1.0 - settings.tol):
            best, since_best = _Snapshot(shared, engine.collect_state(), row["valid_mse"], round_), 0
        else:
            since_best += 1
        if since_best >= settings.patience:
            if searches_left == 0:
                break
            searches_left -= 1
            shared, since_best = best.shared, 0
            engine.reset_state(best.states)
            hyper = replace(hyper, lr=hyper.lr / 2.0, beta1=max(0.0, hyper.beta1 - (1.0 - hyper.beta1)))
    engine.reset_state(best.states)
    return best.shared.factors(mu), history, best.iteration
