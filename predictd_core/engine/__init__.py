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


def make_task_runner(settings: EngineSettings) -> TaskRunner | None:
    """Tasks on the engine named by ``settings.kind`` where it has executors (Spark), for work that comes before
    any store (ingest); None for the numpy engine, whose ingest runs processes of its own."""
    if settings.kind == "numpy":
        return None
    from predictd_core.engine.spark import SparkTasks

    return SparkTasks(master=settings.master, conf=settings.spark_conf)


__all__ = ["Engine", "LocalEngine", "TaskRunner", "make_engine", "make_task_runner"]
