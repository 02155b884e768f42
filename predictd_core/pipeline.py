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

import numpy as np

from predictd_core import crossval
from predictd_core.config import RunConfig
from predictd_core.engine import Engine, cluster_task_runner, make_engine
from predictd_core.engine.ingest import ingest_on_tasks
from predictd_core.errors import PredictdInputError
from predictd_core.evaluate.scoring import run_evaluate
from predictd_core.evaluate.tables import METRIC_FILES
from predictd_core.impute.ensemble import Ensemble
from predictd_core.impute.job import ImputeJob, write_imputed_tracks
from predictd_core.impute.outputs import IMPUTED_FOLDER, imputed_outputs
from predictd_core.impute.refine import (Refinement, fit_refinement, read_refinement, refinement_path,
                                         write_refinement)
from predictd_core.impute.trained_run import TrainedRun, single_model_run
from predictd_core.io import is_file, join_location
from predictd_core.model.factors import Layout
from predictd_core.progress import Progress, no_progress
from predictd_core.publish import write_manifest
from predictd_core.report import report_data, write_report
from predictd_core.store.signal_store import SignalStore, ingest
from predictd_core.tracks.genome import GenomeBins, read_chrom_sizes, read_regions
from predictd_core.tracks.table import read_tracks_table
from predictd_core.train.columns import holdout_columns, holdout_indices, input_columns
from predictd_core.train.estimator import Predictd
from predictd_core.train.run_step import model_identity, sweep_progress
from predictd_core.train.split import choose_validation
from predictd_core.train.sample import training_engine


def run_ingest(config: RunConfig, progress: Progress = no_progress) -> SignalStore:
    """Bin, transform and store the tracks of ``config``: on a Spark cluster in the executors' tasks
    (:func:`~predictd_core.engine.ingest.ingest_on_tasks`), else in ``config.engine.processes`` processes."""
    tracks = read_tracks_table(config.tracks)
    holdout_indices(config, [t.name for t in tracks])
    chrom_sizes = read_chrom_sizes(config.chrom_sizes)
    regions = read_regions(config.regions, chrom_sizes) if config.regions else None
    bins = GenomeBins.build(chrom_sizes, config.bin_size, regions)
    runner = cluster_task_runner(config.engine)
    if runner is not None:  # a Spark cluster: its executors read the tracks and write the chunks
        return ingest_on_tasks(runner, tracks, chrom_sizes, bins, config.store_path, config.chunk_bins,
                               progress=lambda done, total: progress("ingest", done, total))
    return ingest(tracks, chrom_sizes, config.bin_size, config.store_path, regions, config.chunk_bins,
                  progress=lambda done, total: progress("ingest", done, total),
                  processes=config.engine.processes_for(len(tracks) * bins.n_bins))


def prepare_store(config: RunConfig, progress: Progress = no_progress) -> SignalStore:
    """The store a whole run works on: a complete store at an explicit ``store:`` is used as it is (a
    shared or simulated store, or one a cluster job ingested); otherwise the tracks are ingested."""
    if config.store is not None:
        return open_or_ingest(config, progress)
    return run_ingest(config, progress)


def open_or_ingest(config: RunConfig, progress: Progress = no_progress) -> SignalStore:
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


def run_train(config: RunConfig, store: SignalStore, engine: Engine, progress: Progress = no_progress,
              folder: str | Path | None = None) -> Predictd:
    """Fit one model on every non-held-out experiment; save it to ``folder`` (default ``OUTPUT/model``)."""
    layout = Layout.from_experiments(store.experiments)
    train, valid = choose_validation(layout, input_columns(config, store), config.model.validation_fraction,
                                     config.model.seed)
    model = Predictd(config.model)
    model.fit(engine, layout, train, valid, progress=sweep_progress(progress, "train", config.model.max_iters))
    model.save(folder or single_model_folder(config), extra=model_identity(config, model))
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


def trained_run(config: RunConfig, store: SignalStore) -> TrainedRun:
    """The run's saved models: the cross-validated set when ``OUTPUT/folds.json`` exists, else ``OUTPUT/model``."""
    if is_file(crossval.folds_path(config)):
        return crossval.cv_run(config, store)
    return single_model_run(config, store, load_single_model(config))


def fit_run_refinement(config: RunConfig, store: SignalStore, ensemble: Ensemble,
                       progress: Progress = no_progress) -> Refinement | None:
    """The refinement stage of ``config.model.refine`` for ``ensemble`` (None when disabled): each pair
    refined from the experiments its ensemble members were allowed to see, and mixed with their imputation."""
    if not config.model.refine.enabled:
        return None
    return fit_refinement(store, ensemble, config.model.refine,
                          progress=lambda done, total: progress("refine", done, total))


def run_impute(config: RunConfig, store: SignalStore, run: TrainedRun, engine: Engine,
               progress: Progress = no_progress, pairs: np.ndarray | None = None) -> list[str | Path]:
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
    """What a finished run published, what it scored and what it fitted.

    Attributes
    ----------
    imputed : str or Path
        The ``imputed`` folder: a bigWig (-log10 p) for every (cell type, assay) pair of the grid.
    metrics, report : str or Path
        ``metrics.tsv`` and ``report.html``, written when ``rows`` is not empty.
    manifest : str or Path
        ``manifest.json``, written last.
    rows : list of dict
        One per scored experiment (:mod:`predictd_core.evaluate.tables`): ``cell_type``, ``assay``, ``kind``,
        ``n_bins``, the measures by name and the baseline's as ``baseline_<measure>``.
    models : dict of str to Predictd
        The fitted models by name: ``"model"`` (:func:`run_all`), ``"test{i}-valid{j}"`` (:func:`run_cv`).

    Examples
    --------
    >>> import csv, os, tempfile
    >>> from predictd_core import RunConfig, run_all, simulate_compendium
    >>> tmp = tempfile.TemporaryDirectory()
    >>> simulated = simulate_compendium(tmp.name + "/sim", n_cells=3, n_assays=3, n_bins=400, signal_format="store")
    >>> config = RunConfig(tracks=str(simulated.tracks_tsv), chrom_sizes=str(simulated.chrom_sizes),
    ...                    store=str(simulated.store), holdout=["E001:H3K4me3"], output=tmp.name + "/run",
    ...                    engine={"kind": "numpy"}, model={"max_iters": 10})
    >>> result = run_all(config)
    >>> sorted(os.listdir(config.output))  # doctest: +NORMALIZE_WHITESPACE
    ['imputed', 'manifest.json', 'metrics.parquet', 'metrics.tsv', 'model', 'refinement.json',
     'report.html', 'summary.tsv']
    >>> len(os.listdir(result.imputed))   # every (cell type, assay) pair of the grid
    9
    >>> with open(result.metrics) as handle:
    ...     table = list(csv.DictReader(handle, dialect="excel-tab"))
    >>> table[0]["assay"], table[0]["kind"], table[0]["MSEglobal"], round(result.rows[0]["MSEglobal"], 6)
    ('H3K4me3', 'holdout', '0.110021', 0.110021)
    >>> result.models["model"].best_iteration_
    8
    """

    imputed: str | Path
    metrics: str | Path
    report: str | Path
    manifest: str | Path
    rows: list[dict]
    models: dict[str, Predictd]


def publish(config: RunConfig, store: SignalStore, run: TrainedRun, engine: Engine,
            progress: Progress = no_progress) -> RunOutputs:
    """impute, then :func:`finish`."""
    run_impute(config, store, run, engine, progress)
    return finish(config, store, run, progress, engine)


def finish(config: RunConfig, store: SignalStore, run: TrainedRun, progress: Progress = no_progress,
           engine: Engine | None = None) -> RunOutputs:
    """evaluate -> report -> manifest, from the imputed tracks already written (and the refinement stage's
    record, :func:`~predictd_core.impute.refine.read_refinement`, which the report shows and the manifest lists).
    The targets are scored on ``engine``'s tasks when it is distributed (Spark), else in this process."""
    evaluation = run_evaluate(config, store, run.ensemble, run.targets, progress, engine=engine)
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


def run_all(config: RunConfig, progress: Progress = no_progress) -> RunOutputs:
    """``predictd run``: ingest, train one model, impute, evaluate the holdout targets, report and the manifest.

    Parameters
    ----------
    config : RunConfig
    progress : callable, optional
        ``progress(step, done, total, detail="")`` as each step advances (``"ingest"``, ``"train"``, ...).

    Returns
    -------
    RunOutputs
        A row per holdout target, and the one model, ``"model"``.

    Examples
    --------
    >>> import tempfile
    >>> from predictd_core import RunConfig, run_all, simulate_compendium
    >>> tmp = tempfile.TemporaryDirectory()
    >>> simulated = simulate_compendium(tmp.name + "/sim", n_cells=3, n_assays=3, n_bins=400, signal_format="store")
    >>> config = RunConfig(tracks=str(simulated.tracks_tsv), chrom_sizes=str(simulated.chrom_sizes),
    ...                    store=str(simulated.store), holdout=["E001:H3K4me3"], output=tmp.name + "/run",
    ...                    engine={"kind": "numpy"}, model={"max_iters": 10})
    >>> result = run_all(config)
    >>> list(result.models)
    ['model']
    >>> row = result.rows[0]
    >>> row["cell_type"], row["assay"], row["kind"], round(row["MSEglobal"], 3), round(row["baseline_MSEglobal"], 3)
    ('E001', 'H3K4me3', 'holdout', 0.11, 0.12)
    """
    store = prepare_store(config, progress)
    with training_engine(config, store) as engine:
        model = run_train(config, store, engine, progress)
    with make_engine(config.engine, store) as engine:
        return publish(config, store, single_model_run(config, store, model), engine, progress)


def run_cv(config: RunConfig, progress: Progress = no_progress) -> RunOutputs:
    """``predictd cv``: ingest, folds, every fold model not yet trained for this config, then the ensemble's
    outputs: every observed experiment imputed by the models that never saw it, and scored.

    Parameters
    ----------
    config : RunConfig
    progress : callable, optional
        ``progress(step, done, total, detail="")`` as each step advances (``"ingest"``, each fold model, ...).

    Returns
    -------
    RunOutputs
        A row per scored experiment (``kind`` ``"test-fold"``, or ``"holdout"`` for the holdout targets), and
        the fold models, ``"test{i}-valid{j}"``.

    Examples
    --------
    >>> import tempfile
    >>> from predictd_core import RunConfig, run_cv, simulate_compendium
    >>> tmp = tempfile.TemporaryDirectory()
    >>> simulated = simulate_compendium(tmp.name + "/sim", n_cells=3, n_assays=3, n_bins=400, signal_format="store")
    >>> config = RunConfig(tracks=str(simulated.tracks_tsv), chrom_sizes=str(simulated.chrom_sizes),
    ...                    store=str(simulated.store), holdout=["E001:H3K4me3"], output=tmp.name + "/run",
    ...                    engine={"kind": "numpy"}, model={"max_iters": 10}, cv={"n_test": 2, "n_valid": 2})
    >>> result = run_cv(config)
    >>> list(result.models)
    ['test0-valid0', 'test0-valid1', 'test1-valid0', 'test1-valid1']
    >>> len(result.rows), sorted({row["kind"] for row in result.rows})
    (6, ['holdout', 'test-fold'])
    >>> sum(row["MSEglobal"] < row["baseline_MSEglobal"] for row in result.rows)   # better than the baseline
    5
    """
    store = prepare_store(config, progress)
    folds = crossval.plan_folds(config, store)
    with training_engine(config, store) as engine:
        crossval.train_missing(config, store, engine, folds, progress)
    with make_engine(config.engine, store) as engine:
        return publish(config, store, crossval.cv_run(config, store), engine, progress)


def run_extend(config: RunConfig, progress: Progress = no_progress) -> RunOutputs:
    """ingest the grown tracks table, extend every fold model with what is new, then publish the ensemble."""
    crossval.require_folds(config)  # before ingest: a run that cannot extend writes nothing
    store = run_ingest(config, progress)
    with training_engine(config, store) as engine:
        crossval.extend_fold_models(config, store, engine, progress)
    with make_engine(config.engine, store) as engine:
        return publish(config, store, crossval.cv_run(config, store), engine, progress)
