"""What a finished run's report shows (:class:`~predictd_core.report.data.ReportData`), gathered from its
fitted models, its evaluation and its refinement stage's record."""

from __future__ import annotations

from predictd_core.config import RunConfig
from predictd_core.evaluate.scoring import Evaluation
from predictd_core.evaluate.tables import measure_names, summary_rows
from predictd_core.io import location_name
from predictd_core.report.data import ReportData
from predictd_core.train.estimator import Predictd


def report_data(config: RunConfig, models: dict[str, Predictd], evaluation: Evaluation,
                refinement: list[dict] | None = None) -> ReportData:
    """What the report shows, gathered from the fitted models, the evaluation and the refinement stage's
    record (:func:`~predictd_core.impute.refine.read_refinement`; None or empty: the run did not refine)."""
    first_name, first = next(iter(models.items()))
    kinds = {kind: sum(row["kind"] == kind for row in evaluation.rows) for kind in ("test-fold", "holdout")}
    notes = [f"{len(models)} model(s), rank {first.rank_}, solver {first.settings.solver}; "
             f"{kinds['test-fold']} experiments scored out of sample by their test fold's models, "
             f"{kinds['holdout']} configured holdout target(s) scored by every model.",
             "Baseline: the average (arcsinh) of the same assay in the other cells, from the experiments the "
             "imputing models were allowed to see."]
    return ReportData(
        title=f"predictd: {location_name(config.output)}", config_sha256=config.digest(), rows=evaluation.rows,
        summary=summary_rows(evaluation.rows), measures=tuple(measure_names(evaluation.rows)),
        histories={name: model.history_ for name, model in models.items()},
        best_iterations={name: model.best_iteration_ for name, model in models.items()},
        cells=first.layout_.cells, assays=first.layout_.assays, cell_factors=first.factors_.C,
        assay_factors=first.factors_.A, factor_model=first_name, scatter=evaluation.scatter,
        panels=evaluation.panels, notes=notes, refinement=list(refinement or []))
