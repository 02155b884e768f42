"""The data path of one run: tracks -> store -> train -> impute -> evaluate -> manifest.

Each step reads what the previous one wrote under ``config.output`` so the CLI can run them one at a
time (``predictd ingest|train|impute|evaluate CONFIG``) or together (``predictd run CONFIG``).
"""

from __future__ import annotations

import csv
import io
import json
import platform
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.engine import make_engine
from predictd_core.errors import PredictdInputError
from predictd_core.evaluate.measures import MEASURES, quality_measures
from predictd_core.impute.write_tracks import BigWigWriter, to_pvalue_scale
from predictd_core.io import write_atomic
from predictd_core.model.estimator import Predictd
from predictd_core.model.factors import Layout
from predictd_core.model.split import choose_validation
from predictd_core.store.signal_store import SignalStore, ingest
from predictd_core.tracks.genome import read_chrom_sizes, read_regions
from predictd_core.tracks.readers import SignalTrack
from predictd_core.tracks.table import read_tracks_table

Progress = Callable[[str, int, int], None]


def _quiet(_step: str, _done: int, _total: int) -> None:
    pass


def imputed_path(output: str | Path, cell: str, assay: str) -> Path:
    """Where the imputed track of (cell, assay) goes."""
    return Path(output) / "imputed" / f"{cell}.{assay}.bigWig"


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
    return ingest(tracks, chrom_sizes, config.bin_size, config.store_path, regions, config.chunk_bins,
                  progress=lambda done, total: progress("ingest", done, total))


def open_store(config: RunConfig) -> SignalStore:
    """The run's store, with its holdout targets checked."""
    store = SignalStore.open(config.store_path)
    holdout_columns(config, store)
    return store


def run_train(config: RunConfig, store: SignalStore, engine, progress: Progress = _quiet) -> Predictd:
    """Fit one model on every non-held-out experiment; save it to ``OUTPUT/model``."""
    layout = Layout.from_experiments(store.experiments)
    train, valid = choose_validation(layout, input_columns(config, store), config.model.validation_fraction,
                                     config.model.seed)
    model = Predictd(config.model)
    max_iters = config.model.max_iters
    model.fit(engine, layout, train, valid,
              progress=lambda row: progress("train", min(row["iteration"], max_iters), max_iters))
    model.save(Path(config.output) / "model", extra={"config_sha256": config.digest()})
    return model


@contextmanager
def _replace_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` only if the block succeeds."""
    work = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    work.mkdir(parents=True)
    try:
        yield work
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


@dataclass(frozen=True)
class _ImputeInputs:
    model: Predictd
    inputs: np.ndarray
    cells: np.ndarray
    assays: np.ndarray


def _impute_chunk(Y: np.ndarray, job: _ImputeInputs) -> np.ndarray:
    return to_pvalue_scale(job.model.predict_chunk(Y, job.inputs, job.cells, job.assays)).astype(np.float32)


def run_impute(config: RunConfig, store: SignalStore, model: Predictd, engine,
               progress: Progress = _quiet) -> list[Path]:
    """Write ``OUTPUT/imputed/CELL.ASSAY.bigWig`` for every (cell, assay) pair of the grid.

    Genome factors come from each bin's ridge solve on the non-held-out experiments; the folder
    appears only when every track is complete.
    """
    layout = model.layout_
    cells, assays = layout.all_pairs()
    target = Path(config.output) / "imputed"
    with _replace_folder(target) as work:
        writers = [BigWigWriter(work / f"{layout.cells[c]}.{layout.assays[a]}.bigWig", store.bins)
                   for c, a in zip(cells, assays)]
        try:
            job = _ImputeInputs(model, input_columns(config, store), cells, assays)
            for chunk, values in engine.map_chunks(_impute_chunk, job):
                lo, hi = store.chunk_bounds(chunk)
                for column, writer in enumerate(writers):
                    writer.add(lo, hi, values[:, column])
                progress("impute", chunk + 1, store.n_chunks)
        finally:
            for writer in writers:
                writer.close()
    return [imputed_path(config.output, layout.cells[c], layout.assays[a]) for c, a in zip(cells, assays)]


def read_track_bins(path: Path, store: SignalStore) -> np.ndarray:
    """A written track read back into the store's bins, arcsinh scale."""
    chrom_sizes = dict(store.bins.contigs)
    track = SignalTrack(str(path), chrom_sizes, Path(str(path) + ".cache"))
    try:
        parts = [track.bin_means(contig, start, end, store.bins.bin_size)
                 for contig, start, end, _, _ in store.bins.runs(0, store.bins.n_bins)]
    finally:
        track.close()
    return np.arcsinh(np.concatenate(parts))


def run_evaluate(config: RunConfig, store: SignalStore) -> list[dict]:
    """Score every holdout target's imputed track against the observed one, beside the baseline.

    The baseline is the average (arcsinh) of the same assay in the other cells' input experiments.
    Writes ``OUTPUT/metrics.tsv``: one row per target, predictd's measures then ``baseline_*``.
    """
    layout = Layout.from_experiments(store.experiments)
    inputs = input_columns(config, store)
    rows = []
    for column in holdout_columns(config, store):
        experiment = store.experiments[column]
        path = imputed_path(config.output, experiment.cell_type, experiment.assay)
        if not path.is_file():
            raise PredictdInputError(str(path), "imputed", "imputed track missing; run impute first")
        same_assay = inputs[layout.assay_of[inputs] == layout.assay_of[column]]
        signal = store.read_columns([column, *same_assay])  # the target and its baseline's inputs, one pass
        observed = signal[:, 0]
        imputed = read_track_bins(path, store)
        seen = ~np.isnan(observed) & ~np.isnan(imputed)
        row = {"cell_type": experiment.cell_type, "assay": experiment.assay, "n_bins": int(seen.sum())}
        row.update(quality_measures(observed[seen], imputed[seen]))
        if same_assay.size:
            baseline = np.nanmean(signal[:, 1:], axis=1)
            row.update({f"baseline_{k}": v for k, v in quality_measures(observed[seen], baseline[seen]).items()})
        else:
            row.update({f"baseline_{k}": float("nan") for k in MEASURES})
        rows.append(row)
    write_atomic(Path(config.output) / "metrics.tsv", metrics_tsv(rows))
    return rows


def metrics_tsv(rows: list[dict]) -> bytes:
    """Rows as TSV bytes (header from the first row)."""
    buffer = io.StringIO()
    columns = ["cell_type", "assay", "n_bins", *MEASURES, *(f"baseline_{m}" for m in MEASURES)]
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue().encode()


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


def write_manifest(config: RunConfig, store: SignalStore, model: Predictd, outputs: list[Path],
                   metrics: list[dict]) -> Path:
    """``OUTPUT/manifest.json``, written last: config hash, versions, inputs, outputs, metrics."""
    output = Path(config.output)
    manifest = {
        "config_sha256": config.digest(),
        "config": config.model_dump(),
        "versions": _versions(),
        "inputs": [{"cell_type": e.cell_type, "assay": e.assay, "path": e.path} for e in store.experiments],
        "store": config.store_path,
        "model": {"folder": str(output / "model"), "rank": model.rank_, "solver": config.model.solver,
                  "best_iteration": model.best_iteration_, "iterations": len(model.history_)},
        "outputs": [str(p.relative_to(output)) for p in outputs] + ["metrics.tsv"],
        "metrics": metrics,
    }
    path = output / "manifest.json"
    write_atomic(path, json.dumps(manifest, indent=2, default=float).encode())
    return path


def run_all(config: RunConfig, progress: Progress = _quiet) -> dict:
    """ingest, train, impute, evaluate and the manifest. Returns the paths and the metrics."""
    store = run_ingest(config, progress)
    engine = make_engine(config.engine, store)
    try:
        model = run_train(config, store, engine, progress)
        outputs = run_impute(config, store, model, engine, progress)
    finally:
        engine.close()
    metrics = run_evaluate(config, store)
    manifest = write_manifest(config, store, model, outputs, metrics)
    return {"imputed": Path(config.output) / "imputed", "metrics": Path(config.output) / "metrics.tsv",
            "manifest": manifest, "rows": metrics, "model": model}
