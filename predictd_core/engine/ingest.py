"""Ingest on a distributed engine's executors (Spark), in two stages, through bundles.

:func:`~predictd_core.store.signal_store.ingest` reads every track in one machine's processes, each bigWig
downloaded there first: on hg19, 1,014 Roadmap tracks are hours of one driver's time. Here
(:mod:`predictd_core.engine.bundles`):

1. a task per group of consecutive tracks downloads its tracks to its machine, checks them and bins each one
   chunk by chunk (:func:`~predictd_core.store.signal_store.track_bins`), writing the bins of every (track,
   chunk), deflated, as one bundle in a scratch folder (pieces track-major: piece ``t * chunks + c`` is track
   ``t``'s chunk ``c``); it sends back only the bundle's index;
2. once every track has been read (a bad file has then failed the ingest before any store is written), the
   store's arrays are created, and a task per group of consecutive chunks reads its range of each track's
   pieces from every bundle, one read per track, and writes its chunks
   (:func:`~predictd_core.store.signal_store.write_chunk`: each chunk is an object of its own);
3. this process writes the store's attributes, ``complete`` last
   (:func:`~predictd_core.store.signal_store.finish_store`).

The store is the one :func:`~predictd_core.store.signal_store.ingest` writes, value for value.
"""

from __future__ import annotations

import tempfile
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import zarr

from predictd_core.engine.base import TaskRunner, items_per_task, task_local_folder
from predictd_core.engine.bundles import BundleWriter, read_ahead, read_floats, scratch_folder, write_whole
from predictd_core.errors import PredictdInputError
from predictd_core.io import join_location, parent_location, storage_options
from predictd_core.store.signal_store import (SignalStore, chunk_bounds, create_store, finish_store, track_bins,
                                              write_chunk, writing_store)
from predictd_core.tracks.genome import GenomeBins
from predictd_core.tracks.readers import open_tracks
from predictd_core.tracks.table import Track

# Tracks per reading task at most: each is downloaded to the task's machine first (a Roadmap bigWig of hg19 is
# ~1 GB), and a task of many would hold them all and leave other slots idle.
MAX_TRACKS_PER_TASK = 4
# What a chunk task holds at once: its chunks' blocks (bins x tracks float32; a Roadmap chunk of 65,536 bins
# is 265 MB) and their deflated pieces.
CHUNK_TASK_BYTES = 2**30


@dataclass(frozen=True)
class TrackGroupTask:
    """Stage 1: tracks ``first``... of the compendium, the genome's contigs and bins, the chunking and the
    scratch folder."""

    tracks: tuple[Track, ...]
    first: int
    chrom_sizes: dict[str, int]
    bins: GenomeBins
    chunk_bins: int
    scratch: str


def bin_track_group(task: TrackGroupTask) -> tuple[str, np.ndarray]:
    """Stage 1, in a task: the group's bundle (pieces track-major); returns its location and index. Every track
    is opened (downloaded and checked) before any is binned."""
    n_chunks = -(-task.bins.n_bins // task.chunk_bins)
    location = join_location(task.scratch, f"tracks-{task.first:07d}-{uuid.uuid4().hex[:12]}.bundle")
    with tempfile.TemporaryDirectory(dir=task_local_folder(), prefix="predictd-ingest-") as cache:
        readers = open_tracks([track.path for track in task.tracks], task.chrom_sizes, Path(cache))
        try:
            def write(file) -> np.ndarray:
                bundle = BundleWriter(file, 0, task.bins.n_bins, len(task.tracks) * n_chunks)
                for reader, track in zip(readers, task.tracks):
                    for chunk in range(n_chunks):
                        lo, hi = chunk_bounds(chunk, task.chunk_bins, task.bins.n_bins)
                        bundle.add_floats(track_bins(reader, track, task.bins, lo, hi))
                return bundle.close()

            return str(location), write_whole(location, write)
        finally:
            for reader in readers:
                reader.close()


@dataclass(frozen=True)
class ChunkGroupTask:
    """Stage 2: the store being written, the genome's bins and chunking, the group's chunks (consecutive), and
    per track (in column order) its bundle and the offsets of its pieces of the group's chunks (and where the
    last ends)."""

    store: str
    bins: GenomeBins
    chunk_bins: int
    chunks: tuple[int, ...]
    bundles: tuple[str, ...]
    offsets: tuple[np.ndarray, ...]


def write_chunk_group(task: ChunkGroupTask) -> int:
    """Stage 2, in a task: gather each of the group's chunks from every track's pieces and write it to the
    store; a damaged or cut piece is an error naming its bundle. Returns the chunks written."""
    bounds = [chunk_bounds(chunk, task.chunk_bins, task.bins.n_bins) for chunk in task.chunks]
    blocks = [np.empty((hi - lo, len(task.bundles)), np.float32) for lo, hi in bounds]
    ranges = [(bundle, int(offsets[0]), int(offsets[-1])) for bundle, offsets in zip(task.bundles, task.offsets)]
    with closing(read_ahead(ranges)) as reads:
        for column, (bundle, offsets, read) in enumerate(zip(task.bundles, task.offsets, reads)):
            data = memoryview(read)
            for k, ((lo, hi), block) in enumerate(zip(bounds, blocks)):
                block[:, column] = read_floats(data[int(offsets[k] - offsets[0]):int(offsets[k + 1] - offsets[0])],
                                               hi - lo, bundle, f"chunk {task.chunks[k]}", "track bins")
    root = zarr.open_group(store=task.store, mode="r+", storage_options=storage_options(task.store))
    for (lo, hi), block in zip(bounds, blocks):
        write_chunk(root, task.bins, lo, hi, block)
    return len(task.chunks)


def ingest_on_tasks(runner: TaskRunner, tracks: list[Track], chrom_sizes: dict[str, int], bins: GenomeBins,
                    store_path: str | Path, chunk_bins: int,
                    progress: Callable[[int, int], None] | None = None) -> SignalStore:
    """:func:`~predictd_core.store.signal_store.ingest` on ``runner``'s tasks (see the module's docstring): the
    tracks of ``tracks`` binned into ``bins`` and written, arcsinh, to a store at ``store_path`` (replaced if it
    exists; locally it appears whole, on an object store its ``complete`` attribute is written last).
    The bundles go to a scratch folder beside the store (``.parts/<id>`` in its folder), deleted at the end.
    ``progress(done, total)`` hears of the chunks written, once they all are.
    """
    if not tracks:
        raise PredictdInputError("tracks", "rows", "the compendium is empty: no tracks to ingest")
    n_chunks = -(-bins.n_bins // chunk_bins)
    per_track = items_per_task(len(tracks), runner.parallelism, MAX_TRACKS_PER_TASK)
    per_chunk = items_per_task(n_chunks, runner.parallelism, CHUNK_TASK_BYTES // (chunk_bins * len(tracks) * 4))
    with scratch_folder(parent_location(str(store_path).rstrip("/"))) as scratch, writing_store(store_path) as work:
        written = runner.run_tasks(bin_track_group, [
            TrackGroupTask(tuple(tracks[first:first + per_track]), first, dict(chrom_sizes), bins, chunk_bins,
                           str(scratch)) for first in range(0, len(tracks), per_track)])
        # per track: its bundle, and its pieces' offsets (tracks + 1 of them, the last being its end)
        pieces = [(location, index[t * n_chunks:(t + 1) * n_chunks + 1])
                  for location, index in written for t in range((len(index) - 1) // n_chunks)]
        root = create_store(work, tracks, bins, chunk_bins)
        runner.run_tasks(write_chunk_group, [
            ChunkGroupTask(work, bins, chunk_bins, tuple(range(first, min(first + per_chunk, n_chunks))),
                           tuple(location for location, _ in pieces),
                           tuple(offsets[first:min(first + per_chunk, n_chunks) + 1].copy() for _, offsets in pieces))
            for first in range(0, n_chunks, per_chunk)])
        finish_store(root, tracks, bins, chunk_bins)
    if progress is not None:
        progress(n_chunks, n_chunks)
    return SignalStore.open(store_path)
