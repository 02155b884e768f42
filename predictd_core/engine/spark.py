"""The Spark engine: chunks of bins are the partitions; factors go out by broadcast, statistics
come back by treeAggregate (never accumulators inside transformations: a retried task would count
twice). Every task reads its own chunk from the store (local or object store), so chunk signal
never passes through the JVM: a Roadmap chunk is 265 MB, and caching them there died with
OutOfMemoryError at 1.1 M bins. Memory follows the chunk size, not the genome.

Decoded chunks are kept between passes in a cache on each executor's local disk
(:mod:`predictd_core.engine.chunk_cache`).
"""

from __future__ import annotations

import os
import sys
import uuid
import zipimport
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from predictd_core.config import SPARK_SUBMIT_MASTER
from predictd_core.engine.base import Engine, mapped_chunks
from predictd_core.engine.chunk_cache import CHUNK_CACHE_CONF, parse_bytes, read_cached_chunk, store_identity
from predictd_core.errors import PredictdInputError
from predictd_core.store.signal_store import SignalStore, chunk_bounds

class _StableZipImporter(zipimport.zipimporter):
    """A zip importer that keeps its directory when import caches are invalidated: the archive does not change
    while a worker lives."""

    def invalidate_caches(self) -> None:
        pass


def _stable_zip_imports() -> None:
    """Spark's Python workers have pyspark's and py4j's zip archives on their path and invalidate the import
    caches before every task, which makes each zip importer read its archive's directory again (~90 ms of CPU
    a task here, 3 in 4 of a small task's time); these importers skip that."""
    for path, importer in list(sys.path_importer_cache.items()):
        if type(importer) is zipimport.zipimporter:
            sys.path_importer_cache[path] = _StableZipImporter(path)


_stable_zip_imports()  # this module is imported in every worker that runs a task of the engine's


def _merge(left: Any, right: Any) -> Any:
    """treeAggregate's combiner: ``None`` is the empty sum."""
    if left is None:
        return right
    if right is None:
        return left
    return left + right


class _ChunkSet:
    """The accumulator (``sc.accumulator(frozenset(), _ChunkSet())``) of the chunks whose tasks are done, read
    on the driver while the job runs: a set, so a chunk computed twice (a retried or speculative task) counts
    once; Spark adds only the updates of tasks that succeeded."""

    def zero(self, value: frozenset) -> frozenset:
        return frozenset()

    def addInPlace(self, left: frozenset, right: frozenset) -> frozenset:
        return left | right


class _RaisedInput(NamedTuple):
    """A task's :class:`~predictd_core.errors.PredictdInputError`, sent back as its result and raised on the
    driver: bad input fails the same way on every try (Spark's retries would only repeat it), and the user
    needs its file and field, not a Java stack trace."""

    error: PredictdInputError


def _guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or its input error as a :class:`_RaisedInput` (other errors fail the task: Spark retries
    those, a lost executor or a storage hiccup)."""
    try:
        return fn(*args)
    except PredictdInputError as error:
        return _RaisedInput(error)


def _raise_input_error(results: list[Any]) -> None:
    """Raise the first input error among task results (:func:`_guarded`)."""
    for result in results:
        if isinstance(result, _RaisedInput):
            raise result.error


# Seconds between looks at a running job's progress (the chunks done reach the driver as tasks finish).
PROGRESS_POLL_SECONDS = 0.5


def _collect_reporting(sc, rdd, done: Callable[[], int], progress: Callable[[int], None]) -> list[Any]:
    """``rdd.collect()``, run in a thread of its own while this one calls ``progress(done())`` whenever more
    tasks are done (so the caller's callback runs in the caller's thread); leaving early (an interrupt)
    cancels the job."""
    from pyspark import InheritableThread

    group = f"predictd-{uuid.uuid4().hex[:12]}"
    outcome: dict[str, Any] = {}

    def collect() -> None:
        sc.setJobGroup(group, "predictd: tasks writing their own outputs", interruptOnCancel=True)
        try:
            outcome["results"] = rdd.collect()
        except BaseException as error:  # raised in the caller's thread below
            outcome["error"] = error

    thread = InheritableThread(target=collect, daemon=True)
    thread.start()
    reported = 0
    try:
        while True:
            thread.join(PROGRESS_POLL_SECONDS)
            ended = not thread.is_alive()  # then a last look: tasks' updates reach the driver before their job ends
            if (count := done()) > reported:
                progress(count)
                reported = count
            if ended:
                break
    except BaseException:
        sc.cancelJobGroup(group)
        thread.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["results"]


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


class SparkTasks:
    """Tasks on a Spark cluster where there is no store to map yet (ingest writes it): a
    :class:`~predictd_core.engine.base.TaskRunner`.

    Parameters
    ----------
    master : str
        Spark master URL, or ``"spark-submit"`` (see :func:`get_session`).
    conf : dict, optional
        Spark settings.
    """

    distributed = True

    def __init__(self, master: str = "local[*]", conf: dict[str, str] | None = None) -> None:
        self.session = get_session(master, conf)

    @property
    def parallelism(self) -> int:
        """Tasks Spark runs at once (its default parallelism: the cores of the executors)."""
        return int(self.session.sparkContext.defaultParallelism)

    def run_tasks(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, a task per item on the executors (one job), results in order; a
        :class:`~predictd_core.errors.PredictdInputError` of ``fn`` is raised here as it was raised."""
        items = list(items)
        if not items:
            return []
        tasks = self.session.sparkContext.parallelize(items, len(items))
        results = tasks.map(lambda item: _guarded(fn, item)).collect()
        _raise_input_error(results)
        return results


class SparkEngine(SparkTasks, Engine):
    """Map functions over the store's chunks on a Spark cluster (``local[*]`` by default); its
    :meth:`~SparkTasks.run_tasks` and :attr:`~SparkTasks.parallelism` are :class:`SparkTasks`'.

    Same methods and results as :class:`predictd_core.engine.local.LocalEngine`; only the order of
    floating-point additions in the tree reduction differs.

    Parameters
    ----------
    store : SignalStore
    master : str
        Spark master URL, or ``"spark-submit"`` (see :func:`get_session`).
    conf : dict, optional
        Spark settings; :data:`CHUNK_CACHE_CONF` sets the decoded-chunk cache's budget per host.
    cache_bytes : int, optional
        The cache budget per host in bytes, over ``conf`` (0: read the store every pass).
    chunks : sequence of int, optional
        Map only these chunks (default: every chunk of the store).

    Attributes
    ----------
    cache_hits, cache_misses : int
        Chunk reads the executors' caches served, and those that went to the store (for benchmarks
        and tests; a retried task counts again).
    """

    name = "spark"
    distributed = True

    def __init__(self, store: SignalStore, master: str = "local[*]", conf: dict[str, str] | None = None,
                 cache_bytes: int | None = None, chunks: Sequence[int] | None = None) -> None:
        self.store = store
        self.chunks = mapped_chunks(store, chunks)
        self.n_bins = store.n_bins_of(self.chunks)
        super().__init__(master, conf)
        sc = self.session.sparkContext
        if cache_bytes is None:
            setting = (conf or {}).get(CHUNK_CACHE_CONF, sc.getConf().get(CHUNK_CACHE_CONF))
            cache_bytes = None if setting is None else parse_bytes(setting)
        self.cache_bytes = cache_bytes
        path, chunk_bins, n_bins = store.path, store.chunk_bins, store.bins.n_bins
        identity = store_identity(path) if cache_bytes != 0 else ""
        hits, misses = sc.accumulator(0), sc.accumulator(0)
        self._hits, self._misses = hits, misses

        def read(chunk: int, insert: bool = True) -> np.ndarray:  # ships a few values, not the store handle
            signal, hit = read_cached_chunk(path, identity, *chunk_bounds(chunk, chunk_bins, n_bins), cache_bytes,
                                            insert)
            (hits if hit else misses).add(1)
            return signal

        self._read = read
        self._chunk_ids = sc.parallelize(self.chunks, len(self.chunks)).cache()
        self._chunks = self._chunk_ids.map(lambda chunk: (chunk, read(chunk)))
        # a single pass (imputation) uses the cache the sweeps filled but adds nothing to it, as the numpy engine
        self._chunks_once = self._chunk_ids.map(lambda chunk: (chunk, read(chunk, insert=False)))
        self._states = None

    @property
    def cache_hits(self) -> int:
        return self._hits.value

    @property
    def cache_misses(self) -> int:
        return self._misses.value

    def map_reduce(self, fn: Callable[[np.ndarray, Any], Any], payload: Any) -> Any:
        """Sum of ``fn(chunk signal, payload)`` over every chunk (payload broadcast once)."""
        shared = self.session.sparkContext.broadcast(payload)
        try:
            depth = 2 if len(self.chunks) > 16 else 1
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
            yield from (self._chunks_once.map(lambda item: (item[0], fn(item[1], shared.value)))
                        .toLocalIterator(prefetchPartitions=True))
        finally:
            shared.unpersist()

    def map_chunks_remote(self, fn: Callable[[int, np.ndarray, Any], Any], payload: Any,
                          progress: Callable[[int], None] | None = None) -> list[tuple[int, Any]]:
        """``[(chunk, fn(chunk, chunk signal, payload))]`` in genome order, a task per chunk on the executors,
        all of them one job (as many side by side as there are cores; ``map_chunks`` computes two at a time,
        to stream results to the driver in genome order). Each task reads its own chunk, without adding it to
        the cache (a single pass); only ``fn``'s results, which should be small, reach the driver.
        ``progress(done)`` is called in this thread as tasks finish (every :data:`PROGRESS_POLL_SECONDS`).
        """
        sc = self.session.sparkContext
        shared = sc.broadcast(payload)
        finished = sc.accumulator(frozenset(), _ChunkSet())

        def task(item: tuple[int, np.ndarray]) -> tuple[int, Any]:
            chunk, signal = item
            result = _guarded(fn, chunk, signal, shared.value)
            if not isinstance(result, _RaisedInput):
                finished.add(frozenset((chunk,)))
            return chunk, result

        try:
            rdd = self._chunks_once.map(task)
            results = rdd.collect() if progress is None else \
                _collect_reporting(sc, rdd, lambda: len(finished.value), progress)
        finally:
            shared.unpersist()
        _raise_input_error([result for _, result in results])
        return results

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
        self._states = sc.parallelize(sorted(states.items()), len(self.chunks)).cache()

    def close(self) -> None:
        """Release the cached RDDs (the SparkSession stays up for reuse)."""
        self._chunk_ids.unpersist()
        if self._states is not None:
            self._states.unpersist()
