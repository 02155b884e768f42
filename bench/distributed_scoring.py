"""Scoring a cross-validated run: in one process (the driver) against on Spark's executors, side by side.

On a finished run of ``bench/protocol.py`` (``--run``: its output folder, with the store, folds, models and
imputed tracks), ``predictd_core.evaluate.scoring.run_evaluate`` scores every held-out experiment two ways:

* ``driver``: one process reads the store in shared passes and scores the targets one after another (what the
  finish job did on every engine before);
* ``executors``: a Spark ``local[2]`` engine: chunk tasks write each target's observed and baseline signal to
  chunk bundles, then tasks of target groups gather and score them
  (:mod:`predictd_core.evaluate.distributed`); the driver only hands out work.

Each run is a fresh process (its own JVM), measured from the moment it starts scoring until it is done
(:func:`jobs.measure_between_marks`): wall seconds, core-seconds of its whole process tree and peak memory by
kind. The two ways alternate ``--repeats`` times; medians are printed, with core-seconds per scored experiment
per million bins (the rate ``bench/protocol.py`` projects with). Both ways must write the same metrics.tsv,
byte for byte, or the script stops.

    .venv/bin/python bench/distributed_scoring.py --run /tmp/proto65k/protocol-65536 [--repeats 3]

A scoring task holds one target's whole track at a time, so its memory grows with the genome: ``--task-memory
BINS [BINS ...]`` instead scores one synthetic target of each size as a task does (its observed and baseline
signal held, its imputed bigWig read back, :func:`~predictd_core.evaluate.targets.score_target`), each in a fresh
process, and prints the peak resident memory per bin and how much it grows per bin from the smallest size to the
largest (what ``bench/protocol.py`` sizes the scoring tasks on hg19 with).

    .venv/bin/python bench/distributed_scoring.py --task-memory 8000000 32000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from jobs import alternate_ways, measure_between_marks, medians_table, require_same

WAYS = ("driver", "executors")


def score_once(run: Path, way: str) -> None:
    """The measured child: score the run in ``run`` ``way``; prints START when scoring begins, END when done."""
    from predictd_core.config import load_config
    from predictd_core.crossval import cv_run
    from predictd_core.engine.spark import SparkEngine
    from predictd_core.evaluate.scoring import run_evaluate
    from predictd_core.pipeline import open_store

    config = load_config(str(run / "config.yaml"))
    store = open_store(config)
    trained = cv_run(config, store)
    engine = None
    if way == "executors":
        engine = SparkEngine(store, master="local[2]", cache_bytes=0)
        engine.map_reduce(lambda signal, _: signal.shape[0], None)  # the Python workers are up before timing
    print("START", flush=True)
    evaluation = run_evaluate(config, store, trained.ensemble, trained.targets, lambda *event: None, engine=engine)
    digest = hashlib.sha256((run / "metrics.tsv").read_bytes()).hexdigest()
    print("END", json.dumps({"targets": len(evaluation.rows), "bins": store.bins.n_bins, "metrics": digest}),
          flush=True)
    if engine is not None:
        engine.close()


def write_imputed_track(path: str, n_bins: int) -> None:
    """The synthetic target's imputed bigWig (in a process of its own: the writer's memory is not the task's)."""
    import numpy as np

    from predictd_core.impute.write_tracks import BigWigWriter
    from predictd_core.tracks.genome import GenomeBins

    writer = BigWigWriter(Path(path), GenomeBins.build({"chr1": n_bins * 25}, 25))
    writer.add(0, n_bins, np.sinh(np.random.default_rng(1).gamma(0.5, 1, n_bins).astype(np.float32)))
    writer.close()


def task_memory(n_bins: int) -> None:
    """Peak resident bytes per bin of scoring one target of ``n_bins`` bins, the task's own signal included."""
    import multiprocessing
    import resource
    import tempfile
    import time

    import numpy as np

    from predictd_core.config import RunConfig
    from predictd_core.evaluate.targets import score_target
    from predictd_core.impute.outputs import imputed_path
    from predictd_core.tracks.genome import GenomeBins
    from predictd_core.tracks.table import Track

    with tempfile.TemporaryDirectory(prefix="scoring-memory-") as work:
        bins = GenomeBins.build({"chr1": n_bins * 25}, 25)
        config = RunConfig(tracks="tracks.tsv", chrom_sizes="chrom.sizes", store="store.zarr", output=work,
                           engine={"kind": "numpy"})
        path = Path(imputed_path(work, "E001", "H3K4me3"))
        path.parent.mkdir(parents=True)
        writer = multiprocessing.get_context("spawn").Process(target=write_imputed_track, args=(str(path), n_bins))
        writer.start()
        writer.join()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        signal = np.random.default_rng(0).gamma(0.5, 1, (2, n_bins)).astype(np.float32)  # observed, baseline
        started = time.process_time()
        score_target(config, bins, Track("E001", "H3K4me3", "observed"), "test-fold", 0, signal[0], signal[1], {},
                     [], False)
        seconds = time.process_time() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("MEMORY", json.dumps({"bins": n_bins, "peak": peak - before, "core_s": seconds}), flush=True)


def task_memory_table(sizes: list[int]) -> None:
    """Each size's one-target task in a fresh process, and the bytes a bin the peak grows by between the smallest
    and the largest: the rate a whole genome's task is sized with (the fixed part no longer counts there)."""
    import subprocess

    found = []
    for n_bins in sorted(sizes):
        out = subprocess.run([sys.executable, __file__, "--child-memory", str(n_bins)], check=True,
                             capture_output=True, text=True).stdout
        found.append(json.loads(next(line for line in out.splitlines() if line.startswith("MEMORY"))[7:]))
    print("| bins | peak bytes a bin (the task's signal included) | core-s |\n|---|---|---|")
    for size in found:
        print(f"| {size['bins']:,} | {size['peak'] / size['bins']:.1f} | {size['core_s']:.1f} |")
    if len(found) > 1:
        small, large = found[0], found[-1]
        print(f"\nmarginal: {(large['peak'] - small['peak']) / (large['bins'] - small['bins']):.1f} bytes a bin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished bench/protocol.py output folder")
    parser.add_argument("--task-memory", type=int, nargs="+", metavar="BINS",
                        help="measure one scoring task's memory at these sizes instead")
    parser.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if args.child_memory:
        task_memory(args.child_memory)
        return
    if args.task_memory:
        task_memory_table(args.task_memory)
        return
    if args.run is None:
        parser.error("give --run (or --task-memory)")
    if args.child:
        score_once(args.run, args.child)
        return
    runs = alternate_ways(WAYS, args.repeats, lambda way: measure_between_marks(
        [sys.executable, __file__, "--child", way, "--run", str(args.run)]))
    first = require_same(runs, "metrics", "metrics.tsv")
    targets, bins = first["targets"], first["bins"]
    print(f"\n{targets:,} experiments scored over {bins:,} bins, Spark local[2], medians of {args.repeats}; "
          "metrics.tsv identical")
    medians_table(runs, {"seconds": "wall s", "core_seconds": "core-s", "driver_mb": "driver MB",
                         "jvm_mb": "JVM MB", "spark-python_mb": "Spark's Python workers MB"},
                  ("core-s per experiment per M bins", lambda values: f"{values[1] / targets / bins * 1e6:.3f}"))


if __name__ == "__main__":
    main()
