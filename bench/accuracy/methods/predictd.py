"""predictd itself, through its public pipeline: ``predictd run`` with ``holdout:`` = the 5 targets, or
``predictd cv`` with them as the one test fold (PREDICTD's ensemble of validation-fold models)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pydantic import ValidationError

from predictd_core import pipeline
from predictd_core.errors import PredictdInputError
from predictd_core.impute.outputs import imputed_path
from predictd_core.model.settings import ModelSettings
from predictd_core.tracks.readers import read_track_bins

from bench.accuracy.problem import Problem, write_config


@dataclass(frozen=True)
class PredictdRun:
    """One ``predictd run`` (ingested store reused, numpy engine): one model on the 20 training tracks,
    the 5 targets read back from its imputed bigWigs.

    ``model`` is the config's ``model:`` mapping: empty for predictd's defaults; the faithful PREDICTD
    mode is ``{"preset": "predictd-2018"}``. ``ensemble`` > 0 runs ``predictd cv`` instead, with the
    targets as its single test fold (``cv: {n_test: 1, n_valid: ensemble}``): ``ensemble`` models, each
    validating on one fold of the training tracks and training on the others, averaged -- PREDICTD's
    protocol for a test fold (8 models).
    """

    name: str = "predictd"
    model: dict = field(default_factory=dict)
    ensemble: int = 0

    def check(self) -> None:
        """PredictdInputError, naming the field, when predictd does not accept ``model``."""
        try:
            ModelSettings(**self.model)
        except ValidationError as error:
            first = error.errors()[0]
            raise PredictdInputError(f"bench.accuracy method {self.name}",
                                     ".".join(["model", *map(str, first["loc"])]), first["msg"]) from None

    def impute(self, problem: Problem, work: Path) -> dict[str, np.ndarray]:
        """Run predictd into ``work/output``; the targets' imputed tracks, arcsinh, on the store's bins."""
        fields = {**problem.fields, "output": str(work / "output"), "model": self.model}
        if self.ensemble:
            fields["cv"] = {"n_test": 1, "n_valid": self.ensemble}
        config = write_config(work / "run.yaml", fields)
        (pipeline.run_cv if self.ensemble else pipeline.run_all)(config)
        return {target.name: read_track_bins(imputed_path(config.output, target.cell_type, target.assay),
                                             problem.store.bins)
                for target in problem.targets}
