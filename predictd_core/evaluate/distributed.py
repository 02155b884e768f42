"""Scoring on a distributed engine's executors (Spark), in two stages, through chunk bundles.

Scoring a target needs its whole track at once (the genome-wide ranks of the peak measures), and the store
holds chunks of every experiment: read on one process, as :func:`~predictd_core.evaluate.scoring.run_evaluate`
does, the store is decoded in passes and every target scored one after another (on hg19, 1,014 targets take
days). Here (:mod:`predictd_core.engine.bundles`):

1. a task per chunk (:meth:`~predictd_core.engine.base.Engine.map_chunks_remote`) takes each target's
   observed column and its baseline (:func:`~predictd_core.evaluate.targets.same_assay_averages`: computed once
   for targets with the same inputs) from the chunk, and writes them, deflated, as the
   target's piece of one bundle in a scratch folder; it sends back only the bundle's index;
2. a task per group of consecutive targets (:meth:`~predictd_core.engine.base.Engine.run_tasks`) reads the
   group's byte range of every bundle, lays each target's observed and baseline signal out over the genome,
   and scores it against its imputed track (:func:`~predictd_core.evaluate.targets.score_target`); only the
   metric rows, scatter samples and panels come back.

A piece is the target's observed then baseline values over its chunk's bins
(:meth:`~predictd_core.engine.bundles.BundleWriter.add_floats`).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.engine.base import Engine, items_per_task, require_every_chunk
from predictd_core.engine.bundles import (BundleWriter, bundle_name, read_ahead, read_floats, scratch_folder,
                                          write_whole)
from predictd_core.evaluate.regions import read_bed_mask
from predictd_core.evaluate.targets import TargetScore, same_assay_averages, score_target
from predictd_core.io import join_location
from predictd_core.store.signal_store import SignalStore, chunk_bounds
from predictd_core.tracks.genome import GenomeBins
from predictd_core.tracks.table import Track

# What a scoring task holds of its targets' signal at once: observed and baseline float32 over every bin,
# 8 bytes a bin a target (hg19: ~1 GB a target), beside one target's imputed track, ranks and sort keys while it
# scores (~18 bytes a bin more: :class:`~predictd_core.model.measures.ObservedTrack`).
BYTES_PER_BIN = 8


@dataclass(frozen=True)
class SignalTask:
    """What a stage-1 task needs: each target's store columns (its observed column, then its baseline's
    inputs), the store's chunking and the scratch folder."""

    columns: tuple[tuple[int, ...], ...]
    chunk_bins: int
    n_bins: int
    scratch: str


def bundle_target_signal(chunk: int, signal: np.ndarray, task: SignalTask) -> tuple[str, np.ndarray]:
    """Stage 1, in a task: write the bundle of chunk ``chunk`` (its ``signal``, bins x store columns), a piece
    per target; returns the bundle's location and index."""
    lo, hi = chunk_bounds(chunk, task.chunk_bins, task.n_bins)
    location = join_location(task.scratch, bundle_name(chunk))

    def write(file) -> np.ndarray:
        bundle = BundleWriter(file, lo, hi, len(task.columns))
        baselines = same_assay_averages(signal, [inputs for _, *inputs in task.columns])
        for (observed, *_), baseline in zip(task.columns, baselines):
            bundle.add_floats(np.stack([signal[:, observed], baseline]))
        return bundle.close()

    return str(location), write_whole(location, write)


@dataclass(frozen=True)
class ScoreTask:
    """What a stage-2 task needs: the run's config and bins, its targets (index among the run's, experiment,
    kind, whether a panel is drawn), every chunk's bundle in genome order with the chunk's number, the group's
    rows of their indexes (shape (chunks, targets + 1)), the store's chunking and the browser windows."""

    config: RunConfig
    bins: GenomeBins
    targets: tuple[tuple[int, Track, str, bool], ...]
    bundles: tuple[str, ...]
    chunks: tuple[int, ...]
    offsets: np.ndarray
    chunk_bins: int
    windows: tuple[tuple[int, int], ...]


def score_group(task: ScoreTask) -> list[TargetScore]:
    """Stage 2, in a task: gather the group's signal from every bundle (:func:`read_ahead`) and score each
    target; a damaged or cut piece is an error naming its bundle and target."""
    n_bins, size = task.bins.n_bins, len(task.targets)
    observed = np.empty((size, n_bins), np.float32)
    baseline = np.empty((size, n_bins), np.float32)
    rows = task.offsets.tolist()
    ranges = [(bundle, row[0], row[-1]) for bundle, row in zip(task.bundles, rows)]
    with closing(read_ahead(ranges)) as reads:
        for chunk, bundle, row, read in zip(task.chunks, task.bundles, rows, reads):
            lo, hi = chunk_bounds(chunk, task.chunk_bins, n_bins)
            data = memoryview(read)
            for k, (_, experiment, _, _) in enumerate(task.targets):
                pair = read_floats(data[row[k] - row[0]:row[k + 1] - row[0]], 2 * (hi - lo), bundle,
                                   experiment.name, "scoring signal")
                observed[k, lo:hi], baseline[k, lo:hi] = pair[:hi - lo], pair[hi - lo:]
    masks = {name: read_bed_mask(path, task.bins, f"evaluation.{name}")
             for name, path in task.config.evaluation.region_beds().items()}
    return [score_target(task.config, task.bins, experiment, kind, index, observed[k], baseline[k], masks,
                         list(task.windows), with_panel)
            for k, (index, experiment, kind, with_panel) in enumerate(task.targets)]


def group_targets(n_targets: int, n_bins: int, parallelism: int, budget: int) -> int:
    """Targets per scoring task (:func:`~predictd_core.engine.base.items_per_task`), each task holding at most
    ``budget`` bytes of signal (:data:`BYTES_PER_BIN` a bin a target)."""
    return items_per_task(n_targets, parallelism, budget // (BYTES_PER_BIN * max(1, n_bins)))


def score_on_executors(engine: Engine, config: RunConfig, store: SignalStore, targets: list[tuple[int, str]],
                       inputs_of: Sequence[np.ndarray], with_panel: Sequence[bool],
                       windows: list[tuple[int, int]], budget: int,
                       progress: Callable[..., None]) -> list[TargetScore]:
    """Score ``targets`` ((store column, kind) pairs; ``inputs_of[t]``: target t's baseline columns) on
    ``engine``'s tasks (see the module's docstring), a scoring task holding at most ``budget`` bytes of signal;
    their scores in order. The bundles go to a scratch folder under ``config.output``, deleted at the end.
    ``progress("evaluate", done, total)`` hears as the targets are scored."""
    require_every_chunk(engine, "scoring reads every bin")
    if not targets:
        return []
    n_bins = store.bins.n_bins
    columns = tuple((int(column), *(int(k) for k in inputs)) for (column, _), inputs in zip(targets, inputs_of))
    with scratch_folder(config.output) as scratch:
        written = engine.map_chunks_remote(bundle_target_signal,
                                           SignalTask(columns, store.chunk_bins, n_bins, str(scratch)))
        chunks, bundles = tuple(chunk for chunk, _ in written), tuple(location for _, (location, _) in written)
        offsets = np.stack([index for _, (_, index) in written])  # (chunks, targets + 1)
        size = group_targets(len(targets), n_bins, engine.parallelism, budget)
        described = [(t, store.experiments[column], kind, bool(with_panel[t]))
                     for t, (column, kind) in enumerate(targets)]
        tasks = [ScoreTask(config, store.bins, tuple(described[first:first + size]), bundles, chunks,
                           offsets[:, first:first + size + 1].copy(), store.chunk_bins, tuple(windows))
                 for first in range(0, len(targets), size)]
        scores = [score for group in engine.run_tasks(score_group, tasks) for score in group]
    progress("evaluate", len(scores), len(targets))
    return scores
