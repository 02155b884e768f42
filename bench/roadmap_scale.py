"""Throughput at Roadmap scale: one ALS sweep against one NAdam-SGD round, side by side.

Builds a store with the real Roadmap layout (127 cells x 24 assays, the 1,014 observed experiments
of ../shared/data/roadmap-layout) and planted rank-100 signal, then times, on the same chunks, the
ALS sweep (G step + statistics: every training entry of the chunk) and PREDICTD's NAdam-SGD round
(5000 sequential samples per chunk), and reports training entries processed per second as a ratio.

    .venv/bin/python bench/roadmap_scale.py [--chunks 2] [--chunk-bins 65536] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from jobs import HG19_BINS, LAYOUT

from predictd_core.model.factors import Layout, initial_factors
from predictd_core.model.settings import ModelSettings
from predictd_core.simulate import load_roadmap_layout
from predictd_core.solvers import als, nadam
from predictd_core.store.signal_store import SignalStore, write_store
from predictd_core.tracks.genome import GenomeBins
from predictd_core.tracks.table import Track

RANK = 100


def build_store(folder: Path, n_chunks: int, chunk_bins: int) -> SignalStore:
    cells, assays, observed, _ = load_roadmap_layout(LAYOUT)
    experiments = [Track(c, a, "simulated") for c in cells for a in assays if (c, a) in observed]
    layout = Layout.from_experiments(experiments)
    rng = np.random.default_rng(0)
    C = rng.normal(0, 0.3, (len(layout.cells), RANK))
    A = rng.normal(0, 0.3, (len(layout.assays), RANK))
    Z = C[layout.cell_of] * A[layout.assay_of]
    bins = GenomeBins.build({"chrS1": n_chunks * chunk_bins * 25}, 25)

    def block(lo: int, hi: int) -> np.ndarray:
        local = np.random.default_rng(lo)
        G = local.gamma(0.3, 1.0, (hi - lo, RANK))
        y = np.maximum(0.5 + G @ Z.T + local.normal(0, 0.3, (hi - lo, Z.shape[0])), 0)
        return np.sinh(y).astype(np.float32)

    path = folder / "roadmap.zarr"
    write_store(str(path), experiments, bins, block, chunk_bins)
    return SignalStore.open(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--chunk-bins", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        store = build_store(Path(work), args.chunks, args.chunk_bins)
        layout = Layout.from_experiments(store.experiments)
        columns = np.arange(store.n_experiments)
        valid = columns[::8]
        train = np.setdiff1d(columns, valid)
        chunks = [store.read_chunk(k) for k in range(store.n_chunks)]
        sums = sum(als.column_moments(Y) for Y in chunks)
        factors = initial_factors(layout, RANK, 0, sums[0], sums[1], train)
        settings = ModelSettings(rank=RANK, solver="nadam-sgd")
        sweep_inputs = als.SweepInputs(factors, layout.cell_of, layout.assay_of, train, valid, 2.9)
        round_inputs = nadam.RoundInputs(
            nadam.SharedState.start(factors), factors.mu,
            nadam.NadamHyper(settings.learning_rate, settings.beta1, settings.beta2, settings.epsilon),
            nadam.penalty_rows(settings.penalties, RANK, len(layout.cells), len(layout.assays), store.bins.n_bins),
            settings.batch_size, settings.seed, 1, layout.cell_of, layout.assay_of, train, 2.9)
        states = [nadam.initial_chunk_state(Y, factors, layout.cell_of, layout.assay_of, train, 2.9) for Y in chunks]
        als_times, sgd_times = [], []
        for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
            for k, Y in enumerate(chunks):
                started = time.perf_counter()
                als.sweep_statistics(Y, sweep_inputs)
                als_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                nadam.sgd_round(k, Y, states[k], round_inputs)
                sgd_times.append(time.perf_counter() - started)
        entries_per_chunk = float(np.sum(~np.isnan(chunks[0][:, train])))
        als_rate = entries_per_chunk / statistics.median(als_times)
        sgd_rate = settings.batch_size / statistics.median(sgd_times)
        print(f"Roadmap layout: {len(layout.cells)} cells x {len(layout.assays)} assays, {store.n_experiments} "
              f"experiments ({train.size} training), rank {RANK}, chunks of {args.chunk_bins} bins, "
              f"median of {len(als_times)} chunk passes each.\n")
        print("| solver | unit of work | s per chunk | training entries per s |")
        print("|---|---|---|---|")
        print(f"| als | one sweep (G step + statistics) | {statistics.median(als_times):.2f} | {als_rate:,.0f} |")
        print(f"| nadam-sgd | one round ({settings.batch_size} steps) | {statistics.median(sgd_times):.2f} | "
              f"{sgd_rate:,.0f} |")
        print(f"\nals / nadam-sgd training entries per second: {als_rate / sgd_rate:,.0f}x")
        hours = HG19_BINS / args.chunk_bins * statistics.median(als_times) / 3600
        print(f"One ALS sweep (or one model's whole-genome imputation, the same two products) over all "
              f"{HG19_BINS:,} hg19 bins: {hours:.1f} h on this 2-core machine; chunks are independent, so "
              f"about {hours * 60 * 2 / 64:.0f} min on 64 cores.")


if __name__ == "__main__":
    main()
