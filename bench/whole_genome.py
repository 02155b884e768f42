"""Whole-genome imputation, measured on a 10 M-bin Roadmap-shaped store and projected to hg19 on EMR.

PREDICTD imputes the whole genome with C and A fixed and a ridge solve for each bin's genome factors;
so does ``predictd impute``. On a simulated store with the real Roadmap layout (1,014 observed
experiments of 127 cells x 24 assays) this measures, in one run:

1. ingest throughput: ``predictd simulate --format bigwig`` writes the 1,014 tracks over ``--ingest-bins``
   bins, and ``ingest`` bins them into a store in 1 process and in ``--writers`` processes;
2. compute: chunks of the 10 M-bin store read, genome factors solved, all 3,048 pairs predicted
   (:func:`ensemble_chunk`, -log10 p), nothing written: seconds per million bins on this machine
   (``--compute-chunks`` chunks timed: every chunk costs the same);
3. writing: ``run_impute`` writing ``--tracks`` of the 2,034 never-measured pairs over all bins with
   1 writer process and with ``--writers`` (bigWig bytes per value, ns per value per process; the two
   runs give the parallel speed-up; the store is read without a cache). The tracks are deleted after
   each run: all 2,034 over 10 M bins would take ~110 GB, more than this machine's disk.

It then projects ingest and imputation of hg19 (124 M bins) on one EMR on EC2 instance (see BENCHMARKS.md).

    .venv/bin/python bench/whole_genome.py --data /tmp/roadmap-10M --model MODEL_DIR [--bins 10000000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from jobs import HG19_BINS, compendium, write_config

from predictd_core.config import load_config
from predictd_core.engine.local import LocalEngine
from predictd_core.impute.ensemble import ensemble_chunk
from predictd_core.model.estimator import Predictd
from predictd_core.pipeline import TrainedRun, run_impute, single_model_ensemble
from predictd_core.store.signal_store import SignalStore, ingest
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table


def ingest_seconds(work: Path, bins: int, processes: list[int]) -> tuple[dict[int, float], int]:
    """Seconds to ingest the 1,014 Roadmap-layout bigWigs over ``bins`` bins with each process count."""
    folder = compendium(work / "bigwigs", bins, signal_format="bigwig")
    tracks = read_tracks_table(folder / "tracks.tsv")
    seconds = {}
    for count in processes:
        started = time.perf_counter()
        ingest(tracks, read_chrom_sizes(folder / "chrom.sizes"), 25, work / "ingested.zarr", chunk_bins=bins // 8,
               processes=count)
        seconds[count] = time.perf_counter() - started
        shutil.rmtree(work / "ingested.zarr")
    shutil.rmtree(folder)
    return seconds, len(tracks)


def compute_seconds_per_bin(store: SignalStore, run: TrainedRun, chunks: int, pairs: np.ndarray | None = None
                            ) -> float:
    """Seconds per bin to read a chunk, solve its genome factors and predict every pair (or ``pairs``) as
    float32 arcsinh, nothing written (what ``run_impute`` computes before its writers); timed over
    the first ``chunks`` chunks (every chunk costs the same)."""
    started = time.perf_counter()
    for chunk in range(chunks):
        ensemble_chunk(store.read_chunk(chunk), run.ensemble, False, pairs)[0].astype(np.float32)
    return (time.perf_counter() - started) / store.chunk_bounds(chunks - 1)[1]


def write_run(config_path: Path, store: SignalStore, run: TrainedRun, pairs: np.ndarray, writers: int
              ) -> tuple[float, int]:
    """Seconds and bytes of ``run_impute`` writing ``pairs`` with ``writers`` processes; the tracks are removed."""
    config = load_config(config_path)
    config.engine.processes = writers
    started = time.perf_counter()
    written = run_impute(config, store, run, LocalEngine(store, cache=False), pairs=pairs)
    seconds = time.perf_counter() - started
    size = sum(Path(path).stat().st_size for path in written)
    shutil.rmtree(Path(config.output) / "imputed")
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="10 M-bin compendium folder (simulated if absent)")
    parser.add_argument("--bins", type=int, default=10_000_000)
    parser.add_argument("--model", type=Path, required=True, help="a model trained on the same layout (model.json)")
    parser.add_argument("--tracks", type=int, default=48, help="never-measured pairs written in each write run")
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--ingest-bins", type=int, default=100_000)
    parser.add_argument("--compute-chunks", type=int, default=16, help="chunks timed for the compute-only figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.data.parent) as work:
        ingested, n_tracks = ingest_seconds(Path(work), args.ingest_bins, [1, args.writers])
    ingest_per_value = ingested[1] / (args.ingest_bins * n_tracks)
    data = compendium(args.data, args.bins)
    store = SignalStore.open(data / "store.zarr")
    config_path = write_config(data, data / "bench-impute", {"kind": "numpy"})
    model = Predictd.load(args.model)
    run = TrainedRun(single_model_ensemble(load_config(config_path), store, model), {"model": model}, [], False)
    layout = run.ensemble.layout
    observed = {layout.cell_of[k] * len(layout.assays) + layout.assay_of[k] for k in range(len(layout.cell_of))}
    missing = np.array(sorted(set(range(run.ensemble.n_pairs)) - observed))
    pairs = missing[np.linspace(0, missing.size - 1, args.tracks).astype(int)]  # spread over cells and assays
    chunks = min(args.compute_chunks, store.n_chunks)
    n_bins = store.bins.n_bins
    compute = compute_seconds_per_bin(store, run, chunks) * n_bins
    compute_subset = compute_seconds_per_bin(store, run, chunks, pairs) * n_bins
    single, size = write_run(config_path, store, run, pairs, 1)
    parallel, _ = write_run(config_path, store, run, pairs, args.writers)
    values = args.tracks * n_bins
    print(f"Store: {n_bins:,} bins x {n_tracks:,} experiments ({store.n_chunks} chunks of {store.chunk_bins:,}); "
          f"{run.ensemble.n_pairs:,} pairs, {missing.size:,} never measured; model rank {model.factors_.C.shape[1]}.\n")
    print("| stage | measured | per unit |")
    print("|---|---|---|")
    for count, seconds in ingested.items():
        print(f"| ingest ({args.ingest_bins:,} bins x {n_tracks:,} bigWigs), {count} process(es) | {seconds:.1f} s | "
              f"{seconds / (args.ingest_bins * n_tracks) * 1e9:.0f} ns per value |")
    print(f"| compute (read, solve G, predict all {run.ensemble.n_pairs:,} pairs; 2 cores; {chunks} chunks "
          f"timed, scaled to {n_bins:,} bins) | {compute:.0f} s | {compute / n_bins * 1e6:.1f} s per M bins |")
    print(f"| compute for those {args.tracks} pairs only (as above) | {compute_subset:.0f} s | "
          f"{compute_subset / n_bins * 1e6:.1f} s per M bins |")
    print(f"| impute + write {args.tracks} tracks, 1 writer | {single:.0f} s | "
          f"{(single - compute_subset) / values * 1e9:.0f} ns per value written |")
    print(f"| impute + write {args.tracks} tracks, {args.writers} writers | {parallel:.0f} s | "
          f"{parallel / values * 1e9:.0f} ns per value, all in |")
    print(f"\nParallel speed-up with {args.writers} processes: ingest **{ingested[1] / ingested[args.writers]:.2f}x**, "
          f"impute + write **{single / parallel:.2f}x**; "
          f"bigWig size {size / values:.2f} bytes per value.")
    print(f"Projection inputs: ingest {ingest_per_value * 1e9:.0f} ns/value/core, compute "
          f"{compute / n_bins * 2 * 1e6:.1f} core-s per M bins, write {(single - compute_subset) / values * 1e9:.0f} "
          f"ns/value/core, "
          f"hg19 {HG19_BINS:,} bins.")


if __name__ == "__main__":
    main()
