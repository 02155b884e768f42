"""The numpy engine: chunks processed in turn in this process (the reference for the Spark engine)."""

from __future__ import annotations

from functools import reduce
from operator import add
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from predictd_core.engine.base import Engine, mapped_chunks
from predictd_core.store.signal_store import SignalStore


class LocalEngine(Engine):
    """Map functions over the store's chunks in this process, in genome order.

    Parameters
    ----------
    store : SignalStore
    cache : bool
        Keep decoded chunks in memory between sweeps (the default; turn off for stores larger than RAM).
    chunks : sequence of int, optional
        Map only these chunks (default: every chunk of the store).
    """

    name = "numpy"
    distributed = False
    parallelism = 1

    def __init__(self, store: SignalStore, cache: bool = True, chunks: Sequence[int] | None = None) -> None:
        self.store = store
        self.chunks = mapped_chunks(store, chunks)
        self.n_bins = store.n_bins_of(self.chunks)
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self._state: dict[int, Any] = {}

    def _chunk(self, chunk: int) -> np.ndarray:
        if self._cache is None:
            return self.store.read_chunk(chunk)
        if chunk not in self._cache:
            self._cache[chunk] = self.store.read_chunk(chunk)
        return self._cache[chunk]

    def _chunk_once(self, chunk: int) -> np.ndarray:
        """A chunk for a single pass: from the cache when a sweep put it there, else read without adding it."""
        cached = None if self._cache is None else self._cache.get(chunk)
        return self.store.read_chunk(chunk) if cached is None else cached

    def map_reduce(self, fn: Callable[[np.ndarray, Any], Any], payload: Any) -> Any:
        """Sum of ``fn(chunk signal, payload)`` over every chunk."""
        return reduce(add, (fn(self._chunk(k), payload) for k in self.chunks))

    def map_chunks(self, fn: Callable[[np.ndarray, Any], Any], payload: Any) -> Iterator[tuple[int, Any]]:
        """``(chunk, fn(chunk signal, payload))`` for every chunk, in genome order.

        A single pass (imputation, evaluation): chunks are read, not added to the cache, so its memory
        follows the chunk size, not the genome.
        """
        for k in self.chunks:
            yield k, fn(self._chunk_once(k), payload)

    def map_chunks_remote(self, fn: Callable[[int, np.ndarray, Any], Any], payload: Any,
                          progress: Callable[[int], None] | None = None) -> list[tuple[int, Any]]:
        """``[(chunk, fn(chunk, chunk signal, payload))]`` for every chunk, one after another in this process
        (read as :meth:`map_chunks` reads them); ``progress(done)`` after each."""
        results = []
        for k in self.chunks:
            results.append((k, fn(k, self._chunk_once(k), payload)))
            if progress is not None:
                progress(len(results))
        return results

    def run_tasks(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, in this process."""
        return [fn(item) for item in items]

    def map_state(self, fn: Callable[[int, np.ndarray, Any, Any], tuple[Any, Any]], payload: Any) -> Any:
        """Advance per-chunk state: ``fn(chunk, signal, state or None, payload) -> (state, result)``.

        Returns the sum of the results; the new states replace the old ones only when every chunk is done.
        """
        outputs = [fn(k, self._chunk(k), self._state.get(k), payload) for k in self.chunks]
        self._state = {k: state for k, (state, _) in zip(self.chunks, outputs)}
        return reduce(add, (result for _, result in outputs))

    def reset_state(self, states: dict[int, Any] | None = None) -> None:
        """Drop (or replace) the per-chunk state kept by :meth:`map_state`."""
        self._state = dict(states or {})

    def collect_state(self) -> dict[int, Any]:
        """The per-chunk state, for snapshots."""
        return dict(self._state)

    def close(self) -> None:
        """Drop the cached chunks."""
        self._cache = {} if self._cache is not None else None
