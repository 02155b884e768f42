"""Spark scaling: local[1] against local[2] on the same training job, and the chunk size (= partition).

1. The same ``predictd train`` (``--sweeps`` ALS sweeps, rank 100) on the 1,126,469-bin Roadmap-shaped
   store with ``local[1]`` and ``local[2]``, each in a fresh process: the median seconds per sweep and
   their ratio.
2. Stores of ``--chunk-bins-bins`` bins written with chunks of each ``--chunk-bins`` (one chunk is one
   Spark partition and one task), trained the same way on ``local[2]``: seconds per sweep against
   partition count.

    .venv/bin/python bench/spark_scaling.py --work /tmp/bench [--chunk-bins 16384 65536 262144]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from jobs import ROADMAP_PILOT_BINS, compendium, train


def seconds_per_sweep(data: Path, output: Path, master: str, sweeps: int) -> tuple[float, float, float]:
    """Median s/sweep, wall seconds and peak JVM MB of ``predictd train`` on ``master``."""
    fit = train(data, output, {"kind": "spark", "master": master}, {"max_iters": sweeps, "patience": sweeps})
    shutil.rmtree(output)
    return fit.seconds_per_sweep, fit.measured.seconds, fit.measured.jvm_peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sweeps", type=int, default=4)
    parser.add_argument("--chunk-bins", type=int, nargs="+", default=[16_384, 65_536, 262_144])
    parser.add_argument("--chunk-bins-bins", type=int, default=524_288)
    args = parser.parse_args()
    data = compendium(args.work / f"roadmap-{ROADMAP_PILOT_BINS}", ROADMAP_PILOT_BINS)
    scaling = {master: seconds_per_sweep(data, args.work / f"scaling-{master[6]}", master, args.sweeps)
               for master in ("local[1]", "local[2]")}
    chunks = {}
    for chunk_bins in args.chunk_bins:
        folder = compendium(args.work / f"chunks-{chunk_bins}", args.chunk_bins_bins, chunk_bins)
        chunks[chunk_bins] = seconds_per_sweep(folder, args.work / f"chunks-run-{chunk_bins}", "local[2]", args.sweeps)
        shutil.rmtree(folder)
    print(f"`predictd train`, {args.sweeps} ALS sweeps at rank 100, a fresh process per row.\n")
    print(f"{ROADMAP_PILOT_BINS:,} bins, chunks of 65,536:\n")
    print("| master | s per sweep (median) | wall (s) | peak JVM (MB) |")
    print("|---|---|---|---|")
    for master, (sweep, wall, jvm) in scaling.items():
        print(f"| {master} | {sweep:.1f} | {wall:.0f} | {jvm:,.0f} |")
    print(f"\nlocal[1] / local[2] seconds per sweep: **{scaling['local[1]'][0] / scaling['local[2]'][0]:.2f}x**\n")
    print(f"{args.chunk_bins_bins:,} bins on local[2], by chunk size:\n")
    print("| chunk bins | partitions | s per sweep (median) | wall (s) | peak JVM (MB) |")
    print("|---|---|---|---|---|")
    for chunk_bins, (sweep, wall, jvm) in chunks.items():
        print(f"| {chunk_bins:,} | {-(-args.chunk_bins_bins // chunk_bins)} | {sweep:.2f} | {wall:.0f} | {jvm:,.0f} |")


if __name__ == "__main__":
    main()
