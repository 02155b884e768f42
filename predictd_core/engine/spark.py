"""The Spark engine: chunks of bins are the partitions; factors go out by broadcast, statistics
come back by treeAggregate (never accumulators inside transformations: a retried task would count
twice). Every task reads its own chunk from the store (local or object store), so chunk signal
never passes through the JVM: a Roadmap chunk is 265 MB, and caching them there died with
OutOfMemoryError at 1.1 M bins. Memory follows the chunk size, not the genome; a sweep re-reads
(and decompresses) the store.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterator

import numpy as np

from predictd_core.config import SPARK_SUBMIT_MASTER
from predictd_core.engine.base import Engine
from predictd_core.store.signal_store import SignalStore, chunk_bounds, read_signal_rows


def _merge(left: Any, right: Any) -> Any:
    """treeAggregate's combiner: ``None`` is the empty sum."""
    if left is None:
        return right
    if right is None:
        return left
    return left + right


# A local master runs its tasks inside the driver JVM, which holds map_state's per-chunk states (53 MB a
# Roadmap chunk at rank 100) and carries imputed chunks back to the driver (65,536 bins x 3,048 pairs
# float32 = 800 MB, two at a time with map_chunks' prefetch): Spark's 1g default is too small for Roadmap-sized
# chunks.
LOCAL_DRIVER_MEMORY = "4g"


def get_session(master: str = "local[*]", conf: dict[str, str] | None = None):
    """A SparkSession for this process (reused if one is running), with the worker Python pinned.

    ``master`` is a Spark master URL, or ``"spark-submit"`` (:data:`SPARK_SUBMIT_MASTER`): under
    spark-submit the session takes the master and settings it was given (EMR's cluster, its UI) and
    sets none of its own; ``conf`` is applied either way. A local master gets :data:`LOCAL_DRIVER_MEMORY`
    unless ``conf`` sets ``spark.driver.memory`` (it only applies when this call starts the JVM).
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("predictd")
    if master != SPARK_SUBMIT_MASTER:  # a session we start ourselves is a library call: quiet, no web UI
        builder = builder.master(master)
        if master.startswith("local") and "spark.driver.memory" not in (conf or {}):
            builder = builder.config("spark.driver.memory", LOCAL_DRIVER_MEMORY)
        builder = builder.config("spark.ui.showConsoleProgress", "false").config("spark.ui.enabled", "false")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkEngine(Engine):
    """Map functions over the store's chunks on a Spark cluster (``local[*]`` by default).

    Same methods and results as :class:`predictd_core.engine.local.LocalEngine`; only the order of
    floating-point additions in the tree reduction differs.
    """

    name = "spark"

    def __init__(self, store: SignalStore, master: str = "local[*]", conf: dict[str, str] | None = None) -> None:
        self.store = store
        self.session = get_session(master, conf)
        sc = self.session.sparkContext
        path, chunk_bins, n_bins = store.path, store.chunk_bins, store.bins.n_bins

        def read(chunk: int) -> np.ndarray:  # ships three values, not the store handle and its bins
            return read_signal_rows(path, *chunk_bounds(chunk, chunk_bins, n_bins))

        self._read = read
        self._chunk_ids = sc.parallelize(range(store.n_chunks), store.n_chunks).cache()
        self._chunks = self._chunk_ids.map(lambda chunk: (chunk, read(chunk)))
        self._states = None

    def map_reduce(self, fn: Callable[[np.ndarray, Any], Any], payload: Any) -> Any:
        """Sum of ``fn(chunk signal, payload)`` over every chunk (payload broadcast once)."""
        shared = self.session.sparkContext.broadcast(payload)
        try:
            depth = 2 if self.store.n_chunks > 16 else 1
            return (self._chunks.map(lambda item: fn(item[1], shared.value))
                    .treeAggregate(None, _merge, _merge, depth=depth))
        finally:
            shared.unpersist()

    def map_chunks(self, fn: Callable[[np.ndarray, Any], Any], payload: Any) -> Iterator[tuple[int, Any]]:
        """``(chunk, fn(chunk signal, payload))`` in genome order, streamed to the driver.

        The next chunk is computed while the driver takes this one (``prefetchPartitions``): two chunks'
        results at a time reach the driver, not one chunk computed after the other.
        """
        shared = self.session.sparkContext.broadcast(payload)
        try:
            yield from (self._chunks.map(lambda item: (item[0], fn(item[1], shared.value)))
                        .toLocalIterator(prefetchPartitions=True))
        finally:
            shared.unpersist()

    def map_state(self, fn: Callable[[int, np.ndarray, Any, Any], tuple[Any, Any]], payload: Any) -> Any:
        """Advance per-chunk state kept in a cached RDD; returns the sum of the per-chunk results.

        Each task reads its chunk beside its state (no zip: that would pass the signal through the JVM).

        Each task's output is a pure function of (chunk, old state, payload), so a retried task
        recomputes the same state and result.
        """
        shared = self.session.sparkContext.broadcast(payload)
        old, read = self._states, self._read
        joined = self._chunk_ids.map(lambda chunk: (chunk, read(chunk), None)) if old is None else \
            old.map(lambda item: (item[0], read(item[0]), item[1]))
        stepped = joined.map(lambda t: (t[0], fn(t[0], t[1], t[2], shared.value))).cache()
        result = stepped.map(lambda item: item[1][1]).treeAggregate(None, _merge, _merge)
        self._states = stepped.map(lambda item: (item[0], item[1][0])).cache()
        self._states.count()
        stepped.unpersist()
        if old is not None:
            old.unpersist()
        shared.unpersist()
        return result

    def collect_state(self) -> dict[int, Any]:
        """The per-chunk states on the driver (for best-iterate snapshots)."""
        return {} if self._states is None else dict(self._states.collect())

    def reset_state(self, states: dict[int, Any] | None = None) -> None:
        """Replace the per-chunk states (``None`` or empty: start again)."""
        if self._states is not None:
            self._states.unpersist()
        if not states:
            self._states = None
            return
        sc = self.session.sparkContext
        n = self.store.n_chunks
        self._states = sc.parallelize(sorted(states.items()), n).cache()

    def close(self) -> None:
        """Release the cached RDDs (the SparkSession stays up for reuse)."""
        self._chunk_ids.unpersist()
        if self._states is not None:
            self._states.unpersist()
