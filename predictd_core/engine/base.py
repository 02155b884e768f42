"""What an engine is: the operations the solvers, extension and imputation call on one.

An engine maps pure functions of a chunk's signal over a store's chunks and adds their results
(``fn(signal, payload)``, the sum by ``+``), streams per-chunk results in genome order, and keeps a
state per chunk between passes (NAdam's genome rows). A *distributed* engine also runs work where its
executors are (:meth:`Engine.map_chunks_remote`, :meth:`Engine.run_tasks`): functions that write what they
make to shared storage themselves and send the driver only small results, so that a whole-genome imputation
is not one driver writing every file while the executors idle. :class:`~predictd_core.engine.local.LocalEngine`
runs them in this process, :class:`~predictd_core.engine.spark.SparkEngine` on Spark; both are
context managers that close on exit.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Callable, Iterator, Protocol, Self, Sequence

import numpy as np

from predictd_core.store.signal_store import SignalStore


# Tasks per task slot when work is divided among an engine's tasks: a few, so that slow ones are made up for.
GROUPS_PER_SLOT = 4


def items_per_task(n_items: int, parallelism: int, cap: int) -> int:
    """How many of ``n_items`` each task takes: :data:`GROUPS_PER_SLOT` tasks per task slot of ``parallelism``
    slots, at most ``cap`` items a task (what one task can hold), at least one."""
    return max(1, min(cap, -(-n_items // (GROUPS_PER_SLOT * max(1, parallelism)))))


def require_every_chunk(engine: "Engine", work: str) -> None:
    """A ValueError unless ``engine`` maps every chunk of its store (a training engine maps a sample):
    ``work`` (e.g. ``"imputation writes every bin"``) says why that is needed."""
    if len(engine.chunks) != engine.store.n_chunks:
        raise ValueError(f"{work}: the engine maps {len(engine.chunks)} of the store's {engine.store.n_chunks} "
                         "chunks")


def task_local_folder() -> str | None:
    """The local folder of the machine a task runs on, as Spark gives it to its Python workers (the first of
    ``SPARK_LOCAL_DIRS``); None outside Spark's executors."""
    local = os.environ.get("SPARK_LOCAL_DIRS")
    return local.split(",")[0] if local else None


class TaskRunner(Protocol):
    """Runs functions as tasks where a distributed engine's executors are, side by side, when there is no store
    to map (yet): :class:`~predictd_core.engine.spark.SparkTasks`, and every engine.

    Attributes
    ----------
    distributed : bool
        True when the tasks run elsewhere than this process (Spark's executors).
    parallelism : int
        Tasks run at once: what work is divided by.
    """

    distributed: bool
    parallelism: int

    def run_tasks(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, each call a task of its own, side by side; results in the order of
        ``items`` (small: they come back to this process). A
        :class:`~predictd_core.errors.PredictdInputError` of ``fn`` is raised here as it was raised."""


class Engine(Protocol):
    """Map functions over the chunks of :attr:`store`; ``with engine:`` closes it on leaving.

    Attributes
    ----------
    name : str
        ``"numpy"`` or ``"spark"``.
    store : SignalStore
        The store whose chunks are mapped.
    chunks : tuple of int
        The chunks mapped, in genome order: every chunk of the store, or those an engine was made for
        (training on a sample of the genome).
    n_bins : int
        Bins in :attr:`chunks`.
    distributed : bool
        True when :meth:`map_chunks_remote` and :meth:`run_tasks` run their functions elsewhere than this
        process, side by side (Spark's executors): worth writing outputs from there; False when they are plain
        loops here (the numpy engine, whose imputation has processes of its own).
    parallelism : int
        Tasks the engine runs at once (Spark's default parallelism; 1 for the numpy engine): what work is
        divided by.
    """

    name: str
    store: SignalStore
    chunks: tuple[int, ...]
    n_bins: int
    distributed: bool
    parallelism: int

    def map_reduce(self, fn: Callable[[np.ndarray, Any], Any], payload: Any) -> Any:
        """Sum of ``fn(chunk signal, payload)`` over every chunk of :attr:`chunks`."""

    def map_chunks(self, fn: Callable[[np.ndarray, Any], Any], payload: Any) -> Iterator[tuple[int, Any]]:
        """``(chunk, fn(chunk signal, payload))`` for every chunk of :attr:`chunks`, in genome order."""

    def map_chunks_remote(self, fn: Callable[[int, np.ndarray, Any], Any], payload: Any,
                          progress: Callable[[int], None] | None = None) -> list[tuple[int, Any]]:
        """``[(chunk, fn(chunk, chunk signal, payload))]`` for every chunk of :attr:`chunks`, in genome order, each
        computed where the engine runs its tasks (all at once, as many side by side as it can); for functions
        whose results are small (they write what they make themselves). ``progress(done)`` hears, in this
        process, how many chunks are done as they finish. A :class:`~predictd_core.errors.PredictdInputError`
        of ``fn`` is raised here as it was raised."""

    def run_tasks(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, each call a task of its own where the engine runs its tasks, side
        by side; results in the order of ``items`` (small: they come back to this process). A
        :class:`~predictd_core.errors.PredictdInputError` of ``fn`` is raised here as it was raised."""

    def map_state(self, fn: Callable[[int, np.ndarray, Any, Any], tuple[Any, Any]], payload: Any) -> Any:
        """Advance per-chunk state, ``fn(chunk, signal, state or None, payload) -> (state, result)``; the sum of
        the results."""

    def reset_state(self, states: dict[int, Any] | None = None) -> None:
        """Replace the per-chunk states (``None`` or empty: start again)."""

    def collect_state(self) -> dict[int, Any]:
        """The per-chunk states, by chunk (for snapshots)."""

    def close(self) -> None:
        """Release what the engine holds (cached chunks, RDDs)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def mapped_chunks(store: SignalStore, chunks=None) -> tuple[int, ...]:
    """The chunks an engine maps: ``chunks`` in genome order, or every chunk of ``store`` when ``None``.

    Raises
    ------
    ValueError
        When ``chunks`` is empty or names a chunk the store does not have.
    """
    if chunks is None:
        return tuple(range(store.n_chunks))
    picked = tuple(sorted({int(k) for k in chunks}))
    if not picked or picked[0] < 0 or picked[-1] >= store.n_chunks:
        raise ValueError(f"chunks must be a non-empty subset of the store's {store.n_chunks}: got {list(chunks)}")
    return picked
