"""The average baseline predictd reports beside itself: the same assay in the other cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.accuracy.problem import Problem


class SameAssayAverage:
    """Per bin, the mean (arcsinh) of the target's assay over the other cells' training tracks.

    The columns are those of :func:`predictd_core.pipeline.baseline_columns` for a single model (the
    same assay, other cells, among the experiments the model may see), so that its scores equal the
    ``baseline_*`` columns of predictd's own ``metrics.tsv``; the tests check it.
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
            cell, assay = layout.cell_of[target.column], layout.assay_of[target.column]
            inputs = (layout.assay_of[training] == assay) & (layout.cell_of[training] != cell)
            with np.errstate(all="ignore"):  # a bin no input covers stays NaN and is not scored
                tracks[target.name] = np.nanmean(signal[:, inputs], axis=1)
        return tracks
