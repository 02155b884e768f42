"""Honest margins: predictd minus each peer, with paired block-bootstrap intervals, per square and overall.

For one resample of the genome's blocks (:mod:`bench.accuracy.bootstrap`) every method's every
measure is recomputed on every target; the difference of a measure is predictd's minus the peer's,
averaged over a square's targets (and, for all squares, over the squares: the same resample serves
all of them, they share the genome). The interval is the 2.5th to 97.5th percentile of that
difference over the resamples. A **win** is an interval that excludes 0 on predictd's side (below 0
for the MSEs, where lower is better; above 0 for every other measure), a **loss** one that excludes it
on the peer's side, a **tie** one that holds 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from predictd_core.model.measures import MEASURES, REGION_MEASURES, lower_is_better

from bench.accuracy.bootstrap import block_of_bins, bootstrap_measures
from bench.accuracy.scoring import ScoredTarget

REFERENCE = "predictd"
ALL_SQUARES = "all squares"
LEVEL = 0.95
MARGIN_COLUMNS = ("scope", "measure", "better", "reference", "peer", "reference_mean", "peer_mean",
                  "difference", "low", "high", "resamples", "verdict")


def resampled_measures(scored: Sequence[ScoredTarget], counts: np.ndarray, block_bins: int
                       ) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every method's measures on every target of one square and every resample (``counts``: block draws,
    :func:`~bench.accuracy.bootstrap.draw_block_counts`, blocks of ``block_bins`` store bins).

    Returns the measure names and, per method, an array (n_targets, n_resamples, n_measures).
    """
    per_target = [bootstrap_measures(item.observed, item.imputations, block_of_bins(item.bins, block_bins), counts,
                                     item.region_masks) for item in scored]
    regions = [measure for name, measure in REGION_MEASURES.items() if name in scored[0].region_masks]
    return [*MEASURES, *regions], {method: np.stack([values[method] for values in per_target])
                                   for method in per_target[0]}


def verdict(low: float, high: float, measure: str) -> str:
    """``win``, ``loss`` or ``tie`` for an interval of (reference minus peer) of ``measure``; ``n/a`` without one."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    favours_reference = high < 0 if lower_is_better(measure) else low > 0
    favours_peer = low > 0 if lower_is_better(measure) else high < 0
    return "win" if favours_reference else "loss" if favours_peer else "tie"


def margin_rows(resampled: Mapping[str, Mapping[str, np.ndarray]], means: Mapping[str, Mapping[str, np.ndarray]],
                measures: Sequence[str], reference: str = REFERENCE, level: float = LEVEL) -> list[dict]:
    """One row per (scope, peer, measure): each square in ``resampled``'s order, then :data:`ALL_SQUARES`.

    Parameters
    ----------
    resampled : square -> method -> ndarray (n_targets, n_resamples, n_measures)
        From :func:`resampled_measures`, the same block draws for every square.
    means : square -> method -> ndarray (n_measures,)
        Each method's measures on the data itself, averaged over the square's targets.
    measures : the names of the last axis.
    reference : the method whose margins these are; every other method of the squares is a peer.
    level : the interval's coverage (0.95: the 2.5th and 97.5th percentiles).

    Returns
    -------
    list of dict
        Keys :data:`MARGIN_COLUMNS`: ``difference`` is reference minus peer on the data; ``low`` and
        ``high`` bound its resampled values; ``resamples`` counts the resamples where it is defined.
    """
    squares = list(resampled)
    peers = [method for method in resampled[squares[0]] if method != reference]
    tails = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    rows = []
    for peer in peers:
        per_square = {square: (resampled[square][reference] - resampled[square][peer]).mean(axis=0)
                      for square in squares}
        scopes = [(square, per_square[square], means[square][reference], means[square][peer]) for square in squares]
        scopes.append((ALL_SQUARES, np.mean([per_square[s] for s in squares], axis=0),
                       np.mean([means[s][reference] for s in squares], axis=0),
                       np.mean([means[s][peer] for s in squares], axis=0)))
        for scope, differences, reference_mean, peer_mean in scopes:
            defined = np.isfinite(differences).sum(axis=0)
            with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # a measure never defined
                low, high = np.nanpercentile(differences, tails, axis=0)
            for k, measure in enumerate(measures):
                lo, hi = (float(low[k]), float(high[k])) if defined[k] else (float("nan"), float("nan"))
                rows.append({"scope": scope, "measure": measure,
                             "better": "lower" if lower_is_better(measure) else "higher",
                             "reference": reference, "peer": peer, "reference_mean": float(reference_mean[k]),
                             "peer_mean": float(peer_mean[k]), "difference": float(reference_mean[k] - peer_mean[k]),
                             "low": lo, "high": hi, "resamples": int(defined[k]), "verdict": verdict(lo, hi, measure)})
    order = {scope: k for k, scope in enumerate([*squares, ALL_SQUARES])}
    return sorted(rows, key=lambda row: order[row["scope"]])  # stable: peers, then measures, within a scope
