"""Scoring a run: each target's imputed track against the observed one, beside the same-assay baseline.

Writes ``OUTPUT/metrics.tsv``, ``metrics.parquet`` and ``summary.tsv`` (:mod:`predictd_core.evaluate.tables`)
and keeps what the report draws of the targets (:mod:`predictd_core.evaluate.panels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.errors import PredictdInputError
from predictd_core.evaluate.panels import MAX_PANELS, TrackPanel, browser_windows, scatter_sample, track_panel
from predictd_core.evaluate.regions import read_bed_mask
from predictd_core.evaluate.tables import write_metrics
from predictd_core.impute.ensemble import Ensemble
from predictd_core.impute.outputs import imputed_path
from predictd_core.io import is_file
from predictd_core.model.measures import quality_measures
from predictd_core.store.signal_store import SignalStore
from predictd_core.tracks.readers import read_track_bins


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


def baseline_columns(ensemble: Ensemble, column: int) -> np.ndarray:
    """The baseline's inputs for store column ``column``: the same assay in other cells, among the
    experiments its ensemble members were allowed to see (so both methods use the same data)."""
    layout = ensemble.layout
    return layout.same_assay_columns(ensemble.seen_columns(layout.cell_of[column], layout.assay_of[column]), column)


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
                 progress: Callable[..., None], budget: int = SCORING_BYTES) -> Evaluation:
    """Score each target's imputed track against the observed one, beside the baseline.

    The baseline is the average (arcsinh) of the same assay in the other cells (see
    :func:`baseline_columns`). Both are scored on the bins where the observed track, the imputed
    one and the baseline all have data. Region MSEs are added for the configured BEDs. Writes
    ``OUTPUT/metrics.tsv``, ``metrics.parquet`` and ``summary.tsv`` (means and win counts).
    ``targets`` are (store column, kind) pairs; ``progress(step, done, total)`` hears of each one scored.
    The store is read in passes of at most ``budget`` bytes (:func:`scoring_passes`).
    """
    masks = {name: read_bed_mask(path, store.bins, f"evaluation.{name}")
             for name, path in config.evaluation.region_beds().items()}
    windows = browser_windows(config, store)
    panel_assays: set[int] = set()
    rng = np.random.default_rng(0)
    result = Evaluation(rows=[])
    for column, _ in targets:
        path = imputed_path(config.output, store.experiments[column].cell_type, store.experiments[column].assay)
        if not is_file(path):  # before any pass over the store
            raise PredictdInputError(path, "imputed", "imputed track missing; run impute first")
    inputs_of = [baseline_columns(ensemble, column) for column, _ in targets]
    for run, read in scoring_passes(targets, [[c, *inputs] for (c, _), inputs in zip(targets, inputs_of)],
                                    store.bins.n_bins, budget):
        block, position = store.read_columns(read), {int(k): p for p, k in enumerate(read)}
        for t in run:
            _score_target(config, store, ensemble, targets[t],
                          block[:, [position[int(k)] for k in (targets[t][0], *inputs_of[t])]], masks, windows,
                          panel_assays, rng, result)
            progress("evaluate", len(result.rows), len(targets))
    if result.rows:
        write_metrics(config.output, result.rows)
    return result


def _score_target(config: RunConfig, store: SignalStore, ensemble: Ensemble, target: tuple[int, str],
                  signal: np.ndarray, masks: dict, windows, panel_assays: set[int],
                  rng: np.random.Generator, result: Evaluation) -> None:
    """Score one target from ``signal`` (its observed column, then its baseline's inputs) into ``result``."""
    column, kind = target
    experiment = store.experiments[column]
    path = imputed_path(config.output, experiment.cell_type, experiment.assay)
    observed, imputed = signal[:, 0], read_track_bins(path, store.bins)
    with np.errstate(all="ignore"):  # a bin no input covers is NaN, and left out below
        baseline = np.nanmean(signal[:, 1:], axis=1) if signal.shape[1] > 1 else np.full(observed.shape, np.nan)
    seen = ~np.isnan(observed) & ~np.isnan(imputed) & ~np.isnan(baseline)
    target_masks = {name: mask[seen] for name, mask in masks.items()}
    row = {"cell_type": experiment.cell_type, "assay": experiment.assay, "kind": kind,
           "n_bins": int(seen.sum())}
    if not seen.any():
        raise PredictdInputError(path, experiment.name, "no bin where the observed track, the imputed one "
                                 "and the same-assay baseline all have data; nothing to score")
    truth = observed[seen]
    order = np.argsort(truth, kind="stable")  # one sort of the observed track serves both scorings
    row.update(quality_measures(truth, imputed[seen], target_masks, observed_order=order))
    row.update({f"baseline_{k}": v for k, v in
                quality_measures(truth, baseline[seen], target_masks, observed_order=order).items()})
    result.rows.append(row)
    result.scatter[experiment.name] = scatter_sample(rng, seen, observed, imputed)
    assay = int(ensemble.layout.assay_of[column])
    if len(result.panels) < MAX_PANELS and assay not in panel_assays:
        panel_assays.add(assay)
        result.panels.append(track_panel(config, store, experiment, observed, imputed, baseline, windows))
