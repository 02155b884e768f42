"""The plan of a run: tracks -> store -> train -> impute -> evaluate -> publish (report, manifest).

Each step reads what the previous one wrote under ``config.output`` (a local folder or a URL such as
``s3://bucket/runs/RUN``; every file goes through ``predictd_core.io``) so the CLI can run them one at a
time (``predictd ingest|train|impute|evaluate CONFIG``) or together: ``predictd run CONFIG`` fits one
model on everything but the holdout targets; ``predictd cv CONFIG`` fits PREDICTD's test x validation
fold models (``crossval``) and imputes with their ensemble, so every observed experiment is scored
out of sample. Both publish through the same ensemble path (a single model is an ensemble of one).
Each step's work lives in its package (store, train, crossval, impute, evaluate, publish, report); this module
orders the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from predictd_core import crossval
from predictd_core.config import RunConfig
from predictd_core.engine import Engine, make_engine
from predictd_core.errors import PredictdInputError
from predictd_core.evaluate.scoring import run_evaluate
from predictd_core.evaluate.tables import METRIC_FILES
from predictd_core.impute.ensemble import Ensemble, EnsembleMember
from predictd_core.impute.job import ImputeJob, write_imputed_tracks
from predictd_core.impute.outputs import IMPUTED_FOLDER, imputed_outputs
from predictd_core.impute.refine import (Refinement, fit_refinement, read_refinement, refinement_path,
                                         write_refinement)
from predictd_core.io import is_file, join_location
from predictd_core.model.factors import Layout
from predictd_core.publish import write_manifest
from predictd_core.report import report_data, write_report
from predictd_core.store.signal_store import SignalStore, ingest
from predictd_core.tracks.genome import GenomeBins, read_chrom_sizes, read_regions
from predictd_core.tracks.table import read_tracks_table
from predictd_core.train.estimator import Predictd
from predictd_core.train.split import choose_validation

# progress(step, done, total, detail=""): ``detail`` is a short note for plain progress lines ("valid MSE 0.0913")
Progress = Callable[..., None]


def _quiet(_step: str, _done: int, _total: int, _detail: str = "") -> None:
    pass


def holdout_columns(config: RunConfig, store: SignalStore) -> np.ndarray:
    """Store columns of the configured holdout targets; an unknown target is an error."""
    return _holdout_indices(config, [e.name for e in store.experiments])


def _holdout_indices(config: RunConfig, names: list[str]) -> np.ndarray:
    columns = []
    for index, target in enumerate(config.holdout):
        if target not in names:
            raise PredictdInputError(config.source, f"holdout[{index}]",
                                     f"unknown holdout target {target!r}: not an experiment of {config.tracks}")
        columns.append(names.index(target))
    return np.array(columns, dtype=np.int64)


def input_columns(config: RunConfig, store: SignalStore) -> np.ndarray:
    """Store columns the model may see: every observed experiment but the held-out ones."""
    return np.setdiff1d(np.arange(store.n_experiments), holdout_columns(config, store))


def run_ingest(config: RunConfig, progress: Progress = _quiet) -> SignalStore:
    """Bin, transform and store the tracks of ``config``."""
    tracks = read_tracks_table(config.tracks)
    _holdout_indices(config, [t.name for t in tracks])
    chrom_sizes = read_chrom_sizes(config.chrom_sizes)
    regions = read_regions(config.regions, chrom_sizes) if config.regions else None
    n_bins = GenomeBins.build(chrom_sizes, config.bin_size, regions).n_bins
    return ingest(tracks, chrom_sizes, config.bin_size, config.store_path, regions, config.chunk_bins,
                  progress=lambda done, total: progress("ingest", done, total),
                  processes=config.engine.processes_for(len(tracks) * n_bins))


def prepare_store(config: RunConfig, progress: Progress = _quiet) -> SignalStore:
    """The store a whole run works on: a complete store at an explicit ``store:`` is used as it is (a
    shared or simulated store, or one a cluster job ingested); otherwise the tracks are ingested."""
    if config.store is not None:
        return open_or_ingest(config, progress)
    return run_ingest(config, progress)


def open_or_ingest(config: RunConfig, progress: Progress = _quiet) -> SignalStore:
    """The complete store at ``config.store_path`` when there is one, else the tracks ingested there
    (``predictd folds``, the cloud's prepare job: a retried job reuses what an earlier attempt finished)."""
    try:
        return open_store(config)
    except PredictdInputError as error:
        if error.field != "store":  # the store is fine but the config does not fit it: say so
            raise
    return run_ingest(config, progress)


def open_store(config: RunConfig) -> SignalStore:
    """The run's store, with its holdout targets checked."""
    store = SignalStore.open(config.store_path)
    holdout_columns(config, store)
    return store


def run_train(config: RunConfig, store: SignalStore, engine: Engine, progress: Progress = _quiet,
              folder: str | Path | None = None) -> Predictd:
    """Fit one model on every non-held-out experiment; save it to ``folder`` (default ``OUTPUT/model``)."""
    layout = Layout.from_experiments(store.experiments)
    train, valid = choose_validation(layout, input_columns(config, store), config.model.validation_fraction,
                                     config.model.seed)
    model = Predictd(config.model)
    max_iters = config.model.max_iters
    model.fit(engine, layout, train, valid,
              progress=lambda row: progress("train", min(row["iteration"], max_iters), max_iters,
                                            crossval.sweep_note(row)))
    model.save(folder or single_model_folder(config), extra={"config_sha256": config.digest(),
                                                     "training_sha256": config.training_digest(),
                                                     "seed": config.model.seed})
    return model


def single_model_folder(config: RunConfig) -> str | Path:
    """``OUTPUT/model``: the one model of ``predictd run`` / ``predictd train``."""
    return join_location(config.output, "model")


def load_single_model(config: RunConfig) -> Predictd:
    """``OUTPUT/model`` of ``predictd train``; an error names the folder when it is missing."""
    folder = single_model_folder(config)
    if not is_file(join_location(folder, "model.json")):
        raise PredictdInputError(folder, "model.json", "no trained model; run train first")
    return Predictd.load(folder)


def single_model_ensemble(config: RunConfig, store: SignalStore, model: Predictd) -> Ensemble:
    """``predictd run``'s one model as an ensemble of one: it imputes every pair from the non-held-out tracks."""
    layout = Layout.from_experiments(store.experiments)
    n_pairs = len(layout.cells) * len(layout.assays)
    member = EnsembleMember("model", model.factors_, input_columns(config, store))
    return Ensemble(layout, model.ridge_, (member,), np.ones((1, n_pairs), dtype=bool))


def scored_targets(config: RunConfig, store: SignalStore) -> list[tuple[int, str]]:
    """``predictd run``'s scored experiments: the holdout targets, as (store column, kind)."""
    return [(int(k), "holdout") for k in holdout_columns(config, store)]


@dataclass(frozen=True)
class TrainedRun:
    """The fitted side of a run: the ensemble that imputes, its models by name, what gets scored."""

    ensemble: Ensemble
    models: dict[str, Predictd]
    targets: list[tuple[int, str]]
    with_spread: bool


def trained_run(config: RunConfig, store: SignalStore) -> TrainedRun:
    """The run's saved models: the cross-validated set when ``OUTPUT/folds.json`` exists, else ``OUTPUT/model``."""
    if is_file(crossval.folds_path(config)):
        folds = crossval.plan_folds(config, store)
        models = crossval.load_fold_models(config, store, folds)
        return TrainedRun(crossval.cv_ensemble(config, store, folds, models),
                          {crossval.model_name(i, j): model for (i, j), model in models.items()},
                          crossval.test_fold_targets(config, store, folds), config.cv.spread)
    model = load_single_model(config)
    return TrainedRun(single_model_ensemble(config, store, model), {"model": model}, scored_targets(config, store),
                      with_spread=False)


def fit_run_refinement(config: RunConfig, store: SignalStore, ensemble: Ensemble,
                       progress: Progress = _quiet) -> Refinement | None:
    """The refinement stage of ``config.model.refine`` for ``ensemble`` (None when disabled): each pair
    refined from the experiments its ensemble members were allowed to see, and mixed with their imputation."""
    if not config.model.refine.enabled:
        return None
    return fit_refinement(store, ensemble, config.model.refine,
                          progress=lambda done, total: progress("refine", done, total))


def run_impute(config: RunConfig, store: SignalStore, run: TrainedRun, engine: Engine,
               progress: Progress = _quiet, pairs: np.ndarray | None = None) -> list[str | Path]:
    """Write ``OUTPUT/imputed/CELL.ASSAY.bigWig`` (-log10 p) for every (cell, assay) pair of the grid
    (or for ``pairs``, indices into the ensemble's cell-major pairs) and, with ``run.with_spread``,
    ``OUTPUT/spread/CELL.ASSAY.bigWig``: the per-bin standard deviation of the ensemble members' predictions
    (arcsinh scale); each folder is published whole (:func:`~predictd_core.impute.job.write_imputed_tracks`).

    When the run refines (``config.model.refine``), ``OUTPUT/refinement.json`` records each refiner
    (:meth:`~predictd_core.impute.refine.Refinement.record`), written after the tracks are published, so a
    failed imputation leaves no record of it. Returns the written track locations.
    """
    # fitted before any writer process starts or staging folder opens: they would wait on it
    refinement = fit_run_refinement(config, store, run.ensemble, progress)
    write_imputed_tracks(config, store, ImputeJob(run.ensemble, run.with_spread, pairs, refinement), engine, progress)
    if refinement is not None:
        write_refinement(config, refinement)
    return imputed_outputs(config.output, run.ensemble.layout, run.with_spread, pairs)


@dataclass(frozen=True)
class RunOutputs:
    """What a finished run published: the ``imputed`` folder; ``metrics`` (``metrics.tsv``) and ``report``
    (``report.html``), written when ``rows`` (one per scored experiment, :mod:`predictd_core.evaluate.tables`)
    is not empty; the ``manifest``, written last; the fitted ``models`` by name."""

    imputed: str | Path
    metrics: str | Path
    report: str | Path
    manifest: str | Path
    rows: list[dict]
    models: dict[str, Predictd]


def publish(config: RunConfig, store: SignalStore, run: TrainedRun, engine: Engine,
            progress: Progress = _quiet) -> RunOutputs:
    """impute, then :func:`finish`."""
    run_impute(config, store, run, engine, progress)
    return finish(config, store, run, progress)


def finish(config: RunConfig, store: SignalStore, run: TrainedRun, progress: Progress = _quiet) -> RunOutputs:
    """evaluate -> report -> manifest, from the imputed tracks already written (and the refinement stage's
    record, :func:`~predictd_core.impute.refine.read_refinement`, which the report shows and the manifest lists)."""
    evaluation = run_evaluate(config, store, run.ensemble, run.targets, progress)
    output = config.output
    outputs = imputed_outputs(output, run.ensemble.layout, run.with_spread)
    refiners = read_refinement(config)
    if refiners is not None:
        outputs.append(refinement_path(config))
    if evaluation.rows:
        outputs += [join_location(output, name) for name in METRIC_FILES]
        outputs.append(write_report(join_location(output, "report.html"),
                                    report_data(config, run.models, evaluation, refiners)))
    manifest = write_manifest(config, store, run.models, outputs, evaluation)
    return RunOutputs(imputed=join_location(output, IMPUTED_FOLDER), metrics=join_location(output, "metrics.tsv"),
                      report=join_location(output, "report.html"), manifest=manifest, rows=evaluation.rows,
                      models=run.models)


def run_all(config: RunConfig, progress: Progress = _quiet) -> RunOutputs:
    """ingest, train one model, impute, evaluate the holdout targets, report and the manifest."""
    store = prepare_store(config, progress)
    engine = make_engine(config.engine, store)
    try:
        model = run_train(config, store, engine, progress)
        run = TrainedRun(single_model_ensemble(config, store, model), {"model": model},
                         scored_targets(config, store), with_spread=False)
        return publish(config, store, run, engine, progress)
    finally:
        engine.close()


def run_cv(config: RunConfig, progress: Progress = _quiet) -> RunOutputs:
    """ingest, folds, every fold model not yet trained for this config, then the ensemble's outputs."""
    store = prepare_store(config, progress)
    folds = crossval.plan_folds(config, store)
    engine = make_engine(config.engine, store)
    try:
        for i, j in folds.models():
            if not crossval.is_trained(config, store, i, j):
                crossval.train_fold(config, store, engine, folds, i, j, progress)
        return publish(config, store, trained_run(config, store), engine, progress)
    finally:
        engine.close()


def run_extend(config: RunConfig, progress: Progress = _quiet) -> RunOutputs:
    """ingest the grown tracks table, extend every fold model with what is new, then publish the ensemble."""
    crossval.require_folds(config)  # before ingest: a run that cannot extend writes nothing
    store = run_ingest(config, progress)
    engine = make_engine(config.engine, store)
    try:
        crossval.extend_fold_models(config, store, engine, progress)
        return publish(config, store, trained_run(config, store), engine, progress)
    finally:
        engine.close()
