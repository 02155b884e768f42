"""Extending a compendium vs retraining every fold: time saved and accuracy kept, on the real pilot.

A lab cross-validated four cell types (E003, E017, E065, E117) and then measured a fifth (E116,
five marks). ``predictd extend`` fits only E116's cell factors in each fold model; the alternative
is a full ``predictd cv`` on all five. Both use the same scheme (5 x 2 folds) and engine, in one
process, one after the other. The report compares the time spent fitting fold models and the
measures on E116's five tracks, each imputed out of sample by its test fold's models.

    .venv/bin/python bench/extend.py [--engine numpy|spark] [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from predictd_core import crossval, pipeline
from predictd_core.config import load_config
from predictd_core.engine import make_engine

PILOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "roadmap-pilot"
NEWCOMER = "E116"
SHOWN = ("MSEglobal", "MSE1obs", "GWcorr", "Match1", "Catch1obs", "AucObs1")


def _tracks(path: Path, keep) -> None:
    with (PILOT / "tracks.tsv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if keep(row["cell_type"])]
    lines = ["cell_type\tassay\tpath"] + [f"{r['cell_type']}\t{r['assay']}\t{PILOT / r['path']}" for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _config(work: Path, name: str, tracks: Path, engine: dict) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"tracks": str(tracks), "chrom_sizes": str(PILOT / "chrom.sizes"),
                                    "model": {"solver": "als"}, "cv": {"n_test": 5, "n_valid": 2},
                                    "engine": engine, "output": str(work / name)}))
    return path


def _newcomer_means(rows: list[dict]) -> dict[str, float]:
    mine = [row for row in rows if row["cell_type"] == NEWCOMER]
    return {m: float(np.mean([row[m] for row in mine])) for m in SHOWN} | {"n": len(mine)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("numpy", "spark"), default="numpy")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="predictd-extend-"))
    work.mkdir(parents=True, exist_ok=True)
    engine = {"kind": args.engine, "master": "local[2]"}

    # the grown lab: cv on four cell types, then the table gains E116 and extend runs
    table = work / "tracks.tsv"
    _tracks(table, lambda cell: cell != NEWCOMER)
    grown = load_config(_config(work, "extended", table, engine))
    pipeline.run_cv(grown)
    _tracks(table, lambda cell: True)
    store = pipeline.run_ingest(grown)
    runner = make_engine(grown.engine, store)
    started = time.perf_counter()
    crossval.extend_fold_models(grown, store, runner)
    extend_seconds = time.perf_counter() - started
    extended = pipeline.publish(grown, store, pipeline.trained_run(grown, store), runner)
    runner.close()

    # the alternative: every fold model retrained on all five cell types
    _tracks(work / "all.tsv", lambda cell: True)
    full = load_config(_config(work, "retrained", work / "all.tsv", engine))
    store = pipeline.run_ingest(full)
    folds = crossval.plan_folds(full, store)
    runner = make_engine(full.engine, store)
    started = time.perf_counter()
    for i, j in folds.models():
        crossval.train_fold(full, store, runner, folds, i, j)
    full_seconds = time.perf_counter() - started
    retrained = pipeline.publish(full, store, pipeline.trained_run(full, store), runner)
    runner.close()

    ours, theirs = _newcomer_means(extended.rows), _newcomer_means(retrained.rows)
    print(f"engine {args.engine}; work folder {work}")
    print(f"fitting the 10 fold models: extend {extend_seconds:.1f} s, full retrain {full_seconds:.1f} s "
          f"-> extend takes {extend_seconds / full_seconds:.3f}x the time ({full_seconds / extend_seconds:.1f}x faster)")
    print(f"\n{NEWCOMER}'s tracks scored out of sample (extend: {ours['n']}, retrain: {theirs['n']}), means:")
    print("| | " + " | ".join(SHOWN) + " |")
    print("|---|" + "---|" * len(SHOWN))
    for label, means in (("extend", ours), ("full retrain", theirs)):
        print(f"| {label} | " + " | ".join(f"{means[m]:.4f}" for m in SHOWN) + " |")
    baseline = [row for row in retrained.rows if row["cell_type"] == NEWCOMER]
    print("| baseline | " + " | ".join(f"{np.mean([r['baseline_' + m] for r in baseline]):.4f}" for m in SHOWN) + " |")


if __name__ == "__main__":
    main()
