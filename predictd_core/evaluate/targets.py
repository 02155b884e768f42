"""One scored target: its baseline's inputs and values, and its measures against its imputed track, beside the
baseline's, with what the report draws of it. The same wherever the target is scored
(:mod:`predictd_core.evaluate.scoring` in one process, :mod:`predictd_core.evaluate.distributed` in tasks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.errors import PredictdInputError
from predictd_core.evaluate.panels import MAX_PANELS, TrackPanel, scatter_sample, track_panel
from predictd_core.impute.ensemble import Ensemble
from predictd_core.impute.outputs import imputed_path
from predictd_core.model.measures import ObservedTrack
from predictd_core.tracks.genome import GenomeBins
from predictd_core.tracks.readers import read_track_bins
from predictd_core.tracks.table import Track

SCATTER_SEED = 0  # with a target's index, the seed of its scatter sample


def baseline_columns(ensemble: Ensemble, column: int) -> np.ndarray:
    """The baseline's inputs for store column ``column``: the same assay in other cells, among the
    experiments its ensemble members were allowed to see (so both methods use the same data)."""
    layout = ensemble.layout
    return layout.same_assay_columns(ensemble.seen_columns(layout.cell_of[column], layout.assay_of[column]), column)


def panel_targets(ensemble: Ensemble, targets: list[tuple[int, str]]) -> list[bool]:
    """Which targets the report draws a browser panel of: the first of each assay, :data:`MAX_PANELS` at most."""
    drawn: set[int] = set()
    chosen = []
    for column, _ in targets:
        assay = int(ensemble.layout.assay_of[column])
        chosen.append(len(drawn) < MAX_PANELS and assay not in drawn)
        if chosen[-1]:
            drawn.add(assay)
    return chosen


def same_assay_averages(signal: np.ndarray, inputs_of: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """The baseline of each target from ``signal`` (bins x columns, arcsinh): :func:`same_assay_average` of its
    columns ``inputs_of[t]``, computed once for targets with the same inputs (in a cross-validated run, those
    of one test fold and assay) and shared by them."""
    averages: dict[tuple[int, ...], np.ndarray] = {}
    for inputs in inputs_of:
        key = tuple(int(k) for k in inputs)
        if key not in averages:
            averages[key] = same_assay_average(signal[:, list(key)])
    return [averages[tuple(int(k) for k in inputs)] for inputs in inputs_of]


def same_assay_average(inputs: np.ndarray) -> np.ndarray:
    """The baseline over ``inputs`` (bins x the baseline's input columns, arcsinh): their mean per bin, NaN where
    none has data (or everywhere, when there are no inputs)."""
    if inputs.shape[1] == 0:
        return np.full(inputs.shape[0], np.nan, dtype=inputs.dtype)
    with np.errstate(all="ignore"):  # a bin no input covers is NaN, and left out of scoring
        return np.nanmean(inputs, axis=1)


@dataclass
class TargetScore:
    """One target's scoring: its metric row, its scatter sample and its browser panel (None: not drawn)."""

    row: dict
    scatter: tuple[np.ndarray, np.ndarray]
    panel: TrackPanel | None


def score_target(config: RunConfig, bins: GenomeBins, experiment: Track, kind: str, index: int,
                 observed: np.ndarray, baseline: np.ndarray, masks: dict[str, np.ndarray],
                 windows: list[tuple[int, int]], with_panel: bool) -> TargetScore:
    """Score target number ``index`` of a run (``experiment``, of ``kind``) from its ``observed`` signal and its
    ``baseline`` over every bin, against its imputed track read from ``config.output``; its scatter sample is
    drawn by a generator of its own (seeded by ``index``), so it does not depend on what else is scored."""
    path = imputed_path(config.output, experiment.cell_type, experiment.assay)
    imputed = read_track_bins(path, bins)
    seen = ~np.isnan(observed) & ~np.isnan(imputed) & ~np.isnan(baseline)
    row = {"cell_type": experiment.cell_type, "assay": experiment.assay, "kind": kind,
           "n_bins": int(seen.sum())}
    if not seen.any():
        raise PredictdInputError(path, experiment.name, "no bin where the observed track, the imputed one "
                                 "and the same-assay baseline all have data; nothing to score")
    truth = ObservedTrack(observed, seen)  # sorted and ranked once, for both scorings
    row.update(truth.measures(imputed, masks))
    row.update({f"baseline_{k}": v for k, v in truth.measures(baseline, masks).items()})
    del truth
    scatter = scatter_sample(np.random.default_rng([SCATTER_SEED, index]), seen, observed, imputed)
    panel = track_panel(config, bins, experiment, observed, imputed, baseline, windows) if with_panel else None
    return TargetScore(row, scatter, panel)
