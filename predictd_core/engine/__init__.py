"""Engines map the solver's pure functions over a store's chunks: numpy in-process, or Spark."""

from __future__ import annotations

from predictd_core.engine.local import LocalEngine


def make_engine(settings, store):
    """The engine named by ``settings.kind`` (an ``EngineSettings``) over ``store``."""
    if settings.kind == "numpy":
        return LocalEngine(store)
    from predictd_core.engine.spark import SparkEngine  # Spark starts a JVM: only when asked for

    return SparkEngine(store, master=settings.master, conf=settings.spark_conf)


__all__ = ["LocalEngine", "make_engine"]
