"""Time and peak memory of training against genome length: 0.1 M, 0.5 M, 1.1 M and 5 M bins.

For each bin count, a Roadmap-shaped store (simulated once into ``--work``; the 1,014 observed
experiments of ../shared/data/roadmap-layout) is trained for ``--sweeps`` ALS sweeps at rank 100 by
``predictd train`` on Spark ``local[2]`` in a fresh process, and the peak resident memory of its
Python processes (driver and workers) and of its JVM is sampled (bench/jobs.py). Spark caches the
chunks in the JVM up to its storage memory and re-reads the rest from the store, and each Python
worker holds one chunk at a time, so memory follows the chunk size and the Spark settings.

    .venv/bin/python bench/memory_scale.py --work /tmp/bench [--bins 100000 500000 1126469 5000000]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from jobs import compendium, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the simulated stores (roadmap-N)")
    parser.add_argument("--bins", type=int, nargs="+", default=[100_000, 500_000, 1_126_469, 5_000_000])
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--remove-above", type=int, default=2_000_000,
                        help="delete stores simulated here with more bins than this after measuring (disk)")
    args = parser.parse_args()
    rows = []
    for bins in args.bins:
        folder = args.work / f"roadmap-{bins}"
        created = not (folder / "store.zarr").is_dir()
        data = compendium(folder, bins)
        output = args.work / f"memory-{bins}"
        fit = train(data, output, {"kind": "spark", "master": args.master},
                    {"max_iters": args.sweeps, "patience": args.sweeps})
        rows.append((bins, fit.measured, fit.seconds_per_sweep))
        shutil.rmtree(output)
        if created and bins > args.remove_above:
            shutil.rmtree(folder)
    print(f"`predictd train`, {args.sweeps} ALS sweeps at rank 100, Spark {args.master}, chunks of 65,536 bins; "
          "one fresh process per row.\n")
    print("| bins | wall (s) | s per sweep (median) | peak Python process (MB) | all Python (MB) | peak JVM (MB) |")
    print("|---|---|---|---|---|---|")
    for bins, measured, sweep in rows:
        print(f"| {bins:,} | {measured.seconds:.0f} | {sweep:.1f} | {measured.python_peak_mb:,.0f} | "
              f"{measured.python_total_mb:,.0f} | {measured.jvm_peak_mb:,.0f} |")
    largest, smallest = rows[-1][1], rows[0][1]
    print(f"\nPeak RSS {rows[-1][0]:,} / {rows[0][0]:,} bins: "
          f"Python {largest.python_total_mb / smallest.python_total_mb:.2f}, "
          f"JVM {largest.jvm_peak_mb / smallest.jvm_peak_mb:.2f}")


if __name__ == "__main__":
    main()
