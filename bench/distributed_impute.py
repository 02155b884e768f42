"""Imputation on Spark: today's streaming path against chunk bundles written by the executors, side by side.

On a Roadmap-shaped simulated store (127 cells x 24 assays, 1,014 observed; simulated once into ``--data``) a
Spark ``local[2]`` engine imputes ``--pairs`` pairs (default all 3,048) with an ensemble of one model (its
initial factors at ``--rank``: imputation costs the same whatever the factors' values), two ways:

* ``stream``: ``map_chunks`` (``toLocalIterator``: two chunks computed at a time, every chunk's values carried
  to the driver) and the driver's :class:`~predictd_core.impute.write_tracks.ParallelTrackWriter` processes
  writing every bigWig (what ``write_imputed_tracks`` did on Spark before bundles);
* ``bundles``: :mod:`predictd_core.impute.distributed`: each chunk's task computes it and writes its bundle of
  bigWig parts, then tasks of track groups assemble the bigWigs; the driver carries nothing.

Each run is a fresh process (its own JVM); from the moment it starts imputing until it is done, its process
tree is sampled every 0.1 s: wall seconds, core-seconds (CPU time of every process of the tree: the driver,
the JVM, Spark's Python workers, the writer processes) and peak memory of the driver's Python process, of
the driver-side writer processes (summed), of the JVM and of Spark's Python workers (summed). The two ways
alternate ``--repeats`` times; medians are printed as a table. The tracks are deleted after each run.

    .venv/bin/python bench/distributed_impute.py --data /tmp/roadmap-65k [--bins 65536] [--chunk-bins 16384]
        [--pairs 3048] [--rank 24] [--repeats 3] [--spread]

The load average at the end is printed with the table: the machine may be shared.

Measured on the 2-core development machine (medians of 3; wall s, core-s, driver Python / driver-side writers /
JVM peak MB): 65,536 bins in chunks of 16,384, 3,048 pairs: stream 11.9 s, 21.6, 1,003 / 964 / 2,200; bundles
14.8 s, 27.8, 88 / 0 / 328. 262,144 bins in chunks of 65,536 (a Roadmap chunk), 762 pairs: stream 12.9 s, 24.0,
971 / 762 / 1,990; bundles 10.2 s, 19.2, 72 / 0 / 284. Bundles cost an assembly pass on top of the same
writing, paid per part and per track, so it weighs less with larger chunks; their point is that the writing
runs on every executor instead of one driver.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from jobs import alternate_ways, compendium, measure_between_marks, medians_table

WAYS = ("stream", "bundles")


def impute_once(data: Path, output: Path, way: str, pairs: int, rank: int, spread: bool) -> None:
    """The measured child: impute ``pairs`` pairs of the store in ``data`` to ``output`` on Spark local[2],
    ``way`` being ``stream`` or ``bundles``; prints START when imputation begins, END when it is done."""
    from predictd_core.config import RunConfig
    from predictd_core.engine.local import LocalEngine
    from predictd_core.engine.spark import SparkEngine
    from predictd_core.impute.ensemble import Ensemble, EnsembleMember
    from predictd_core.impute.job import ImputeJob, write_imputed_tracks
    from predictd_core.model.factors import Layout, initial_factors
    from predictd_core.solvers import als
    from predictd_core.store.signal_store import SignalStore

    store = SignalStore.open(data / "store.zarr")
    layout = Layout.from_experiments(store.experiments)
    moments = LocalEngine(store).map_reduce(als.column_moments, None)
    inputs = np.arange(store.n_experiments)
    member = EnsembleMember("model", initial_factors(layout, rank, 0, *moments, inputs), inputs)
    n_pairs = len(layout.cells) * len(layout.assays)
    ensemble = Ensemble(layout, 2.9, (member,), np.ones((1, n_pairs), bool))
    chosen = np.linspace(0, n_pairs - 1, pairs).round().astype(int) if pairs < n_pairs else None
    job = ImputeJob(ensemble, spread, chosen)
    config = RunConfig(tracks=str(data / "tracks.tsv"), chrom_sizes=str(data / "chrom.sizes"),
                       store=str(data / "store.zarr"), output=str(output), chunk_bins=store.chunk_bins,
                       engine={"kind": "spark", "master": "local[2]"})
    engine = SparkEngine(store, master="local[2]", cache_bytes=0)
    if way == "stream":
        engine.distributed = False  # today's path: map_chunks to the driver, the driver's writer processes
    engine.map_reduce(lambda signal, _: signal.shape[0], None)  # the Python workers are up before timing
    print("START", flush=True)
    write_imputed_tracks(config, store, job, engine, lambda *event: None)
    size = sum(path.stat().st_size for path in output.rglob("*.bigWig"))
    print("END", json.dumps({"mb": size / 2**20, "tracks": len(list(output.rglob("*.bigWig")))}), flush=True)
    engine.close()


def measure(data: Path, way: str, pairs: int, rank: int, spread: bool) -> dict:
    """One fresh-process run of ``way``: wall seconds, core-seconds and peak memory (MB) by kind, from START to
    END (:func:`jobs.measure_between_marks`), and the MB and tracks written."""
    output = Path(tempfile.mkdtemp(prefix=f"distributed-{way}-", dir=data))
    try:
        return measure_between_marks([sys.executable, __file__, "--child", way, "--data", str(data), "--output",
                                      str(output), "--pairs", str(pairs), "--rank", str(rank),
                                      *(["--spread"] if spread else [])])
    finally:
        shutil.rmtree(output, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="compendium folder (simulated there if absent)")
    parser.add_argument("--bins", type=int, default=65_536)
    parser.add_argument("--chunk-bins", type=int, default=16_384)
    parser.add_argument("--pairs", type=int, default=3_048, help="pairs imputed, spread over the grid")
    parser.add_argument("--rank", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spread", action="store_true", help="write spread/ too (needs an ensemble: here of one)")
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if args.child:
        impute_once(args.data, args.output, args.child, args.pairs, args.rank, args.spread)
        return
    compendium(args.data, args.bins, args.chunk_bins)
    runs = alternate_ways(WAYS, args.repeats, lambda way: measure(args.data, way, args.pairs, args.rank, args.spread))
    print(f"\n{args.bins:,} bins in chunks of {args.chunk_bins:,}, {args.pairs:,} pairs, rank {args.rank}, "
          f"Spark local[2], medians of {args.repeats}")
    tracks = runs[WAYS[0]][0]["tracks"]
    medians_table(runs, {"seconds": "wall s", "core_seconds": "core-s", "driver_mb": "driver Python MB",
                         "writer_mb": "driver's writer processes MB", "jvm_mb": "JVM MB",
                         "spark-python_mb": "Spark's Python workers MB", "mb": "MB written"},
                  ("core-ns per value written", lambda values: f"{values[1] / (tracks * args.bins) * 1e9:,.0f}"))

if __name__ == "__main__":
    main()
