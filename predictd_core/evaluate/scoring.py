"""Scoring a run: each target's imputed track against the observed one, beside the same-assay baseline.

Writes ``OUTPUT/metrics.tsv``, ``metrics.parquet`` and ``summary.tsv`` (:mod:`predictd_core.evaluate.tables`)
and keeps what the report draws of the targets (:mod:`predictd_core.evaluate.panels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.engine import Engine
from predictd_core.errors import PredictdInputError
from predictd_core.evaluate.distributed import score_on_executors
from predictd_core.evaluate.panels import TrackPanel, browser_windows
from predictd_core.evaluate.regions import read_bed_mask
from predictd_core.evaluate.tables import write_metrics
from predictd_core.evaluate.targets import baseline_columns, panel_targets, same_assay_averages, score_target
from predictd_core.impute.ensemble import Ensemble
from predictd_core.impute.outputs import imputed_path
from predictd_core.io import is_file
from predictd_core.store.signal_store import SignalStore


# Signal read at once for scoring (float32 columns over every bin): one pass over the store serves every target
# whose columns fit together, so a Roadmap-sized grid of 65,536 bins (1,014 columns, 265 MB) is decoded once rather
# than once per target; on the whole genome a column alone is ~0.5 GB and a pass serves a few targets.
SCORING_BYTES = 2 * 2**30


@dataclass
class Evaluation:
    """What evaluate measured: metric rows, and the samples and windows the report draws."""

    rows: list[dict]
    scatter: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    panels: list[TrackPanel] = field(default_factory=list)


def scoring_passes(targets: list[tuple[int, str]], columns: list[np.ndarray], n_bins: int,
                   budget: int = SCORING_BYTES) -> Iterator[tuple[list[int], np.ndarray]]:
    """Consecutive runs of ``targets`` (as indices into it) and the store columns they read together
    (``columns[t]``: target ``t``'s), each run's columns at most ``budget`` bytes of float32 over ``n_bins``
    (a target that alone needs more is a run of its own)."""
    run: list[int] = []
    held: set[int] = set()
    for t, needed in enumerate(columns):
        merged = held | {int(k) for k in needed}
        if run and len(merged) * n_bins * 4 > budget:
            yield run, np.array(sorted(held), dtype=np.int64)
            run, merged = [], {int(k) for k in needed}
        run.append(t)
        held = merged
    if run:
        yield run, np.array(sorted(held), dtype=np.int64)


def run_evaluate(config: RunConfig, store: SignalStore, ensemble: Ensemble, targets: list[tuple[int, str]],
                 progress: Callable[..., None], budget: int = SCORING_BYTES, engine: Engine | None = None
                 ) -> Evaluation:
    """Score each target's imputed track against the observed one, beside the baseline.

    The baseline is the average (arcsinh) of the same assay in the other cells (see
    :func:`~predictd_core.evaluate.targets.baseline_columns`). Both are scored on the bins where the observed
    track, the imputed one and the baseline all have data. Region MSEs are added for the configured BEDs. Writes
    ``OUTPUT/metrics.tsv``, ``metrics.parquet`` and ``summary.tsv`` (means and win counts).
    ``targets`` are (store column, kind) pairs; ``progress(step, done, total)`` hears of each one scored.

    Here the store is read in passes of at most ``budget`` bytes (:func:`scoring_passes`); on a distributed
    ``engine`` (Spark) its tasks read the store and score the targets instead
    (:func:`~predictd_core.evaluate.distributed.score_on_executors`), with the same results.
    """
    masks = {name: read_bed_mask(path, store.bins, f"evaluation.{name}")
             for name, path in config.evaluation.region_beds().items()}
    windows = browser_windows(config, store)
    for column, _ in targets:
        path = imputed_path(config.output, store.experiments[column].cell_type, store.experiments[column].assay)
        if not is_file(path):  # before any pass over the store
            raise PredictdInputError(path, "imputed", "imputed track missing; run impute first")
    inputs_of = [baseline_columns(ensemble, column) for column, _ in targets]
    with_panel = panel_targets(ensemble, targets)
    if engine is not None and engine.distributed:
        scores = score_on_executors(engine, config, store, targets, inputs_of, with_panel, windows, budget, progress)
    else:
        scores = []
        for run, read in scoring_passes(targets, [[c, *inputs] for (c, _), inputs in zip(targets, inputs_of)],
                                        store.bins.n_bins, budget):
            block, position = store.read_columns(read), {int(k): p for p, k in enumerate(read)}
            baselines = same_assay_averages(block, [[position[int(k)] for k in inputs_of[t]] for t in run])
            for t, baseline in zip(run, baselines):
                column, kind = targets[t]
                scores.append(score_target(config, store.bins, store.experiments[column], kind, t,
                                           block[:, position[column]], baseline, masks, windows, with_panel[t]))
                progress("evaluate", len(scores), len(targets))
    result = Evaluation(rows=[score.row for score in scores],
                        scatter={store.experiments[column].name: score.scatter
                                 for (column, _), score in zip(targets, scores)},
                        panels=[score.panel for score in scores if score.panel is not None])
    if result.rows:
        write_metrics(config.output, result.rows)
    return result


