"""Scoring a run: each target's imputed track against the observed one, beside the same-assay baseline.

Writes ``OUTPUT/metrics.tsv``, ``metrics.parquet`` and ``summary.tsv`` (:mod:`predictd_core.evaluate.tables`)
and keeps what the report draws of the targets (:mod:`predictd_core.evaluate.panels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

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


def run_evaluate(config: RunConfig, store: SignalStore, ensemble: Ensemble, targets: list[tuple[int, str]],
                 progress: Callable[..., None]) -> Evaluation:
    """Score each target's imputed track against the observed one, beside the baseline.

    The baseline is the average (arcsinh) of the same assay in the other cells (see
    :func:`baseline_columns`). Both are scored on the bins where the observed track, the imputed
    one and the baseline all have data. Region MSEs are added for the configured BEDs. Writes
    ``OUTPUT/metrics.tsv``, ``metrics.parquet`` and ``summary.tsv`` (means and win counts).
    ``targets`` are (store column, kind) pairs; ``progress(step, done, total)`` hears of each one scored.
    """
    masks = {name: read_bed_mask(path, store.bins, f"evaluation.{name}")
             for name, path in config.evaluation.region_beds().items()}
    windows = browser_windows(config, store)
    panel_assays: set[int] = set()
    rng = np.random.default_rng(0)
    result = Evaluation(rows=[])
    for column, kind in targets:
        experiment = store.experiments[column]
        path = imputed_path(config.output, experiment.cell_type, experiment.assay)
        if not is_file(path):
            raise PredictdInputError(path, "imputed", "imputed track missing; run impute first")
        inputs = baseline_columns(ensemble, column)
        signal = store.read_columns([column, *inputs])  # the target and its baseline's inputs, one pass
        observed, imputed = signal[:, 0], read_track_bins(path, store.bins)
        with np.errstate(all="ignore"):  # a bin no input covers is NaN, and left out below
            baseline = np.nanmean(signal[:, 1:], axis=1) if inputs.size else np.full(observed.shape, np.nan)
        seen = ~np.isnan(observed) & ~np.isnan(imputed) & ~np.isnan(baseline)
        target_masks = {name: mask[seen] for name, mask in masks.items()}
        row = {"cell_type": experiment.cell_type, "assay": experiment.assay, "kind": kind, "n_bins": int(seen.sum())}
        if not seen.any():
            raise PredictdInputError(path, experiment.name, "no bin where the observed track, the imputed one "
                                     "and the same-assay baseline all have data; nothing to score")
        row.update(quality_measures(observed[seen], imputed[seen], target_masks))
        row.update({f"baseline_{k}": v
                    for k, v in quality_measures(observed[seen], baseline[seen], target_masks).items()})
        result.rows.append(row)
        result.scatter[experiment.name] = scatter_sample(rng, seen, observed, imputed)
        assay = int(ensemble.layout.assay_of[column])
        if len(result.panels) < MAX_PANELS and assay not in panel_assays:
            panel_assays.add(assay)
            result.panels.append(track_panel(config, store, experiment, observed, imputed, baseline, windows))
        progress("evaluate", len(result.rows), len(targets))
    if result.rows:
        write_metrics(config.output, result.rows)
    return result
