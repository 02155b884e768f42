"""Score every method's imputations with predictd's own measures, on one common set of bins.

As ``predictd run`` scores a target (``predictd_core.evaluate.scoring.run_evaluate``): arcsinh scale, the
bins where the observed track, the imputed one and the same-assay baseline all have data, and the region
masks of the config's ``evaluation:`` BEDs; here the bins are those where *every* method has data, so all
methods are scored on exactly the same bins. The margins (:mod:`bench.accuracy.margins`) resample
exactly these bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictd_core.evaluate.regions import read_bed_mask
from predictd_core.model.measures import quality_measures

from bench.accuracy.problem import Problem, Target


def common_bins(observed: np.ndarray, tracks: list[np.ndarray]) -> np.ndarray:
    """Bins where ``observed`` and every track in ``tracks`` have a value (not NaN)."""
    seen = ~np.isnan(observed)
    for track in tracks:
        seen &= ~np.isnan(track)
    return seen


@dataclass(frozen=True)
class ScoredTarget:
    """One target on the bins it is scored on: their store indices (ascending), the observed track, each
    method's imputation and the region masks, all on those bins."""

    target: Target
    bins: np.ndarray
    observed: np.ndarray
    imputations: dict[str, np.ndarray]
    region_masks: dict[str, np.ndarray]


def scored_targets(problem: Problem, imputations: dict[str, dict[str, np.ndarray]],
                   baseline: dict[str, np.ndarray]) -> list[ScoredTarget]:
    """Every target of ``problem`` restricted to the bins every method, the observed track and ``baseline``
    cover (``imputations``: method name -> target name -> arcsinh track on the store's bins).

    Raises
    ------
    ValueError
        A target with no such bin.
    """
    masks = {name: read_bed_mask(path, problem.store.bins, f"evaluation.{name}")
             for name, path in problem.config.evaluation.region_beds().items()}
    observed_tracks = problem.observed()
    scored = []
    for target in problem.targets:
        observed = observed_tracks[target.name]
        tracks = {method: by_target[target.name] for method, by_target in imputations.items()}
        seen = common_bins(observed, [*tracks.values(), baseline[target.name]])
        if not seen.any():
            raise ValueError(f"{target.name}: no bin where the observed track and every imputation have data")
        scored.append(ScoredTarget(target, np.flatnonzero(seen), observed[seen],
                                   {method: track[seen] for method, track in tracks.items()},
                                   {name: mask[seen] for name, mask in masks.items()}))
    return scored


def score(problem: Problem, imputations: dict[str, dict[str, np.ndarray]], baseline: dict[str, np.ndarray],
          square: str | None = None) -> list[dict]:
    """One row per (method, target): ``square`` (when given), ``method``, ``cell_type``, ``assay``,
    ``n_bins``, then :func:`~predictd_core.model.measures.quality_measures`.

    ``imputations`` maps method name -> target name -> arcsinh track; ``baseline`` is the same-assay
    baseline of every target, which only narrows the bins (as in predictd's own evaluation).
    """
    return score_targets(scored_targets(problem, imputations, baseline), square)


def score_targets(scored: list[ScoredTarget], square: str | None = None) -> list[dict]:
    """The rows of :func:`score` from targets already restricted to their scored bins."""
    rows = []
    for item in scored:
        for method, track in item.imputations.items():
            rows.append({**({"square": square} if square is not None else {}), "method": method,
                         "cell_type": item.target.cell_type, "assay": item.target.assay,
                         "n_bins": int(item.bins.size), **quality_measures(item.observed, track, item.region_masks)})
    return rows
