"""Faithful against exact: time for NAdam-SGD and for ALS to reach the same validation MSE, in one run.

The same Roadmap-shaped store (the real layout: 127 cells x 24 assays, the 1,014 observed experiments of
../shared/data/roadmap-layout, planted rank-100 signal), the same training and validation experiments,
the same model (rank 100, PREDICTD's penalties) and the numpy engine. Each solver's fit logs its
validation MSE and seconds after every sweep (ALS) or round (NAdam-SGD, 5,000 samples per chunk, as
PREDICTD). The common target is the lowest validation MSE both reached; the table gives each solver's
time to reach it. When NAdam-SGD stops at its round budget above ALS's converged MSE, its time is a
lower bound (it had not got further).

    .venv/bin/python bench/time_to_mse.py [--bins 65536] [--nadam-rounds 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from jobs import LAYOUT

from predictd_core.engine.local import LocalEngine
from predictd_core.train.estimator import Predictd
from predictd_core.model.factors import Layout
from predictd_core.model.settings import ModelSettings
from predictd_core.train.split import choose_validation
from predictd_core.simulate import simulate_compendium
from predictd_core.store.signal_store import SignalStore

RANK = 100


def time_to(history: list[dict], target: float) -> float | None:
    """Seconds of fitting until the validation MSE first reaches ``target`` (None: never)."""
    elapsed = 0.0
    for row in history:
        elapsed += row["seconds"]
        if row["valid_mse"] <= target:
            return elapsed
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=65_536)
    parser.add_argument("--nadam-rounds", type=int, default=60)
    parser.add_argument("--als-sweeps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        simulate_compendium(Path(work) / "roadmap", layout=LAYOUT, n_bins=args.bins, rank=RANK,
                            signal_format="store", dense_truth=False, chunk_bins=args.bins)
        store = SignalStore.open(Path(work) / "roadmap" / "store.zarr")
        layout = Layout.from_experiments(store.experiments)
        train, valid = choose_validation(layout, np.arange(store.n_experiments), 0.125, 123)
        engine = LocalEngine(store)
        settings = {"als": ModelSettings(rank=RANK, solver="als", max_iters=args.als_sweeps),
                    "nadam-sgd": ModelSettings(rank=RANK, solver="nadam-sgd", max_iters=args.nadam_rounds)}
        histories: dict[str, list[list[dict]]] = {name: [] for name in settings}
        for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
            for name, setting in settings.items():
                histories[name].append(Predictd(setting).fit(engine, layout, train, valid).history_)
    best = {name: min(row["valid_mse"] for row in runs[0]) for name, runs in histories.items()}
    target = max(best.values())
    times = {name: statistics.median(time_to(h, target) or sum(r["seconds"] for r in h) for h in runs)
             for name, runs in histories.items()}
    reached = {name: all(time_to(h, target) is not None for h in runs) for name, runs in histories.items()}
    print(f"Roadmap layout, {store.bins.n_bins:,} bins x {store.n_experiments} experiments ({train.size} training, "
          f"{valid.size} validation), rank {RANK}, numpy engine, median of {args.repeats} interleaved fits.\n")
    print("| solver | steps run | s per step | best validation MSE | s to reach the target |")
    print("|---|---|---|---|---|")
    for name, runs in histories.items():
        per_step = statistics.median(row["seconds"] for h in runs for row in h)
        bound = "" if reached[name] else " (not reached: time of all steps)"
        print(f"| {name} | {len(runs[0])} | {per_step:.2f} | {best[name]:.4f} | {times[name]:.1f}{bound} |")
    ratio = times["nadam-sgd"] / times["als"]
    qualifier = "" if reached["nadam-sgd"] else "at least "
    print(f"\ntarget validation MSE {target:.4f} (the lowest both reach); nadam-sgd / als time to reach it: "
          f"{qualifier}{ratio:.0f}x")
    if best["als"] < target:
        als_best_time = statistics.median(time_to(h, best["als"]) for h in histories["als"])
        nadam_total = statistics.median(sum(row["seconds"] for row in h) for h in histories["nadam-sgd"])
        print(f"ALS went on to {best['als']:.4f} in {als_best_time:.1f} s; NAdam-SGD had not reached it after "
              f"{nadam_total:.1f} s of rounds.")


if __name__ == "__main__":
    main()
