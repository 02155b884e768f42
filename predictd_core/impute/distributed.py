"""Imputed tracks written by a distributed engine's executors (Spark), in two stages, through chunk bundles.

The engines' ``map_chunks`` brings every chunk's values (65,536 bins x 3,048 pairs float32: 800 MB on the
Roadmap grid) to the driver, which then writes every bigWig while the executors idle. Here the driver only
hands out work (:mod:`predictd_core.engine.bundles`):

1. a task per chunk (:meth:`~predictd_core.engine.base.Engine.map_chunks_remote`) computes the chunk, writes
   each track's bins of it as a bigWig part (:class:`~predictd_core.tracks.bigwig.BigWigPart`: the
   deflate and the zoom records, the expensive share of writing a track) and stores the chunk's parts of every
   track as one bundle in a scratch folder; it sends back only the bundle's index;
2. a task per group of consecutive tracks (:meth:`~predictd_core.engine.base.Engine.run_tasks`) reads the
   group's byte range of every bundle, feeds each part to its track's
   :class:`~predictd_core.tracks.bigwig.Assembly` (blocks copied as bytes, not deflated again) and puts the
   finished bigWig in place. The scratch folder is deleted at the end, whatever happened.

Each part checks its own blocks and index.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

import numpy as np

from predictd_core.engine.base import Engine, items_per_task, task_local_folder
from predictd_core.engine.bundles import READS_AHEAD, BundleWriter, bundle_name, read_ahead, write_whole
from predictd_core.impute.parallel import result_blocks
from predictd_core.impute.write_tracks import add_bins, as_written, copy_columns, run_origin
from predictd_core.io import Location, is_remote, join_location, upload_file
from predictd_core.store.signal_store import chunk_bounds
from predictd_core.tracks.bigwig import Assembly, BigWigPart
from predictd_core.tracks.genome import GenomeBins

# Tracks laid out bin after bin at a time from a chunk's (bins, tracks) values: one (track, bins) row is what a
# part takes, and a block-wise transpose of a few hundred tracks beats a strided column copy per track.
TRANSPOSE_TRACKS = 256
# Tracks per assembly task at most: each holds its bigWig and a spool per zoom level open (11 files for hg19),
# and its share of every bundle in memory, while the task runs.
MAX_GROUP_TRACKS = 64


def write_bundle(file: BinaryIO, bins: GenomeBins, lo: int, hi: int, values: Sequence[np.ndarray],
                 from_arcsinh: Sequence[bool]) -> np.ndarray:
    """Write the bundle of bins ``[lo, hi)`` into the open binary ``file`` (writable, seekable, from its
    current position, which is the bundle's first byte); returns its index (uint64, tracks + 1 offsets).

    Parameters
    ----------
    file : binary file
        Where the bundle goes; left at its end.
    bins : GenomeBins
        The genome's bins (the parts' contigs and run origins).
    lo, hi : int
        The chunk's bins.
    values : sequence of arrays, shape (hi - lo, k)
        The tracks' values, blocks of columns side by side: track t is column t of them all (-log10 p, or
        arcsinh for the tracks ``from_arcsinh`` names; finite).
    from_arcsinh : sequence of bool
        Per track: convert its values from arcsinh to -log10 p (:func:`~predictd_core.impute.write_tracks.as_written`).
    """
    n_tracks = sum(block.shape[1] for block in values)
    if n_tracks != len(from_arcsinh) or any(block.shape[0] != hi - lo for block in values):
        raise ValueError(f"bundle of bins [{lo}, {hi}): values of shapes {[block.shape for block in values]} for "
                         f"{len(from_arcsinh)} tracks")
    bundle = BundleWriter(file, lo, hi, n_tracks)
    contigs, origin, track = list(bins.contigs), run_origin(bins, lo), 0
    for block in values:
        for first in range(0, block.shape[1], TRANSPOSE_TRACKS):
            columns = block[:, first:first + TRANSPOSE_TRACKS]
            rows = np.empty((columns.shape[1], hi - lo), np.float32)
            copy_columns(rows, columns)
            for row in rows:
                bundle.next_piece()
                with BigWigPart(file, contigs, bins.bin_size, run_origin=origin) as part:
                    add_bins(part, bins, lo, hi, as_written(row, from_arcsinh[track]))
                track += 1
    return bundle.close()


@dataclass(frozen=True)
class BundleTask:
    """What a stage-1 task needs besides the chunk function (shipped with the task, this is broadcast): the
    function's payload, each track's scale, the bins and chunking of the store, and the scratch folder."""

    payload: Any
    from_arcsinh: tuple[bool, ...]
    bins: GenomeBins
    chunk_bins: int
    scratch: str


def bundle_chunk(fn: Callable[[np.ndarray, Any], Any], chunk: int, signal: np.ndarray, task: BundleTask
                 ) -> tuple[str, np.ndarray]:
    """Stage 1, in a task: compute chunk ``chunk`` from its ``signal`` (``fn(signal, task.payload)``: the
    chunk's values, blocks of columns side by side as :func:`~predictd_core.impute.parallel.result_blocks`
    takes them) and write its bundle (:func:`write_bundle`) to the scratch folder; returns the bundle's
    location and index."""
    lo, hi = chunk_bounds(chunk, task.chunk_bins, task.bins.n_bins)
    values = result_blocks(fn(signal, task.payload))
    location = join_location(task.scratch, bundle_name(chunk))
    return str(location), write_whole(location, lambda file: write_bundle(file, task.bins, lo, hi, values,
                                                                             task.from_arcsinh))


@dataclass(frozen=True)
class GroupTask:
    """What a stage-2 task needs: its tracks' destinations (local paths or URLs, in track order, the first
    being track ``first`` of the bundles), every chunk's bundle in genome order, the group's rows of their
    indexes (shape (chunks, tracks + 1): where each track's part starts in each bundle, and where the group's
    range ends) and the genome's contigs and bin size."""

    targets: tuple[str, ...]
    first: int
    bundles: tuple[str, ...]
    offsets: np.ndarray
    contigs: tuple[tuple[str, int], ...]
    bin_size: int


def assemble_group(task: GroupTask) -> int:
    """Stage 2, in a task: read the group's range of each bundle in turn (:func:`read_ahead`), add each track's
    part to its assembly, complete the bigWigs and put them in place (a local destination is written as
    ``<path>.partial`` and renamed; a remote one is assembled in a local temporary folder and uploaded as one
    object, :data:`READS_AHEAD` uploads at a time). On an error no bigWig of the group is left incomplete.
    Returns the tracks written."""
    contigs, local = list(task.contigs), Path()
    with ExitStack() as stack:
        if any(is_remote(target) for target in task.targets):
            local = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=task_local_folder(),
                                                                         prefix="predictd-assemble-")))
        files = [local / f"{k}.bigWig" if is_remote(target) else Path(target) for k, target in enumerate(task.targets)]
        assemblies = [stack.enter_context(Assembly(file, contigs, task.bin_size)) for file in files]
        rows = task.offsets.tolist()
        ranges = [(bundle, row[0], row[-1]) for bundle, row in zip(task.bundles, rows)]
        reads = stack.enter_context(closing(read_ahead(ranges)))
        for bundle, row, read in zip(task.bundles, rows, reads):
            data = memoryview(read)
            for k, assembly in enumerate(assemblies):
                assembly.add(data[row[k] - row[0]:row[k + 1] - row[0]], name=f"{bundle} (track {task.first + k})")
        for assembly in assemblies:
            assembly.close()
        uploads = [(file, target) for file, target in zip(files, task.targets) if is_remote(target)]
        with ThreadPoolExecutor(READS_AHEAD) as pool:
            for future in [pool.submit(upload_file, file, target) for file, target in uploads]:
                future.result()
    return len(task.targets)


def group_tracks(n_tracks: int, parallelism: int) -> int:
    """Tracks per assembly task (:func:`~predictd_core.engine.base.items_per_task`), at most
    :data:`MAX_GROUP_TRACKS`."""
    return items_per_task(n_tracks, parallelism, MAX_GROUP_TRACKS)


def write_tracks_distributed(engine: Engine, fn: Callable[[np.ndarray, Any], Any], payload: Any,
                             targets: Sequence[Location], from_arcsinh: Sequence[bool], scratch: Location,
                             progress: Callable[[int], None] | None = None) -> None:
    """Write the tracks of ``fn(chunk signal, payload)`` (track t: column t of its blocks side by side) of every
    chunk of ``engine.store`` at ``targets``, computed and written by the engine's tasks (stage 1 then stage
    2, see the module's docstring). ``progress(done)`` hears of every chunk done, in this process.

    Parameters
    ----------
    engine : Engine
        A distributed engine over every chunk of its store (``map_chunks_remote``, ``run_tasks``).
    fn, payload :
        The chunk function (picklable, as the engine ships it) and what it takes.
    targets : sequence of locations
        Where each track's bigWig goes: local paths the executors reach (a staging folder), or object-store
        URLs (each track one object, uploaded whole by the task that assembles it).
    from_arcsinh : sequence of bool
        Per track: values come as arcsinh, written as -log10 p.
    scratch : location
        A folder of this call's own, beside the outputs, that the executors and this process reach
        (:func:`~predictd_core.engine.bundles.scratch_folder`, which deletes it at the end); the bundles go there.
    """
    store = engine.store
    if len(targets) != len(from_arcsinh):
        raise ValueError(f"{len(targets)} tracks but {len(from_arcsinh)} scales")
    if not targets:
        return
    reported = 0

    def chunks_done(count: int) -> None:  # every chunk is heard of, even when several finished together
        nonlocal reported
        for done in range(reported + 1, count + 1):
            progress(done)
        reported = max(reported, count)

    task = BundleTask(payload, tuple(bool(flag) for flag in from_arcsinh), store.bins, store.chunk_bins, str(scratch))
    written = engine.map_chunks_remote(partial(bundle_chunk, fn), task, None if progress is None else chunks_done)
    bundles = tuple(location for _, (location, _) in written)
    offsets = np.stack([index for _, (_, index) in written])  # (chunks, tracks + 1)
    size = group_tracks(len(targets), engine.parallelism)
    groups = [GroupTask(tuple(str(target) for target in targets[first:first + size]), first, bundles,
                        offsets[:, first:first + size + 1].copy(), tuple(store.bins.contigs), store.bins.bin_size)
              for first in range(0, len(targets), size)]
    engine.run_tasks(assemble_group, groups)
