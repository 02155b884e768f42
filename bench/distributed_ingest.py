"""Ingest: the driver's processes against Spark's executors (bundles of binned tracks), side by side.

On a Roadmap-shaped compendium of 1,014 bigWigs (``--data``: ``bench/protocol.py``'s, simulated there once if
absent), the store is written two ways:

* ``processes``: :func:`predictd_core.store.signal_store.ingest` in 2 processes, every track opened in each
  (what the prepare job does on every engine without executors);
* ``executors``: :func:`predictd_core.engine.ingest.ingest_on_tasks` on a Spark ``local[2]`` session: tasks
  of tracks bin them into bundles, tasks of chunks write the store (what ``predictd folds`` does on Spark).

Each run is a fresh process, measured from the moment it starts ingesting until the store is complete
(:func:`jobs.measure_between_marks`): wall seconds, core-seconds of its process tree and peak memory. The
two ways alternate ``--repeats`` times; medians are printed, with core-ns per value ingested (the rate
``bench/protocol.py`` projects with). Both must write the same signal, or the script stops.

    .venv/bin/python bench/distributed_ingest.py --data /tmp/proto65k/roadmap-bigwigs-65536 [--repeats 3]
        [--chunk-bins 16384]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from jobs import alternate_ways, measure_between_marks, medians_table, require_same

WAYS = ("processes", "executors")


def ingest_once(data: Path, output: Path, way: str, chunk_bins: int) -> None:
    """The measured child: ingest the compendium in ``data`` to ``output`` ``way``; prints START, then END."""
    import zarr

    from predictd_core.engine.ingest import ingest_on_tasks
    from predictd_core.engine.spark import SparkTasks
    from predictd_core.store.signal_store import ingest
    from predictd_core.tracks.genome import GenomeBins, read_chrom_sizes
    from predictd_core.tracks.table import read_tracks_table

    tracks = read_tracks_table(str(data / "tracks.tsv"))
    sizes = read_chrom_sizes(str(data / "chrom.sizes"))
    bins = GenomeBins.build(sizes, 25)
    runner = None
    if way == "executors":
        runner = SparkTasks("local[2]")
        runner.run_tasks(len, [[0]] * 2)  # the Python workers are up before timing
    print("START", flush=True)
    if runner is None:
        store = ingest(tracks, sizes, 25, output, chunk_bins=chunk_bins, processes=2)
    else:
        store = ingest_on_tasks(runner, tracks, sizes, bins, output, chunk_bins)
    digest = hashlib.sha256(zarr.open_group(str(output), mode="r")["signal"][:].tobytes()).hexdigest()
    print("END", json.dumps({"tracks": len(tracks), "bins": store.bins.n_bins, "signal": digest}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder of bigWigs with tracks.tsv, chrom.sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-bins", type=int, default=16_384)
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if args.child:
        ingest_once(args.data, args.output, args.child, args.chunk_bins)
        return
    def measure_way(way: str) -> dict:
        output = Path(tempfile.mkdtemp(prefix=f"ingest-{way}-")) / "store.zarr"
        try:
            return measure_between_marks([sys.executable, __file__, "--child", way, "--data", str(args.data),
                                          "--output", str(output), "--chunk-bins", str(args.chunk_bins)])
        finally:
            shutil.rmtree(output.parent, ignore_errors=True)

    runs = alternate_ways(WAYS, args.repeats, measure_way)
    first = require_same(runs, "signal", "signal")
    tracks, bins = first["tracks"], first["bins"]
    print(f"\n{tracks:,} bigWigs x {bins:,} bins, 2 processes / Spark local[2], medians of {args.repeats}; "
          "the same signal")
    medians_table(runs, {"seconds": "wall s", "core_seconds": "core-s", "driver_mb": "driver MB",
                         "writer_mb": "driver's ingest processes MB", "jvm_mb": "JVM MB",
                         "spark-python_mb": "Spark's Python workers MB"},
                  ("core-ns per value", lambda values: f"{values[1] / tracks / bins * 1e9:,.0f}"))


if __name__ == "__main__":
    main()
