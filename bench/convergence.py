"""One model trained to convergence at Roadmap scale: 1,126,469 bins x 1,014 experiments, rank 100.

Simulates (once) a store with the real Roadmap layout (../shared/data/roadmap-layout: 127 cells x 24
assays, the 1,014 observed experiments) and planted structure, then runs ``predictd train`` on it in a
fresh process for each engine asked for, with the default model (ALS, rank min(100, ...) = 100,
PREDICTD's penalties, validation every sweep, stop after ``patience`` sweeps without a better
validation MSE). Prints wall time from process start to the saved model, sweeps, seconds per sweep,
the best sweep and its validation MSE, and peak memory.

    .venv/bin/python bench/convergence.py --data /tmp/roadmap-1.1M [--bins 1126469] [--engine numpy local[2]]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs import ROADMAP_PILOT_BINS, compendium, train


def engine_settings(name: str) -> dict:
    """``numpy`` (in-process, chunks cached) or a Spark master such as ``local[2]``."""
    return {"kind": "numpy"} if name == "numpy" else {"kind": "spark", "master": name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="compendium folder (simulated here if absent)")
    parser.add_argument("--bins", type=int, default=ROADMAP_PILOT_BINS)
    parser.add_argument("--engine", nargs="+", default=["numpy"])
    parser.add_argument("--patience", type=int, default=None, help="default: the model's (10)")
    args = parser.parse_args()
    data = compendium(args.data, args.bins)
    model = {} if args.patience is None else {"patience": args.patience}
    print(f"{args.bins:,} bins x 1,014 experiments, rank 100; `predictd train` in a fresh process.\n")
    print("| engine | wall (s) | sweeps | s/sweep (median) | best sweep | best validation MSE | "
          "peak Python (MB) | peak JVM (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.engine:
        output = data / f"bench-train-{name.replace('[', '').replace(']', '')}"
        fit = train(data, output, engine_settings(name), model)
        print(f"| {name} | {fit.measured.seconds:.0f} | {len(fit.history)} | {fit.seconds_per_sweep:.1f} | "
              f"{fit.best_iteration} | {fit.best_valid_mse:.4f} | {fit.measured.python_peak_mb:,.0f} | "
              f"{fit.measured.jvm_peak_mb:,.0f} |")


if __name__ == "__main__":
    main()
