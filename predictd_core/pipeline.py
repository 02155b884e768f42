"""The data path of one run: tracks -> store -> train -> impute -> evaluate -> publish (report, manifest).

Each step reads what the previous one wrote under ``config.output`` (a local folder or a URL such as
``s3://bucket/runs/RUN``; every file goes through ``predictd_core.io``) so the CLI can run them one at a
time (``predictd ingest|train|impute|evaluate CONFIG``) or together: ``predictd run CONFIG`` fits one
model on everything but the holdout targets; ``predictd cv CONFIG`` fits PREDICTD's test x validation
fold models (``crossval``) and imputes with their ensemble, so every observed experiment is scored
out of sample. Both publish through the same ensemble path (a single model is an ensemble of one).
"""

from __future__ import annotations

import json
import math
import platform
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from predictd_core import crossval
from predictd_core.config import RunConfig, parse_region
from predictd_core.engine import make_engine
from predictd_core.errors import PredictdInputError
from predictd_core.evaluate.measures import quality_measures
from predictd_core.evaluate.regions import read_bed_mask
from predictd_core.evaluate.tables import METRIC_FILES, measure_names, summary_rows, write_metrics
from predictd_core.impute.ensemble import Ensemble, EnsembleMember, ensemble_chunk
from predictd_core.impute.parallel import compute_processes, write_chunks
from predictd_core.impute.refine import Refinement, fit_refinement
from predictd_core.impute.write_tracks import ParallelTrackWriter
from predictd_core.io import (is_file, join_location, location_name, read_bytes, relative_location,
                              staged_folder, write_atomic)
from predictd_core.model.estimator import Predictd
from predictd_core.model.factors import Layout
from predictd_core.model.split import choose_validation
from predictd_core.report.data import ReportData, TrackPanel
from predictd_core.report.html import write_report
from predictd_core.store.signal_store import SignalStore, ingest
from predictd_core.tracks.genome import GenomeBins, read_chrom_sizes, read_regions
from predictd_core.tracks.readers import SignalTrack
from predictd_core.tracks.table import read_tracks_table

# progress(step, done, total, detail=""): ``detail`` is a short note for plain progress lines ("valid MSE 0.0913")
Progress = Callable[..., None]

IMPUTED_FOLDER = "imputed"
SPREAD_FOLDER = "spread"
MANIFEST_FILE = "manifest.json"
REFINEMENT_FILE = "refinement.json"


def _quiet(_step: str, _done: int, _total: int, _detail: str = "") -> None:
    pass


def track_file(cell: str, assay: str) -> str:
    """The file name of the (cell, assay) track in ``imputed/`` and ``spread/``."""
    return f"{cell}.{assay}.bigWig"


def imputed_path(output: str | Path, cell: str, assay: str) -> str | Path:
    """Where the imputed track of (cell, assay) goes."""
    return join_location(output, IMPUTED_FOLDER, track_file(cell, assay))


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


def run_train(config: RunConfig, store: SignalStore, engine, progress: Progress = _quiet,
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


def single_model_ensemble(config: RunConfig, store: SignalStore, model: Predictd) -> Ensemble:
    """``predictd run``'s one model as an ensemble of one: it imputes every pair from the non-held-out tracks."""
    layout = Layout.from_experiments(store.experiments)
    n_pairs = len(layout.cells) * len(layout.assays)
    member = EnsembleMember("model", model.factors_, input_columns(config, store))
    return Ensemble(layout, model.ridge_, (member,), np.ones((1, n_pairs), dtype=bool))


@dataclass(frozen=True)
class _ImputeJob:
    ensemble: Ensemble
    with_spread: bool
    pairs: np.ndarray | None
    refinement: Refinement | None = None


def _impute_chunk(Y: np.ndarray, job: _ImputeJob) -> tuple[np.ndarray, np.ndarray | None]:
    """The chunk's imputation (the ensemble mean, refined when the run refines) and the ensemble's spread,
    arcsinh, float32 (half the bytes back to the driver); the writers turn the mean into -log10 p."""
    mean, spread = ensemble_chunk(Y, job.ensemble, job.with_spread, job.pairs)
    if job.refinement is not None:
        pairs = np.arange(job.ensemble.n_pairs) if job.pairs is None else job.pairs
        mean = job.refinement.apply(Y, mean, pairs)
    return mean.astype(np.float32), None if spread is None else spread.astype(np.float32)


def fit_run_refinement(config: RunConfig, store: SignalStore, ensemble: Ensemble,
                       progress: Progress = _quiet) -> Refinement | None:
    """The refinement stage of ``config.model.refine`` for ``ensemble`` (None when disabled): each pair
    refined from the experiments its ensemble members were allowed to see, and mixed with their imputation."""
    if not config.model.refine.enabled:
        return None
    return fit_refinement(store, ensemble, config.model.refine,
                          progress=lambda done, total: progress("refine", done, total))


def run_impute(config: RunConfig, store: SignalStore, run: "TrainedRun", engine,
               progress: Progress = _quiet, pairs: np.ndarray | None = None) -> list[str | Path]:
    """Write ``OUTPUT/imputed/CELL.ASSAY.bigWig`` (-log10 p) for every (cell, assay) pair of the grid
    (or for ``pairs``, indices into the ensemble's cell-major pairs).

    With ``run.with_spread``, also ``OUTPUT/spread/CELL.ASSAY.bigWig``: the per-bin standard deviation
    of the ensemble members' predictions (arcsinh scale). The tracks are written to local staging
    folders (:func:`predictd_core.io.staged_folder`) and published only when every track is complete:
    locally each folder appears whole, on an object store each track is uploaded as one object.
    The tracks are written side by side by ``config.engine.processes`` processes
    (:class:`~predictd_core.impute.write_tracks.ParallelTrackWriter`); on the numpy engine as many
    processes compute the chunks side by side (:mod:`predictd_core.impute.parallel`).

    When the run refines (``config.model.refine``), ``OUTPUT/refinement.json`` records each refiner
    (:meth:`~predictd_core.impute.refine.Refinement.record`), written after the tracks are published, so a
    failed imputation leaves no record of it. Returns the written track locations.
    """
    names = _track_names(run, pairs)
    # fitted before any writer process starts or staging folder opens: they would wait on it
    refinement = fit_run_refinement(config, store, run.ensemble, progress)
    job = _ImputeJob(run.ensemble, run.with_spread, pairs, refinement)
    with ExitStack() as stack:
        paths, from_arcsinh = [], []  # imputed/ (means, written as -log10 p), then spread/: _impute_chunk's order
        for folder in _imputed_folders(run):
            work = stack.enter_context(staged_folder(join_location(config.output, folder)))
            paths += [work / name for name in names]
            from_arcsinh += [folder == IMPUTED_FOLDER] * len(names)
        processes = config.engine.processes_for(len(paths) * store.bins.n_bins)
        computing = compute_processes(engine, processes, len(paths))
        writer = stack.enter_context(ParallelTrackWriter(paths, store.bins, store.chunk_bins, processes, from_arcsinh,
                                                         computing))
        for chunk in write_chunks(engine, _impute_chunk, job, writer, computing):
            progress("impute", chunk + 1, store.n_chunks)
    if job.refinement is not None:
        write_refinement(config, job.refinement)
    return imputed_outputs(config, run, pairs)


def refinement_path(config: RunConfig) -> str | Path:
    """``OUTPUT/refinement.json``: how the run's refinement stage was fitted."""
    return join_location(config.output, REFINEMENT_FILE)


def write_refinement(config: RunConfig, refinement: Refinement) -> str | Path:
    """``OUTPUT/refinement.json`` = ``{"refiners": refinement.record()}``, atomically; a measure that is not
    finite (NaN on a flat track, a -inf smallest gain) is written as null, so any JSON reader takes the file."""
    path = refinement_path(config)
    document = {"refiners": _finite_or_null(refinement.record())}
    write_atomic(path, json.dumps(document, indent=2, allow_nan=False).encode())
    return path


def _finite_or_null(value):
    """``value`` (JSON-ready lists, dicts and scalars) with every non-finite float replaced by None."""
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_refinement(config: RunConfig) -> list[dict] | None:
    """The refiners of ``OUTPUT/refinement.json`` (:func:`write_refinement`), or None when the run does not
    refine or no imputation wrote the file. A file left by an earlier run that refined is ignored when this
    config does not refine: its imputation replaced the tracks without rewriting the file."""
    path = refinement_path(config)
    if not config.model.refine.enabled or not is_file(path):
        return None
    try:
        refiners = json.loads(read_bytes(path))["refiners"]
    except (ValueError, KeyError, TypeError) as error:
        raise PredictdInputError(path, "refiners", f"not a refinement record: {error}") from None
    if not isinstance(refiners, list):
        raise PredictdInputError(path, "refiners", "not a list of refiners")
    return refiners


def read_track_bins(path: str | Path, store: SignalStore, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """A written track (local or at a URL) read back into the store's bins ``[lo, hi)`` (default: all),
    arcsinh scale."""
    chrom_sizes = dict(store.bins.contigs)
    with tempfile.TemporaryDirectory(prefix="predictd-track-") as cache:  # a remote track is downloaded here
        track = SignalTrack(str(path), chrom_sizes, Path(cache))
        try:
            parts = [track.bin_means(contig, start, end, store.bins.bin_size)
                     for contig, start, end, _, _ in store.bins.runs(lo, store.bins.n_bins if hi is None else hi)]
        finally:
            track.close()
    return np.arcsinh(np.concatenate(parts))


@dataclass
class Evaluation:
    """What evaluate measured: metric rows, and the samples and windows the report draws."""

    rows: list[dict]
    scatter: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    panels: list[TrackPanel] = field(default_factory=list)


SCATTER_BINS = 3000  # bins per target drawn in the report's scatter: enough to see the shape, small to embed
PANEL_BINS = 400  # a 10 kb browser window at 25 bp
MAX_PANELS = 5


def baseline_columns(ensemble: Ensemble, column: int) -> np.ndarray:
    """The baseline's inputs for store column ``column``: the same assay in other cells, among the
    experiments its ensemble members were allowed to see (so both methods use the same data)."""
    layout = ensemble.layout
    return layout.same_assay_columns(ensemble.seen_columns(layout.cell_of[column], layout.assay_of[column]), column)


def scored_targets(config: RunConfig, store: SignalStore) -> list[tuple[int, str]]:
    """``predictd run``'s scored experiments: the holdout targets, as (store column, kind)."""
    return [(int(k), "holdout") for k in holdout_columns(config, store)]


def run_evaluate(config: RunConfig, store: SignalStore, ensemble: Ensemble, targets: list[tuple[int, str]],
                 progress: Progress = _quiet) -> Evaluation:
    """Score each target's imputed track against the observed one, beside the baseline.

    The baseline is the average (arcsinh) of the same assay in the other cells (see
    :func:`baseline_columns`). Both are scored on the bins where the observed track, the imputed
    one and the baseline all have data. Region MSEs are added for the configured BEDs. Writes
    ``OUTPUT/metrics.tsv``, ``metrics.parquet`` and ``summary.tsv`` (means and win counts).
    """
    masks = {name: read_bed_mask(path, store.bins, f"evaluation.{name}")
             for name, path in config.evaluation.region_beds().items()}
    windows = _browser_windows(config, store)
    panel_assays: set[int] = set()
    rng = np.random.default_rng(0)
    result = Evaluation(rows=[])
    for column, kind in targets:
        experiment = store.experiments[column]
        path = imputed_path(config.output, experiment.cell_type, experiment.assay)
        if not is_file(path):
            raise PredictdInputError(path, "imputed", "imputed track missing; run impute first")
        inputs = baseline_columns(ensemble, column)
        signal = store.read_columns([column, *inputs])  # the target and its baseline's inputs, one pass
        observed, imputed = signal[:, 0], read_track_bins(path, store)
        with np.errstate(all="ignore"):  # a bin no input covers is NaN, and left out below
            baseline = np.nanmean(signal[:, 1:], axis=1) if inputs.size else np.full(observed.shape, np.nan)
        seen = ~np.isnan(observed) & ~np.isnan(imputed) & ~np.isnan(baseline)
        target_masks = {name: mask[seen] for name, mask in masks.items()}
        row = {"cell_type": experiment.cell_type, "assay": experiment.assay, "kind": kind, "n_bins": int(seen.sum())}
        if not seen.any():
            raise PredictdInputError(path, experiment.name, "no bin where the observed track, the imputed one "
                                     "and the same-assay baseline all have data; nothing to score")
        row.update(quality_measures(observed[seen], imputed[seen], target_masks))
        row.update({f"baseline_{k}": v
                    for k, v in quality_measures(observed[seen], baseline[seen], target_masks).items()})
        result.rows.append(row)
        sample = rng.choice(np.flatnonzero(seen), size=min(SCATTER_BINS, int(seen.sum())), replace=False)
        result.scatter[experiment.name] = (observed[sample], np.maximum(imputed[sample], 0.0))
        assay = int(ensemble.layout.assay_of[column])
        if len(result.panels) < MAX_PANELS and assay not in panel_assays:
            panel_assays.add(assay)
            result.panels.append(_panel(config, store, experiment, observed, imputed, baseline, windows))
        progress("evaluate", len(result.rows), len(targets))
    if result.rows:
        write_metrics(config.output, result.rows)
    return result


def _browser_windows(config: RunConfig, store: SignalStore) -> list[tuple[int, int]]:
    windows = []
    for index, region in enumerate(config.evaluation.browser_regions):
        try:
            windows.append(store.bins.bin_range(*parse_region(region)))
        except ValueError as error:
            raise PredictdInputError(config.source, f"evaluation.browser_regions[{index}]", str(error)) from None
    return windows


def _panel(config: RunConfig, store: SignalStore, experiment, observed: np.ndarray, imputed: np.ndarray,
           baseline: np.ndarray, windows: list[tuple[int, int]]) -> TrackPanel:
    """The configured window, or else the 10 kb around the target's strongest observed signal."""
    if windows:
        lo, hi = windows[0]
    else:
        smooth = np.convolve(np.nan_to_num(observed), np.ones(PANEL_BINS // 4), mode="same")
        centre = int(np.argmax(smooth))
        lo = max(0, min(centre - PANEL_BINS // 2, observed.size - PANEL_BINS))
        hi = min(observed.size, lo + PANEL_BINS)
    (contig, start, _, _, hi), *_ = store.bins.runs(lo, hi)  # a panel shows one contiguous span
    spread_path = join_location(config.output, SPREAD_FOLDER, track_file(experiment.cell_type, experiment.assay))
    spread = read_track_bins(spread_path, store, lo, hi) if is_file(spread_path) else None
    # The spread track holds arcsinh-scale values as written; undo read_track_bins' arcsinh.
    return TrackPanel(target=experiment.name, contig=contig, start=start, bin_size=store.bins.bin_size,
                      observed=observed[lo:hi], imputed=np.maximum(imputed[lo:hi], 0.0), baseline=baseline[lo:hi],
                      spread=None if spread is None else np.sinh(spread))


def _versions() -> dict[str, str]:
    names = ("predictd", "numpy", "pyspark", "zarr", "pyBigWig", "pydantic")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["python"] = platform.python_version()
    return found


def write_manifest(config: RunConfig, store: SignalStore, models: dict[str, Predictd], outputs: list[str | Path],
                   evaluation: Evaluation) -> str | Path:
    """``OUTPUT/manifest.json``, written last: config hash, versions, inputs, models, outputs (relative to
    OUTPUT), metrics. Its presence says the run's outputs are complete."""
    manifest = {
        "config_sha256": config.digest(),
        "training_sha256": config.training_digest(),
        "config": config.model_dump(),
        "versions": _versions(),
        "inputs": [{"cell_type": e.cell_type, "assay": e.assay, "path": e.path} for e in store.experiments],
        "store": config.store_path,
        "models": [{"name": name, "rank": model.rank_, "solver": model.settings.solver, "seed": model.settings.seed,
                    "best_iteration": model.best_iteration_, "iterations": len(model.history_)}
                   for name, model in models.items()],
        "outputs": sorted(relative_location(location, config.output) for location in outputs),
        "metrics": evaluation.rows,
    }
    path = join_location(config.output, MANIFEST_FILE)
    write_atomic(path, json.dumps(manifest, indent=2, default=float).encode())
    return path


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


def _imputed_folders(run: TrainedRun) -> list[str]:
    """The folders :func:`run_impute` writes, in the order of :func:`_impute_chunk`'s results."""
    return [IMPUTED_FOLDER] + ([SPREAD_FOLDER] if run.with_spread else [])


def _track_names(run: TrainedRun, pairs: np.ndarray | None = None) -> list[str]:
    """The file name of every pair's track (or of ``pairs``'), in the ensemble's (cell-major) order."""
    layout = run.ensemble.layout
    cells, assays = layout.all_pairs()
    if pairs is not None:
        cells, assays = cells[pairs], assays[pairs]
    return [track_file(layout.cells[c], layout.assays[a]) for c, a in zip(cells, assays)]


def imputed_outputs(config: RunConfig, run: TrainedRun, pairs: np.ndarray | None = None) -> list[str | Path]:
    """Every track :func:`run_impute` writes for ``run`` (and ``pairs``): folder by folder, pairs in the
    ensemble's (cell-major) order."""
    names = _track_names(run, pairs)
    return [join_location(config.output, folder, name) for folder in _imputed_folders(run) for name in names]


def publish(config: RunConfig, store: SignalStore, run: TrainedRun, engine, progress: Progress = _quiet) -> dict:
    """impute, then :func:`finish`."""
    run_impute(config, store, run, engine, progress)
    return finish(config, store, run, progress)


def finish(config: RunConfig, store: SignalStore, run: TrainedRun, progress: Progress = _quiet) -> dict:
    """evaluate -> report -> manifest, from the imputed tracks already written (and the refinement stage's
    record, :func:`read_refinement`, which the report shows and the manifest lists)."""
    evaluation = run_evaluate(config, store, run.ensemble, run.targets, progress)
    output = config.output
    outputs = imputed_outputs(config, run)
    refiners = read_refinement(config)
    if refiners is not None:
        outputs.append(refinement_path(config))
    if evaluation.rows:
        outputs += [join_location(output, name) for name in METRIC_FILES]
        outputs.append(write_report(join_location(output, "report.html"),
                                    report_data(config, run.models, evaluation, refiners)))
    manifest = write_manifest(config, store, run.models, outputs, evaluation)
    return {"imputed": join_location(output, IMPUTED_FOLDER), "metrics": join_location(output, "metrics.tsv"),
            "report": join_location(output, "report.html"), "manifest": manifest, "rows": evaluation.rows,
            "models": run.models}


def report_data(config: RunConfig, models: dict[str, Predictd], evaluation: Evaluation,
                refinement: list[dict] | None = None) -> ReportData:
    """What the report shows, gathered from the fitted models, the evaluation and the refinement stage's
    record (:func:`read_refinement`; None or empty: the run did not refine)."""
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


def load_single_model(config: RunConfig) -> Predictd:
    """``OUTPUT/model`` of ``predictd train``; an error names the folder when it is missing."""
    folder = single_model_folder(config)
    if not is_file(join_location(folder, "model.json")):
        raise PredictdInputError(folder, "model.json", "no trained model; run train first")
    return Predictd.load(folder)


def run_all(config: RunConfig, progress: Progress = _quiet) -> dict:
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


def run_cv(config: RunConfig, progress: Progress = _quiet) -> dict:
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


def run_extend(config: RunConfig, progress: Progress = _quiet) -> dict:
    """ingest the grown tracks table, extend every fold model with what is new, then publish the ensemble."""
    crossval.require_folds(config)  # before ingest: a run that cannot extend writes nothing
    store = run_ingest(config, progress)
    engine = make_engine(config.engine, store)
    try:
        crossval.extend_fold_models(config, store, engine, progress)
        return publish(config, store, trained_run(config, store), engine, progress)
    finally:
        engine.close()
