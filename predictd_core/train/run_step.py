"""Training as a step of a run: a fit's sweeps reported as the run's progress, and what is saved with a
fitted model to identify it (``predictd run``'s one model and ``predictd cv``'s fold models alike)."""

from __future__ import annotations

from typing import Any

from predictd_core.config import RunConfig
from predictd_core.progress import Progress
from predictd_core.train.estimator import Predictd, ProgressFn


def sweep_progress(progress: Progress, step: str, max_iters: int) -> ProgressFn:
    """A fit's per-sweep callback (:meth:`~predictd_core.train.estimator.Predictd.fit`) that reports each
    sweep to the run's ``progress`` as ``(step, sweep, max_iters, "valid MSE 0.0913")``."""
    return lambda row: progress(step, min(row["iteration"], max_iters), max_iters,
                                f"valid MSE {row['valid_mse']:.4f}")


def model_identity(config: RunConfig, model: Predictd, **placement: Any) -> dict[str, Any]:
    """The ``model.json`` fields that tie a saved model to its run: the config's digests, its place in the
    run (a fold model's folds and test columns), and its seed."""
    return {"config_sha256": config.digest(), "training_sha256": config.training_digest(), **placement,
            "seed": model.settings.seed}
