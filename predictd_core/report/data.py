"""What the cross-validation report shows: plain containers filled from a finished run (:mod:`.build`).

All signal is on the model's arcsinh(-log10 p) scale. "Baseline" is the obvious guess PREDICTD is
judged against: the average of the same assay in the other cell types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from predictd_core.evaluate.panels import TrackPanel
from predictd_core.model.measures import lower_is_better


@dataclass(frozen=True)
class ReportData:
    """Everything ``report.html`` shows about one cross-validation run.

    Attributes
    ----------
    title : str
    config_sha256 : str
        Digest of the run's config, so a reader can tell which run the page describes.
    rows : list of dict
        One per scored experiment: ``cell_type``, ``assay``, ``kind`` (``"test-fold"`` or
        ``"holdout"``), ``n_bins``, then ``<measure>`` and ``baseline_<measure>`` for each measure.
    summary : list of dict
        ``scope`` (``"all"`` or an assay), ``measure``, ``n``, ``predictd_mean``, ``baseline_mean``,
        ``wins``, ``losses``, ``ties``.
    measures : tuple of str
        Measure names in display order.
    histories : dict of str to list of dict
        Model name (``"test0-valid1"``) to its iteration log: ``iteration``, ``objective``,
        ``train_mse``, ``valid_mse``, ...
    best_iterations : dict of str to int
        Model name to the iteration it kept.
    cells, assays : tuple of str
        Names of the rows of ``cell_factors`` and ``assay_factors``.
    cell_factors : ndarray of shape (n_cells, rank)
    assay_factors : ndarray of shape (n_assays, rank)
    factor_model : str
        The model the factors come from.
    scatter : dict of str to (ndarray, ndarray)
        Target to (observed, imputed) over a sample of its bins.
    panels : list of TrackPanel
    notes : list of str
        Plain sentences shown under the title (fold scheme, counts, timings).
    refinement : list of dict
        The refinement stage's entries (``OUTPUT/refinement.json``'s ``refiners``, one per refiner):
        ``inputs`` and ``validated`` (``"CELL:ASSAY"``), the ``blend`` and ``tensor`` share it uses, the
        ``validation`` table (one row per candidate: ``blend``, ``tensor``, ``min_gain`` and the mean of each
        measure over the left-out tracks; last, the baseline's means with ``blend`` None) and the ``refined``
        pairs. Empty: the run
        did not refine, its imputations are the tensor ensemble's.
    """

    title: str
    config_sha256: str
    rows: list[dict]
    summary: list[dict]
    measures: tuple[str, ...]
    histories: dict[str, list[dict]]
    best_iterations: dict[str, int]
    cells: tuple[str, ...]
    assays: tuple[str, ...]
    cell_factors: np.ndarray
    assay_factors: np.ndarray
    factor_model: str
    scatter: dict[str, tuple[np.ndarray, np.ndarray]]
    panels: list[TrackPanel]
    notes: list[str] = field(default_factory=list)
    refinement: list[dict] = field(default_factory=list)


def direction(measure: str) -> str:
    """``"lower is better"`` or ``"higher is better"``, as the report words it."""
    return "lower is better" if lower_is_better(measure) else "higher is better"


def better_side(measure: str, predictd: float | None, baseline: float | None) -> str | None:
    """``"predictd"``, ``"baseline"`` or None (a tie, or a value is missing) for one comparison."""
    if predictd is None or baseline is None or math.isnan(predictd) or math.isnan(baseline):
        return None
    if predictd == baseline:
        return None
    predictd_lower = predictd < baseline
    return "predictd" if predictd_lower == lower_is_better(measure) else "baseline"


@dataclass(frozen=True)
class MeanRecord:
    """Which measures predictd's mean beats the baseline's on, over one scope of the summary.

    Attributes
    ----------
    won, lost, tied : tuple of str
        The measures predictd's mean is better on, worse on, and equal on; a measure without both means
        is in none of them.
    """

    won: tuple[str, ...]
    lost: tuple[str, ...]
    tied: tuple[str, ...]

    @property
    def compared(self) -> int:
        """How many measures have both means."""
        return len(self.won) + len(self.lost) + len(self.tied)

    def exceptions(self) -> str:
        """The measures not won: ``"loses MSE1obs, GWcorr; ties Match1"``, empty when every one is won."""
        return "; ".join(f"{verb} {', '.join(names)}" for verb, names in (("loses", self.lost), ("ties", self.tied))
                         if names)

    def describe(self) -> str:
        """``"8 of 9 (loses MSE1obs)"``: the measures won out of those compared, then any lost or tied."""
        exceptions = self.exceptions()
        return f"{len(self.won)} of {self.compared}" + (f" ({exceptions})" if exceptions else "")


def mean_record(summary: list[dict], scope: str, measures: tuple[str, ...]) -> MeanRecord:
    """predictd's mean against the baseline's for each of ``measures`` over the ``summary`` rows of
    ``scope`` (``"all"`` or an assay), judged by :func:`better_side`."""
    rows = {row["measure"]: row for row in summary if row["scope"] == scope}
    sides = {}
    for measure in measures:
        row = rows.get(measure)
        means = (None, None) if row is None else (measure_value(row.get("predictd_mean")),
                                                  measure_value(row.get("baseline_mean")))
        if None not in means:
            sides[measure] = better_side(measure, *means)
    return MeanRecord(won=tuple(m for m, side in sides.items() if side == "predictd"),
                      lost=tuple(m for m, side in sides.items() if side == "baseline"),
                      tied=tuple(m for m, side in sides.items() if side is None))


def measure_value(value) -> float | None:
    """A measure as a float, None when it is missing or NaN (it cannot be compared)."""
    return None if value is None or math.isnan(float(value)) else float(value)
