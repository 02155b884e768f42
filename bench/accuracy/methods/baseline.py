"""The average baseline predictd reports beside itself: the same assay in the other cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.accuracy.problem import Problem


class SameAssayAverage:
    """Per bin, the mean (arcsinh) of the target's assay over the other cells' training tracks.

    The columns are :meth:`predictd_core.model.factors.Layout.same_assay_columns` of the training tracks, as
    predictd's own baseline picks them for a single model, so that its scores equal the ``baseline_*``
    columns of predictd's ``metrics.tsv``; the tests check it.
    """

    name = "baseline"

    def check(self) -> None:
        """Always runs: numpy only."""

    def impute(self, problem: Problem, work: Path) -> dict[str, np.ndarray]:
        """The baseline track of every target (NaN where no input covers a bin); ``work`` is not used."""
        layout, training = problem.layout, problem.training
        signal = problem.store.read_columns(training)
        tracks = {}
        for target in problem.targets:
            inputs = np.isin(training, layout.same_assay_columns(training, target.column))
            with np.errstate(all="ignore"):  # a bin no input covers stays NaN and is not scored
                tracks[target.name] = np.nanmean(signal[:, inputs], axis=1)
        return tracks
