"""Engines map the solver's pure functions over a store's chunks: numpy in-process, or Spark."""

from __future__ import annotations

from typing import Sequence

from predictd_core.config import EngineSettings
from predictd_core.engine.base import Engine, TaskRunner
from predictd_core.engine.local import LocalEngine
from predictd_core.store.signal_store import SignalStore


def make_engine(settings: EngineSettings, store: SignalStore, chunks: Sequence[int] | None = None) -> Engine:
    """The engine named by ``settings.kind`` over ``store``: over every chunk, or over ``chunks``."""
    if settings.kind == "numpy":
        return LocalEngine(store, chunks=chunks)
    from predictd_core.engine.spark import SparkEngine  # Spark starts a JVM: only when asked for

    return SparkEngine(store, master=settings.master, conf=settings.spark_conf, chunks=chunks)


def cluster_task_runner(settings: EngineSettings) -> TaskRunner | None:
    """Tasks on the Spark cluster ``settings`` names, for work that comes before any store (ingest); None for
    the numpy engine and for a Spark master on this machine alone (``local[...]``, also under spark-submit), whose
    one machine ingests in processes for less (BENCHMARKS.md "Ingest on the executors": tasks cost 2.2x the
    core-seconds there, for a bundle round trip and Spark's own share per task)."""
    if settings.kind == "numpy":
        return None
    from predictd_core.engine.spark import SparkTasks

    tasks = SparkTasks(master=settings.master, conf=settings.spark_conf)
    return None if tasks.session.sparkContext.master.startswith("local") else tasks


__all__ = ["Engine", "LocalEngine", "TaskRunner", "cluster_task_runner", "make_engine"]
