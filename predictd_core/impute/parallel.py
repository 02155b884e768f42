"""Chunk-parallel imputation: chunks computed side by side in worker processes, straight into the writers' slots.

The numpy engine computes a chunk in the driver process, where only the matrix products use more than
one core (a Roadmap chunk, 65,536 bins x 3,048 pairs: 2.55 s of its 3.43 s are serial). Here worker
processes (spawned, as ingest's) each read their own chunk from the store, compute ``fn(signal, payload)``
and lay the result into a shared-memory slot of the :class:`~predictd_core.impute.write_tracks.ParallelTrackWriter`,
whose writer processes read it from there: a chunk's values (800 MB for the Roadmap grid) are never pickled
or copied by the driver, which only hands slots out and passes them to the writers in genome order.

``fn`` is any picklable function of (chunk signal, payload) returning the chunk's values for the writer's
tracks: an array of shape (chunk bins, tracks), or a tuple of such blocks side by side (``None`` blocks left
out), as the engines' ``map_chunks`` give them.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from itertools import cycle
from typing import Any, Callable, Iterator

import numpy as np
from threadpoolctl import threadpool_limits

from predictd_core.engine.base import Engine
from predictd_core.engine.local import LocalEngine
from predictd_core.impute.write_tracks import ParallelTrackWriter, SharedSlots, copy_columns
from predictd_core.store.signal_store import SignalStore, chunk_bounds, read_signal_rows

# Chunks in flight take at most this share of the machine's memory (the rest: writers, the driver, others).
MEMORY_SHARE = 0.5
# A chunk in flight holds its slot and its worker's working memory: for the ensemble, a float64 sum (2 slots)
# and its float32 copy (1 slot).
SLOTS_OF_MEMORY_PER_CHUNK = 4


def result_blocks(result: Any) -> list[np.ndarray]:
    """``fn``'s result as the blocks of columns it puts side by side: an array is one block; a tuple's
    ``None`` blocks are left out."""
    if isinstance(result, np.ndarray):
        return [result]
    return [block for block in result if block is not None]


def compute_processes(engine: Engine, processes: int, tracks: int) -> int:
    """Worker processes to compute the chunks of ``tracks`` values for the writers: on the numpy engine
    ``processes``, at most one per chunk and as many chunks in flight as :data:`MEMORY_SHARE` of the memory
    holds; 0 when the engine computes them itself (in this process, or on Spark's executors): another engine,
    ``processes <= 1``, or room for fewer than two chunks."""
    if not isinstance(engine, LocalEngine) or processes <= 1 or not tracks:
        return 0
    store = engine.store
    chunk_bytes = SLOTS_OF_MEMORY_PER_CHUNK * tracks * store.chunk_bins * 4
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    count = min(processes, store.n_chunks, int(MEMORY_SHARE * memory // chunk_bytes))
    return count if count > 1 else 0


def write_chunks(engine: Engine, fn: Callable[[np.ndarray, Any], Any], payload: Any, writer: ParallelTrackWriter,
                 processes: int) -> Iterator[int]:
    """Write ``fn(chunk signal, payload)`` of every chunk of ``engine.store`` with ``writer``, in genome order;
    yields each chunk once it is handed to the writers.

    With ``processes > 1`` (:func:`compute_processes`; ``writer`` made with ``computing=processes``) the chunks
    are computed by that many worker processes into the writer's slots (:func:`computed_chunks`); with 0, by
    ``engine.map_chunks`` and copied in by ``writer.add``. An error of ``fn`` is raised here as it was raised.
    """
    store = engine.store
    if processes <= 1:
        for chunk, result in engine.map_chunks(fn, payload):
            writer.add(*store.chunk_bounds(chunk), np.hstack(result_blocks(result)))
            yield chunk
        return
    for chunk, slot in computed_chunks(store, fn, payload, writer.slots, processes, writer.reserve):
        writer.write(slot, *store.chunk_bounds(chunk))
        yield chunk


def computed_chunks(store: SignalStore, fn: Callable[[np.ndarray, Any], Any], payload: Any, slots: SharedSlots,
                    processes: int, reserve: Callable[[], int] | None = None) -> Iterator[tuple[int, int]]:
    """``(chunk, slot)`` in genome order once ``fn``'s values of the chunk fill ``slots.arrays[slot]`` (row t:
    column t of the values), computed by ``processes`` spawned workers that read their own chunks.

    ``reserve()`` gives a free slot for the next chunk, waiting if needed (the writer's); at most
    ``processes`` chunks are computed at once and a slot is the caller's from its yield until it hands it
    back. Without ``reserve``, slots are used in turn and one is free again at the next yield (needs
    ``processes + 1`` slots). Each worker's BLAS gets an equal share of the CPUs. A worker's error is raised
    here; leaving early waits for the running chunks.
    """
    reserve = reserve or cycle(range(len(slots.arrays))).__next__
    n_chunks = store.n_chunks
    blas_threads = max(1, len(os.sched_getaffinity(0)) // processes)
    # spawn, not fork: the caller may be a Spark driver with a JVM gateway and BLAS threads running
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(store.path, store.chunk_bins, store.bins.n_bins, fn, payload, slots.names,
                                       slots.shape, blas_threads)) as pool:
        running = {}  # chunk -> (future, slot)
        try:
            for chunk in range(n_chunks):
                for ahead in range(chunk + len(running), min(chunk + processes, n_chunks)):
                    slot = reserve()
                    running[ahead] = (pool.submit(_compute_into_slot, ahead, slot), slot)
                future, slot = running.pop(chunk)
                future.result()
                yield chunk, slot
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # no worker may still write a slot once it is freed
            raise


_worker: tuple | None = None  # a compute process's store, function, payload and attached slots


def _start_worker(path: str, chunk_bins: int, n_bins: int, fn: Callable, payload: Any, names: list[str],
                  shape: tuple[int, int], blas_threads: int) -> None:
    global _worker
    # each worker's BLAS takes its share of the CPUs (by default every worker would start a thread per CPU)
    threadpool_limits(blas_threads)
    memories, arrays = SharedSlots.attach(names, shape)
    _worker = (path, chunk_bins, n_bins, fn, payload, memories, arrays)


def _compute_into_slot(chunk: int, slot: int) -> int:
    """Read ``chunk``, compute its values and lay them into ``slot``, row t for column t."""
    path, chunk_bins, n_bins, fn, payload, _, arrays = _worker
    lo, hi = chunk_bounds(chunk, chunk_bins, n_bins)
    blocks = result_blocks(fn(read_signal_rows(path, lo, hi), payload))
    width = sum(block.shape[1] for block in blocks)
    if width != arrays[slot].shape[0]:
        raise ValueError(f"chunk {chunk}: {width} columns of values for {arrays[slot].shape[0]} tracks")
    row = 0
    for block in blocks:
        copy_columns(arrays[slot][row:row + block.shape[1]], block)
        row += block.shape[1]
    return chunk
