"""Score every method's imputations with predictd's own measures, on one common set of bins.

As ``predictd run`` scores a target (``predictd_core.evaluate.scoring.run_evaluate``): arcsinh scale, the
bins where the observed track, the imputed one and the same-assay baseline all have data, and the region
masks of the config's ``evaluation:`` BEDs; here the bins are those where *every* method has data, so all
methods are scored on exactly the same bins.
"""

from __future__ import annotations

import numpy as np

from predictd_core.evaluate.regions import read_bed_mask
from predictd_core.model.measures import quality_measures

from bench.accuracy.problem import Problem


def common_bins(observed: np.ndarray, tracks: list[np.ndarray]) -> np.ndarray:
    """Bins where ``observed`` and every track in ``tracks`` have a value (not NaN)."""
    seen = ~np.isnan(observed)
    for track in tracks:
        seen &= ~np.isnan(track)
    return seen


def score(problem: Problem, imputations: dict[str, dict[str, np.ndarray]], baseline: dict[str, np.ndarray]
          ) -> list[dict]:
    """One row per (method, target): ``method``, ``cell_type``, ``assay``, ``n_bins``, then
    :func:`~predictd_core.model.measures.quality_measures`.

    ``imputations`` maps method name -> target name -> arcsinh track; ``baseline`` is the same-assay
    baseline of every target, which only narrows the bins (as in predictd's own evaluation).
    """
    masks = {name: read_bed_mask(path, problem.store.bins, f"evaluation.{name}")
             for name, path in problem.config.evaluation.region_beds().items()}
    rows = []
    observed_tracks = problem.observed()
    for target in problem.targets:
        observed = observed_tracks[target.name]
        tracks = {method: by_target[target.name] for method, by_target in imputations.items()}
        seen = common_bins(observed, [*tracks.values(), baseline[target.name]])
        if not seen.any():
            raise ValueError(f"{target.name}: no bin where the observed track and every imputation have data")
        target_masks = {name: mask[seen] for name, mask in masks.items()}
        for method, track in tracks.items():
            rows.append({"method": method, "cell_type": target.cell_type, "assay": target.assay,
                         "n_bins": int(seen.sum()), **quality_measures(observed[seen], track[seen], target_masks)})
    return rows
