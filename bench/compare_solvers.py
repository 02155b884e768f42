"""ALS against PREDICTD's NAdam-SGD on the real pilot tracks, side by side in one run.

Both solvers fit the same training experiments of the same store with the same rank, penalties,
validation experiments and numpy engine; the held-out tracks are scored the same way. Prints a
markdown table for BENCHMARKS.md.

    .venv/bin/python bench/compare_solvers.py [--sgd-rounds 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from predictd_core.engine.local import LocalEngine
from predictd_core.model.measures import quality_measures
from predictd_core.train.estimator import Predictd
from predictd_core.model.factors import Layout
from predictd_core.model.settings import ModelSettings
from predictd_core.train.split import choose_validation
from predictd_core.store.signal_store import ingest
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table

PILOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "roadmap-pilot"
HOLDOUT = ("E065:H3K4me3", "E116:H3K36me3", "E117:H3K27me3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sgd-rounds", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        store = ingest(read_tracks_table(PILOT / "tracks.tsv"), read_chrom_sizes(PILOT / "chrom.sizes"), 25,
                       Path(work) / "pilot.zarr")
        layout = Layout.from_experiments(store.experiments)
        names = [e.name for e in store.experiments]
        held = np.array([names.index(t) for t in HOLDOUT])
        inputs = np.setdiff1d(np.arange(store.n_experiments), held)
        train, valid = choose_validation(layout, inputs, 0.125, 123)
        engine = LocalEngine(store)
        Y = np.concatenate([store.read_chunk(k) for k in range(store.n_chunks)])
        settings = {"als": ModelSettings(solver="als"),
                    "nadam-sgd": ModelSettings(solver="nadam-sgd", max_iters=args.sgd_rounds)}
        results = {}
        for repeat in range(args.repeats):  # interleaved, so machine noise hits both alike
            for name, setting in settings.items():
                started = time.perf_counter()
                model = Predictd(setting).fit(engine, layout, train, valid)
                seconds = time.perf_counter() - started
                predicted = model.predict_chunk(Y, inputs, layout.cell_of[held], layout.assay_of[held])
                mse = np.mean([quality_measures(Y[:, c], predicted[:, j])["MSEglobal"] for j, c in enumerate(held)])
                entry = results.setdefault(name, {"seconds": [], "per_step": [], "steps": 0, "valid": 0.0,
                                                  "test": 0.0, "rank": model.rank_})
                entry["seconds"].append(seconds)
                entry["per_step"].append(statistics.median(h["seconds"] for h in model.history_))
                entry["steps"], entry["test"] = len(model.history_), float(mse)
                entry["valid"] = min(h["valid_mse"] for h in model.history_)
    als, sgd = results["als"], results["nadam-sgd"]
    print(f"Pilot: {store.bins.n_bins} bins x {len(train)} training + {len(valid)} validation experiments, "
          f"rank {als['rank']}, numpy engine, median of {args.repeats} interleaved runs.\n")
    print("| solver | sweeps/rounds | s per sweep/round | s per fit | best validation MSE | held-out MSEglobal |")
    print("|---|---|---|---|---|---|")
    for name, entry in results.items():
        print(f"| {name} | {entry['steps']} | {statistics.median(entry['per_step']):.2f} | "
              f"{statistics.median(entry['seconds']):.1f} | {entry['valid']:.4f} | {entry['test']:.4f} |")
    ratio = statistics.median(sgd["seconds"]) / statistics.median(als["seconds"])
    print(f"\nnadam-sgd / als wall time per fit: {ratio:.1f}x")


if __name__ == "__main__":
    main()
