"""Whole-genome imputation, measured on a 10 M-bin Roadmap-shaped store and projected to hg19 on EMR.

PREDICTD imputes the whole genome with C and A fixed and a ridge solve for each bin's genome factors;
so does ``predictd impute``. On a simulated store with the real Roadmap layout (1,014 observed
experiments of 127 cells x 24 assays) this measures, in one run:

1. ingest throughput: ``predictd simulate --format bigwig`` writes the 1,014 tracks over ``--ingest-bins``
   bins, and ``ingest`` bins them into a store in 1 process and in ``--writers`` processes;
2. compute: chunks of the store read, genome factors solved, all 3,048 pairs predicted as float32 arcsinh
   (what ``run_impute`` computes for its writers), nothing written, in 1 process (the numpy engine's
   ``map_chunks``) and in ``--writers`` worker processes laying them into shared-memory slots
   (:func:`~predictd_core.impute.parallel.computed_chunks`), interleaved ``--repeats`` times (medians): seconds
   per million bins on this machine (the first ``--compute-chunks`` chunks timed: every chunk costs the same);
   then the default's refinement stage (``model.refine``): its fit in the driver, and the compute above with
   every pair refined (``--refine-chunks`` chunks timed, 1 process and ``--writers``);
3. writing: ``run_impute`` writing ``--tracks`` of the 2,034 never-measured pairs over all bins with
   1 process and with ``--writers`` (which then also compute the chunks side by side): bigWig bytes per value,
   ns per value written (from the 1-process run less the compute of those pairs alone), and the speed-up. The
   store is read without a cache. The tracks are deleted after each run: all 2,034 over 10 M bins would take
   ~110 GB, more than this machine's disk;
4. with ``--all-missing``: every one of the 2,034 never-measured pairs written over all bins by ``--writers``
   processes, ``--batch-tracks`` pairs per ``run_impute`` call (each batch deleted once measured, for the disk;
   each batch solves the genome factors again, which the one-pass run a cloud node makes would not).

It then projects ingest and imputation of hg19 (124 M bins) on one EMR on EC2 instance (see BENCHMARKS.md).

    .venv/bin/python bench/whole_genome.py --data /tmp/roadmap-10M --model MODEL_DIR [--bins 10000000]
        [--compute-only: skip ingest and writing] [--all-missing --batch-tracks 509]
        [--chunk-bins N: the simulated store's chunk] [--refine-sample BINS TRACKS: the refinement's fit]

The load average at the end of the run is printed with the tables: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
from jobs import HG19_BINS, compendium, write_config

from predictd_core.config import load_config
from predictd_core.engine.local import LocalEngine
from predictd_core.impute.job import ImputeJob, impute_chunk
from predictd_core.impute.parallel import computed_chunks
from predictd_core.impute.trained_run import TrainedRun, single_model_ensemble
from predictd_core.impute.write_tracks import SharedSlots
from predictd_core.pipeline import fit_run_refinement, run_impute
from predictd_core.store.signal_store import SignalStore, ingest
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table
from predictd_core.train.estimator import Predictd


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


def compute_seconds(store: SignalStore, job: ImputeJob, chunks: int, processes: int) -> float:
    """Seconds to compute the first ``chunks`` chunks as ``run_impute`` does for its writers, nothing written:
    in this process (the numpy engine's ``map_chunks``) with 1 process, else by ``processes`` workers into
    shared-memory slots (their start-up included)."""
    started = time.perf_counter()
    if processes == 1:
        for _ in islice(LocalEngine(store, cache=False).map_chunks(impute_chunk, job), chunks):
            pass
        return time.perf_counter() - started
    n_tracks = job.ensemble.n_pairs if job.pairs is None else len(job.pairs)
    slots = SharedSlots(processes + 1, (n_tracks, store.chunk_bins))
    try:
        for chunk, _ in computed_chunks(store, impute_chunk, job, slots, processes):
            if chunk + 1 == chunks:  # the chunks still running when the loop is left are not counted
                return time.perf_counter() - started
    finally:
        slots.close()
    raise ValueError(f"the store has fewer than {chunks} chunks")


def write_run(config_path: Path, store: SignalStore, run: TrainedRun, pairs: np.ndarray, writers: int
              ) -> tuple[float, int]:
    """Seconds and bytes of ``run_impute`` writing ``pairs`` with ``writers`` processes (that compute the chunks
    side by side too); the tracks are removed."""
    config = load_config(config_path)
    config.engine.processes = writers
    started = time.perf_counter()
    written = run_impute(config, store, run, LocalEngine(store, cache=False), pairs=pairs)
    seconds = time.perf_counter() - started
    size = sum(Path(path).stat().st_size for path in written)
    shutil.rmtree(Path(config.output) / "imputed")
    return seconds, size


def write_all(config_path: Path, store: SignalStore, run: TrainedRun, pairs: np.ndarray, writers: int, batch: int
              ) -> tuple[float, int, int]:
    """Seconds, bytes and batches of writing every one of ``pairs`` by ``writers`` processes, ``batch`` pairs
    per :func:`write_run` (each batch removed once measured)."""
    seconds, size, batches = 0.0, 0, np.array_split(pairs, -(-pairs.size // batch))
    for number, part in enumerate(batches, 1):
        part_seconds, part_size = write_run(config_path, store, run, part, writers)
        seconds, size = seconds + part_seconds, size + part_size
        print(f"  batch {number} of {len(batches)}: {part.size} tracks, {part_seconds:.0f} s, {part_size / 1e9:.1f} GB",
              flush=True)
    return seconds, size, len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="10 M-bin compendium folder (simulated if absent)")
    parser.add_argument("--bins", type=int, default=10_000_000)
    parser.add_argument("--model", type=Path, required=True, help="a model trained on the same layout (model.json)")
    parser.add_argument("--tracks", type=int, default=48, help="never-measured pairs written in each write run")
    parser.add_argument("--writers", type=int, default=2, help="processes that ingest, compute and write side by side")
    parser.add_argument("--ingest-bins", type=int, default=100_000)
    parser.add_argument("--compute-chunks", type=int, default=16, help="chunks timed for the compute-only figures")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved compute timings (medians)")
    parser.add_argument("--refine-chunks", type=int, default=2,
                        help="chunks timed for the compute figures with the default refinement stage (0: the "
                             "refinement is not measured)")
    parser.add_argument("--compute-only", action="store_true", help="skip ingest and writing")
    parser.add_argument("--all-missing", action="store_true",
                        help="also write all the never-measured pairs, --batch-tracks at a time, with --writers")
    parser.add_argument("--batch-tracks", type=int, default=509, help="pairs per run_impute call with --all-missing")
    parser.add_argument("--chunk-bins", type=int, default=None, help="the simulated store's chunk (default: simulate's)")
    parser.add_argument("--refine-sample", type=int, nargs=2, default=None, metavar=("BINS", "TRACKS"),
                        help="fit the refinement on BINS sampled bins and TRACKS inner tracks (default: the model's)")
    args = parser.parse_args()
    ingested, n_tracks = {}, 1014
    if not args.compute_only:
        with tempfile.TemporaryDirectory(dir=args.data.parent) as work:
            ingested, n_tracks = ingest_seconds(Path(work), args.ingest_bins, [1, args.writers])
    data = compendium(args.data, args.bins, args.chunk_bins)
    store = SignalStore.open(data / "store.zarr")
    # the write runs impute with the tensor ensemble alone, as PREDICTD: the refinement's cost is measured apart
    config_path = write_config(data, data / "bench-impute", {"kind": "numpy"}, {"refine": {"enabled": False}})
    model = Predictd.load(args.model)
    run = TrainedRun(single_model_ensemble(load_config(config_path), store, model), {"model": model}, [], False)
    layout = run.ensemble.layout
    observed = {layout.cell_of[k] * len(layout.assays) + layout.assay_of[k] for k in range(len(layout.cell_of))}
    missing = np.array(sorted(set(range(run.ensemble.n_pairs)) - observed))
    pairs = missing[np.linspace(0, missing.size - 1, args.tracks).astype(int)]  # spread over cells and assays
    chunks = min(args.compute_chunks, store.n_chunks)
    n_bins, timed_bins = store.bins.n_bins, store.chunk_bounds(chunks - 1)[1]
    every_pair = ImputeJob(run.ensemble, False, None)
    timings = {1: [], args.writers: []}
    for _ in range(args.repeats):
        for count in timings:
            timings[count].append(compute_seconds(store, every_pair, chunks, count) / timed_bins * n_bins)
    compute = {count: float(np.median(seconds)) for count, seconds in timings.items()}
    refined_chunks = min(args.refine_chunks, store.n_chunks)
    refine_fit, refined = float("nan"), {count: float("nan") for count in timings}
    if refined_chunks:
        # the default imputation: the refinement stage fitted in the driver, then applied to every chunk
        started = time.perf_counter()
        refine = {} if args.refine_sample is None else {"refine": dict(zip(("sample_bins", "inner_tracks"),
                                                                           args.refine_sample))}
        refinement = fit_run_refinement(load_config(write_config(data, data / "bench-refine", {"kind": "numpy"},
                                                                 refine)), store, run.ensemble)
        refine_fit = time.perf_counter() - started
        refined_bins = store.chunk_bounds(refined_chunks - 1)[1]
        refined = {count: compute_seconds(store, ImputeJob(run.ensemble, False, None, refinement), refined_chunks,
                                          count) / refined_bins * n_bins for count in timings}
    if not args.compute_only:
        compute_subset = compute_seconds(store, ImputeJob(run.ensemble, False, pairs), chunks, 1) / timed_bins * n_bins
        single, size = write_run(config_path, store, run, pairs, 1)
        parallel, _ = write_run(config_path, store, run, pairs, args.writers)
        if args.all_missing:
            whole = write_all(config_path, store, run, missing, args.writers, args.batch_tracks)
    load = os.getloadavg()
    values = args.tracks * n_bins
    print(f"Store: {n_bins:,} bins x {n_tracks:,} experiments ({store.n_chunks} chunks of {store.chunk_bins:,}); "
          f"{run.ensemble.n_pairs:,} pairs, {missing.size:,} never measured; model rank {model.factors_.C.shape[1]}; "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) "
          f"at the end.\n")
    print("| stage | measured | per unit |")
    print("|---|---|---|")
    ingest_per_value = ingested[1] / (args.ingest_bins * n_tracks) if ingested else float("nan")
    for count, seconds in ingested.items():
        print(f"| ingest ({args.ingest_bins:,} bins x {n_tracks:,} bigWigs), {count} process(es) | {seconds:.1f} s | "
              f"{seconds / (args.ingest_bins * n_tracks) * 1e9:.0f} ns per value |")
    for count, seconds in compute.items():
        print(f"| compute (read, solve G, predict all {run.ensemble.n_pairs:,} pairs), {count} process(es); "
              f"{chunks} chunks timed, median of {args.repeats}, scaled to {n_bins:,} bins | {seconds:.0f} s | "
              f"{seconds / n_bins * 1e6:.1f} s per M bins |")
    fitted_on = ("default settings: blend and tensor share validated on 20 tracks" if args.refine_sample is None else
                 f"on {args.refine_sample[0]:,} bins, validated on {args.refine_sample[1]} tracks")
    if refined_chunks:
        print(f"| refinement stage fitted in the driver ({fitted_on}) | "
              f"{refine_fit:.0f} s | once per run (per input set) |")
        for count, seconds in refined.items():
            print(f"| compute as above and refine every pair (the default), {count} process(es); {refined_chunks} "
                  f"chunks timed, scaled | {seconds:.0f} s | {seconds / n_bins * 1e6:.1f} s per M bins |")
    if args.compute_only:
        print(f"\nParallel speed-up with {args.writers} processes: compute **{compute[1] / compute[args.writers]:.2f}x**, "
              f"refined compute **{refined[1] / refined[args.writers]:.2f}x**. Projection inputs: compute "
              f"{compute[args.writers] / n_bins * args.writers * 1e6:.1f} core-s per M bins, refined "
              f"{refined[args.writers] / n_bins * args.writers * 1e6:.1f} ({args.writers} processes busy).")
        return
    print(f"| compute for those {args.tracks} pairs only, 1 process (as above, once) | {compute_subset:.0f} s | "
          f"{compute_subset / n_bins * 1e6:.1f} s per M bins |")
    print(f"| impute + write {args.tracks} tracks, 1 process | {single:.0f} s | "
          f"{(single - compute_subset) / values * 1e9:.0f} ns per value written |")
    print(f"| impute + write {args.tracks} tracks, {args.writers} processes | {parallel:.0f} s | "
          f"{parallel / values * 1e9:.0f} ns per value, all in |")
    if args.all_missing:
        # The 48-track run's ``size`` stays for the bigWig size below.
        whole_seconds, whole_size, batches = whole
        print(f"| impute + write all {missing.size:,} never-measured tracks, {args.writers} processes, {batches} "
              f"batches | {whole_seconds:.0f} s | {whole_seconds * args.writers / (missing.size * n_bins) * 1e9:.0f} "
              f"core-ns per value, all in; {whole_size / 1e9:.1f} GB, {whole_size / (missing.size * n_bins):.2f} bytes "
              f"per value |")
    print(f"\nParallel speed-up with {args.writers} processes: ingest **{ingested[1] / ingested[args.writers]:.2f}x**, "
          f"compute **{compute[1] / compute[args.writers]:.2f}x**, impute + write **{single / parallel:.2f}x**; "
          f"bigWig size {size / values:.2f} bytes per value.")
    print(f"Projection inputs: ingest {ingest_per_value * 1e9:.0f} ns/value/core, compute "
          f"{compute[args.writers] / n_bins * args.writers * 1e6:.1f} core-s per M bins, refined "
          f"{refined[args.writers] / n_bins * args.writers * 1e6:.1f} ({args.writers} processes busy), write {(single - compute_subset) / values * 1e9:.0f} ns/value/core, hg19 {HG19_BINS:,} bins.")

if __name__ == "__main__":
    main()
