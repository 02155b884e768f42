"""``predictd``: ingest, train, impute, evaluate, run, demo and simulate from the command line.

Every step takes the run's YAML config (see ``predictd_core.config``). Bad input ends with one line
naming the file and field, exit code 2, and no partial output.
"""

from __future__ import annotations

import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from predictd_core.cli.progress import progress_display
from predictd_core.cli.status import cancel, status
from predictd_core.errors import PredictdInputError

if TYPE_CHECKING:  # the pipeline (numpy, zarr, ...) loads only when a command runs
    from predictd_core.pipeline import RunOutputs

app = typer.Typer(add_completion=False, no_args_is_help=True, help=(
    "Impute missing epigenomics experiments with PREDICTD's tensor model.\n\n"
    "Example: predictd cv examples/roadmap-pilot.yaml"))
console = Console(stderr=True)
ConfigArg = typer.Argument(..., help="run config YAML, a path or an s3:// URL (tracks, chrom_sizes, bin_size, "
                           "holdout, model, engine, output)", show_default=False)

REPO = Path(__file__).resolve().parents[2]
PILOT_CONFIG = REPO / "examples" / "roadmap-pilot.yaml"
PILOT_DATA = REPO.parent / "shared" / "data" / "roadmap-pilot"


@contextmanager
def _user_errors(output: Optional[Path] = None) -> Iterator[None]:
    """Turn bad input into one line on stderr and exit 2; remove an output folder this run created."""
    existed = output is not None and output.exists()
    try:
        yield
    except PredictdInputError as error:
        if output is not None and not existed and output.exists():
            shutil.rmtree(output, ignore_errors=True)
        console.print(f"predictd: error: {error}", markup=False, highlight=False, soft_wrap=True)
        _report_error(error)
        raise typer.Exit(2)


def _report_error(error: PredictdInputError) -> None:
    """For a cloud job (``$PREDICTD_ERROR_URL`` set by its runner): the error as JSON at that URL, which
    tells the run logic that the input is bad and a retry would fail alike."""
    import json
    import os

    from predictd_core.cloud.contract import ERROR_URL_VARIABLE
    from predictd_core.io import write_atomic

    url = os.environ.get(ERROR_URL_VARIABLE)
    if url:
        write_atomic(url, json.dumps({"file": error.source, "field": error.field, "message": error.message,
                                      "error": str(error)}).encode())


def _load(config_path: str | Path):
    from predictd_core.config import load_config

    return load_config(config_path)


def _local_output(settings) -> Optional[Path]:
    """The output folder a failed command may remove if it created it: local outputs only. On an object
    store a run's prefix is shared by its jobs, so nothing there is ever removed (outputs are whole
    objects, the manifest last)."""
    from predictd_core.io import is_remote

    return None if is_remote(settings.output) else Path(settings.output)


@app.command()
def ingest(config: str = ConfigArg) -> None:
    """Bin the tracks into the chunked signal store (OUTPUT/store.zarr)."""
    from predictd_core import pipeline

    with _user_errors():
        settings = _load(config)
    with _user_errors(output=_local_output(settings)):
        with progress_display(console) as progress:
            store = pipeline.run_ingest(settings, progress)
    typer.echo(f"store: {store.path} ({store.bins.n_bins} bins x {store.n_experiments} experiments)")


@app.command()
def folds(config: str = ConfigArg) -> None:
    """Deal the observed experiments into test x validation folds (OUTPUT/folds.json); keep an existing file.
    Ingests the store first when there is no complete one (the cloud's prepare job)."""
    from predictd_core import crossval, pipeline

    with _user_errors():
        settings = _load(config)
    with _user_errors(output=_local_output(settings)):
        with progress_display(console) as progress:
            plan = crossval.plan_folds(settings, pipeline.open_or_ingest(settings, progress))
    typer.echo(f"folds: {crossval.folds_path(settings)} ({plan.n_test} test x {plan.n_valid} validation folds, "
               f"{len(plan.models())} models; {plan.pinned.size} experiments pinned to training)")


@app.command()
def train(config: str = ConfigArg,
          test_fold: Optional[int] = typer.Option(None, "--test-fold", min=0,
                                                  help="train cross-validation model (i, j) only"),
          valid_fold: Optional[int] = typer.Option(None, "--valid-fold", min=0,
                                                   help="with --test-fold: the validation fold j"),
          model_dir: Optional[str] = typer.Option(None, "--model-dir", show_default=False,
                                                  help="folder (local or s3://) for the model's factors.npz "
                                                       "and model.json [default: OUTPUT/model, or "
                                                       "OUTPUT/models/test{i}-valid{j}]")) -> None:
    """Fit one model: on the stored tracks minus the holdout (OUTPUT/model), or fold model (i, j)
    (OUTPUT/models/test{i}-valid{j}), the job predictd cv runs for each fold."""
    from predictd_core import crossval, pipeline
    from predictd_core.train.sample import training_engine

    with _user_errors():
        settings = _load(config)
        if (test_fold is None) != (valid_fold is None):
            raise PredictdInputError("command line", "--test-fold/--valid-fold", "give both or neither")
        store = pipeline.open_store(settings)
        plan = None if test_fold is None else crossval.plan_folds(settings, store)
        with training_engine(settings, store) as engine, progress_display(console) as progress:
            if plan is None:
                folder = model_dir or pipeline.single_model_folder(settings)
                model = pipeline.run_train(settings, store, engine, progress, folder)
            else:
                folder = model_dir or crossval.model_folder(settings, test_fold, valid_fold)
                model = crossval.train_fold(settings, store, engine, plan, test_fold, valid_fold, progress, folder)
    typer.echo(f"model: {folder} (rank {model.rank_}, best sweep {model.best_iteration_} of {len(model.history_)})")


@app.command()
def impute(config: str = ConfigArg) -> None:
    """Write an imputed bigWig for every (cell, assay) pair (OUTPUT/imputed) from the trained model(s)."""
    from predictd_core import pipeline
    from predictd_core.engine import make_engine

    with _user_errors():
        settings = _load(config)
        store = pipeline.open_store(settings)
        trained = pipeline.trained_run(settings, store)
        with make_engine(settings.engine, store) as engine, progress_display(console) as progress:
            paths = pipeline.run_impute(settings, store, trained, engine, progress)
    typer.echo(f"imputed: {len(paths)} bigWigs under {settings.output} ({len(trained.models)} model(s))")


@app.command()
def evaluate(config: str = ConfigArg) -> None:
    """Score the imputed tracks against the same-assay average baseline; write metrics, report.html, manifest."""
    from predictd_core import pipeline
    from predictd_core.engine import make_engine

    with _user_errors():
        settings = _load(config)
        store = pipeline.open_store(settings)
        trained = pipeline.trained_run(settings, store)
        with make_engine(settings.engine, store) as engine, progress_display(console) as progress:
            result = pipeline.finish(settings, store, trained, progress, engine)
    _print_outputs(result)


@app.command()
def cv(config: str = ConfigArg) -> None:
    """Cross-validate: ingest, folds, one model per (test fold, validation fold), ensemble imputation,
    metrics for every observed experiment, report.html and manifest.json (written last)."""
    from predictd_core.pipeline import run_cv

    _whole_run(config, run_cv)


@app.command()
def run(config: str = ConfigArg) -> None:
    """ingest, train, impute and evaluate in one go; manifest.json is written last."""
    from predictd_core.pipeline import run_all

    _whole_run(config, run_all)


def _whole_run(config: str | Path, whole_run: Callable[..., RunOutputs]) -> None:
    """Load the config, run ``whole_run(settings, progress)`` (``run_all``, ``run_cv`` or ``run_extend`` of
    :mod:`predictd_core.pipeline`) with progress bars, print the outputs; an output folder the failed run
    created is removed."""
    with _user_errors():
        settings = _load(config)
    with _user_errors(output=_local_output(settings)):
        with progress_display(console) as progress:
            result = whole_run(settings, progress)
    _print_outputs(result)


def _print_outputs(result: RunOutputs) -> None:
    _print_metrics(result.rows)
    typer.echo(f"imputed tracks: {result.imputed}")
    if result.rows:
        typer.echo(f"metrics:        {result.metrics}")
        typer.echo(f"report:         {result.report}")
    typer.echo(f"manifest:       {result.manifest}")


@app.command()
def extend(config: str = ConfigArg) -> None:
    """After new rows in the tracks table: fit only what they add to every fold model (new cell types' and
    assays' factors, the rest fixed), deal them into the folds, and publish the updated ensemble."""
    from predictd_core.pipeline import run_extend

    _whole_run(config, run_extend)


app.command()(status)  # a cloud run's ledger; boto3 loads only when the command runs
app.command()(cancel)


@app.command()
def demo(workdir: Path = typer.Option(Path("demo-output"), help="where a generated compendium goes if the "
                                      "real pilot tracks are absent")) -> None:
    """Cross-validate examples/roadmap-pilot.yaml on the real pilot tracks (or a simulated compendium without them)."""
    if PILOT_DATA.is_dir() and PILOT_CONFIG.is_file():
        typer.echo(f"demo: real Roadmap pilot tracks from {PILOT_DATA}")
        cv(PILOT_CONFIG)
        return
    from predictd_core.simulate import simulate_compendium, write_example_config

    typer.echo(f"demo: {PILOT_DATA} is absent, so the same pipeline runs on a generated compendium "
               "(planted low-rank structure, peaks, broad domains, noise)")
    compendium = simulate_compendium(workdir / "simulated", overwrite=True)
    # one chunk of 20,000 bins: Spark's per-job overhead (~0.15 s a sweep, 10 models of up to 60 sweeps) would be
    # most of the training, and in-process numpy trains the same models in half the time
    cv(write_example_config(workdir / "simulated", demo_holdout(compendium.observed), engine={"kind": "numpy"}))


@app.command()
def simulate(out: Path = typer.Argument(..., help="folder for tracks.tsv, chrom.sizes, truth.npz, run.yaml and the "
                                        "signal (bigWigs or store.zarr)"),
             layout: Optional[Path] = typer.Option(None, help="a Roadmap layout folder (idmap.json, "
                                                   "predictd_splits.json; e.g. ../shared/data/roadmap-layout): "
                                                   "its cell types, assays and observed experiments"),
             cells: Optional[int] = typer.Option(None, min=2, help="cell types (default 6, or all of --layout)"),
             assays: Optional[int] = typer.Option(None, min=2, help="assays (default 5, or all of --layout)"),
             bins: int = typer.Option(20000, min=100, help="25 bp bins; generated block by block, so any number"),
             rank: int = typer.Option(4, min=1),
             missing_fraction: float = typer.Option(0.0, min=0.0, max=0.9,
                                                    help="share of pairs left unmeasured (not with --layout)"),
             seed: int = typer.Option(0, min=0),
             signal_format: str = typer.Option("bigwig", "--format", help="bigwig (one per experiment) or store "
                                               "(store.zarr, what ingest would build; run.yaml points at it)"),
             chunk_bins: Optional[int] = typer.Option(None, min=1, help="bins per store chunk; memory grows "
                                                      "with it (default: the store's)"),
             overwrite: bool = typer.Option(False, help="replace a compendium already in OUT")) -> None:
    """Generate a compendium with planted low-rank structure, peaks, broad domains and noise, streamed
    block by block (memory follows the block and the experiments, not --bins), and a run config for it."""
    from predictd_core.simulate import simulate_compendium, write_example_config

    with _user_errors():
        if signal_format not in ("bigwig", "store"):
            raise PredictdInputError("command line", "--format", f"expected bigwig or store, got {signal_format!r}")
        try:
            with progress_display(console) as progress:
                compendium = simulate_compendium(
                    out, n_cells=cells, n_assays=assays, n_bins=bins, rank=rank, missing_fraction=missing_fraction,
                    layout=layout, seed=seed, overwrite=overwrite, signal_format=signal_format, dense_truth=False,
                    progress=lambda done, total: progress("simulate", done, total),
                    **({} if chunk_bins is None else {"chunk_bins": chunk_bins}))
        except PredictdInputError as error:
            if error.field != "layout":
                raise
            raise PredictdInputError(error.source, "--layout", error.message) from None  # the option to fix
        config = write_example_config(out, demo_holdout(compendium.observed, count=1))
    signal = compendium.store or f"{len(compendium.observed)} bigWigs in {compendium.root}"
    typer.echo(f"compendium: {compendium.tracks_tsv} ({len(compendium.observed)} experiments of "
               f"{len(compendium.cells)} cell types x {len(compendium.assays)} assays, {compendium.n_bins} bins)\n"
               f"signal:     {signal}\ntruth:      {compendium.truth}\nconfig:     {config}")


def demo_holdout(observed: tuple[tuple[str, str], ...], count: int = 2) -> list[str]:
    """Up to ``count`` observed experiments to hold out, each from a different cell type and assay."""
    chosen: list[tuple[str, str]] = []
    for cell, assay in observed:
        if all(cell != c and assay != a for c, a in chosen):
            chosen.append((cell, assay))
        if len(chosen) == count:
            break
    return [f"{cell}:{assay}" for cell, assay in chosen]


def _print_metrics(rows: list[dict]) -> None:
    """Means over the scored tracks with win counts, then each track when there are few, in 100 columns."""
    if not rows:
        return
    from predictd_core.evaluate.tables import summary_rows

    console_out = Console(width=max(100, Console().width))
    summary = Table(title=f"{len(rows)} scored tracks: predictd vs the same-assay average of the other cells")
    for column in ("measure", "predictd", "baseline", "predictd wins"):
        summary.add_column(column, justify="left" if column == "measure" else "right")
    for line in summary_rows(rows):
        if line["scope"] == "all":
            summary.add_row(line["measure"], f"{line['predictd_mean']:.4f}", f"{line['baseline_mean']:.4f}",
                            f"{line['wins']} of {line['n']}")
    console_out.print(summary)
    if len(rows) > 6:
        return
    shown = ("MSEglobal", "GWcorr", "Match1", "Catch1obs", "AucObs1")
    table = Table(title="each scored track")
    for column in ("target", "method", *shown):
        table.add_column(column, justify="right" if column in shown else "left")
    for row in rows:
        target = f"{row['cell_type']}:{row['assay']}"
        table.add_row(target, "predictd", *(f"{row[m]:.4f}" for m in shown))
        table.add_row("", "baseline", *(f"{row['baseline_' + m]:.4f}" for m in shown), end_section=True)
    console_out.print(table)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``predictd`` script; returns the exit code."""
    try:
        app(args=argv, prog_name="predictd", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
