"""One ALS sweep on the Spark engine against the numpy engine, side by side, and where Spark's extra time goes.

Simulates (once) a Roadmap-shaped store (the 1,014 observed experiments of ../shared/data/roadmap-layout,
planted rank 10) of ``--bins`` bins, then in this one process times, interleaved, one ALS sweep
(``map_reduce(als.sweep_statistics)`` at rank 100, every 8th experiment for validation) on:

- the numpy engine (decoded chunks kept in this process between sweeps);
- the Spark engine on ``--master`` with its decoded-chunk cache (the default);
- the Spark engine with the cache off (budget 0): every sweep decodes every chunk in its task.

The first sweep of each (it decodes the store and fills the caches) is reported apart; the table gives the
medians of the ``--repeats`` sweeps after it. Beside each sweep it times a pass that computes nothing and
returns a result of a sweep's size (the read or cache look-up, the broadcast, scheduling and the result's
transfer), so the difference is the compute. In-process, it also times one chunk's decode, its cache
file's read and its ALS statistics on one thread, as the Spark tasks run them.

    .venv/bin/python bench/spark_sweep.py [--data /tmp/roadmap-262144] [--bins 262144] [--repeats 5]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
from pathlib import Path

import numpy as np
from jobs import compendium, timed
from threadpoolctl import threadpool_limits

from predictd_core.engine.local import LocalEngine
from predictd_core.engine.spark import SparkEngine
from predictd_core.model.factors import Layout, initial_factors
from predictd_core.solvers import als
from predictd_core.store.signal_store import SignalStore

RANK = 100
RIDGE = 2.9


def in_process_chunk(store: SignalStore, inputs: als.SweepInputs, repeats: int) -> dict[str, float]:
    """Median seconds of one chunk's decode, its raw .npy read (the cache's hit) and its ALS statistics, on
    one BLAS thread, as a Spark task runs them (Spark sets its Python workers' ``OMP_NUM_THREADS`` to 1)."""
    signal = store.read_chunk(0)
    times = {"decode": [], "cache file": [], "compute": []}
    with tempfile.TemporaryDirectory() as work, threadpool_limits(1):
        raw = Path(work) / "chunk.npy"
        np.save(raw, signal)
        for _ in range(repeats):
            times["decode"].append(timed(store.read_chunk, 0))
            times["cache file"].append(timed(np.load, raw))
            times["compute"].append(timed(als.sweep_statistics, signal, inputs))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="compendium folder (simulated if absent)")
    parser.add_argument("--bins", type=int, default=262_144)
    parser.add_argument("--chunk-bins", type=int, default=None, help="default: the store's default (65,536)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--repeats", type=int, default=5, help="sweeps timed after the first, interleaved")
    args = parser.parse_args()
    data = compendium(args.data or Path(tempfile.gettempdir()) / f"roadmap-{args.bins}", args.bins, args.chunk_bins)
    store = SignalStore.open(data / "store.zarr")
    layout = Layout.from_experiments(store.experiments)
    columns = np.arange(store.n_experiments)
    valid = columns[::8]
    train = np.setdiff1d(columns, valid)

    engines = {"numpy": LocalEngine(store),
               f"Spark {args.master}": SparkEngine(store, master=args.master),
               f"Spark {args.master}, no cache": SparkEngine(store, master=args.master, cache_bytes=0)}
    moments = LocalEngine(store, cache=False).map_reduce(als.column_moments, None)  # leaves every engine cold
    factors = initial_factors(layout, RANK, 0, *moments, train)
    inputs = als.SweepInputs(factors, layout.cell_of, layout.assay_of, train, valid, RIDGE)
    result_bytes = len(pickle.dumps(als.sweep_statistics(store.read_chunk(0)[:1024], inputs), protocol=5))
    stand_in = np.zeros(result_bytes // 8)

    def empty(_signal, _payload):  # no compute; a result of a sweep's size, so the transfer is the same
        return stand_in

    first = {name: timed(engine.map_reduce, als.sweep_statistics, inputs) for name, engine in engines.items()}
    sweeps = {name: [] for name in engines}
    passes = {name: [] for name in engines}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every engine alike
        for name, engine in engines.items():
            sweeps[name].append(timed(engine.map_reduce, als.sweep_statistics, inputs))
            passes[name].append(timed(engine.map_reduce, empty, inputs))
    spark = engines[f"Spark {args.master}"]
    hits, misses = spark.cache_hits, spark.cache_misses
    for engine in engines.values():
        engine.close()

    chunk = in_process_chunk(store, inputs, args.repeats)
    n_chunks = store.n_chunks
    numpy_sweep = statistics.median(sweeps["numpy"])
    print(f"{store.bins.n_bins:,} bins x {store.n_experiments:,} experiments ({train.size} training, {valid.size} "
          f"validation) in {n_chunks} chunks of {store.chunk_bins:,} bins ({store.chunk_bins * store.n_experiments * 4 / 1e6:,.0f} MB "
          f"decoded), rank {RANK}; one process, sweeps interleaved, medians of {args.repeats} after the first.\n")
    print("| engine | first sweep s | sweep s (median) | pass without compute s | compute s | sweep / numpy |")
    print("|---|---|---|---|---|---|")
    for name in engines:
        sweep, empty_pass = statistics.median(sweeps[name]), statistics.median(passes[name])
        print(f"| {name} | {first[name]:.2f} | {sweep:.2f} | {empty_pass:.2f} | {sweep - empty_pass:.2f} | "
              f"{sweep / numpy_sweep:.2f} |")
    ratio = statistics.median(sweeps[f"Spark {args.master}"]) / numpy_sweep
    uncached = statistics.median(sweeps[f"Spark {args.master}, no cache"]) / numpy_sweep
    print(f"\nSpark {args.master} / numpy seconds per sweep: **{ratio:.2f}x** with the chunk cache (bound 1.25x), "
          f"{uncached:.2f}x without. Cache: {hits} hits, {misses} misses over {len(sweeps['numpy']) * 2 + 1} passes "
          f"of {n_chunks} chunks ({hits / max(hits + misses, 1):.0%} hit).\n")
    print("One chunk in this process, one BLAS thread:\n")
    print("| step | s per chunk | s per sweep (every chunk, one core) |")
    print("|---|---|---|")
    for name, seconds in chunk.items():
        label = {"decode": "decode from the store (zarr, blosc-zstd)", "cache file": "read the cache's raw file",
                 "compute": "ALS statistics"}[name]
        print(f"| {label} | {seconds:.3f} | {seconds * n_chunks:.2f} |")
    print(f"| result transfer | {result_bytes / 1e6:.2f} MB pickled a chunk | |")


if __name__ == "__main__":
    main()
