"""Chunk bundles: how a distributed engine's chunk tasks hand per-track pieces of their chunk to later tasks.

A task per chunk (:meth:`~predictd_core.engine.base.Engine.map_chunks_remote`) writes one *bundle*, one object
holding a piece per track of its chunk, in a scratch folder the executors and the driver both reach, and sends
back only the bundle's index. A task per group of consecutive tracks
(:meth:`~predictd_core.engine.base.Engine.run_tasks`) then reads the group's byte range of every bundle, one
ranged read per bundle (the tracks' pieces lie one after another). One object per chunk, not per piece: a
piece per track per chunk would be millions of objects on the whole genome (hg19 at 65,536-bin chunks x 3,048
tracks: 5.8 M, $29 of S3 PUTs alone).

Bundle layout (little-endian): :data:`BUNDLE_HEADER`; the index, uint64 offsets from the bundle's first byte
of each track's piece and of the bundle's end (tracks + 1 of them: piece t is bytes ``[offset[t],
offset[t + 1])``); then the pieces in track order. The header holds the CRC-32 of the index; what a piece
holds, and how it checks itself, is up to its writer (:mod:`predictd_core.impute.distributed`'s bigWig parts,
:mod:`predictd_core.evaluate.distributed`'s scoring signal).
"""

from __future__ import annotations

import os
import struct
import tempfile
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Sequence

import numpy as np
from isal import isal_zlib

from predictd_core.engine.base import task_local_folder
from predictd_core.errors import PredictdInputError
from predictd_core.io import (Location, is_remote, join_location, read_range, remove_folder, temporary_sibling,
                              upload_file)

BUNDLE_MAGIC = b"PDBUNDL1"
BUNDLE_HEADER = struct.Struct("<8sIIQQ")  # magic, tracks, CRC-32 of the index, the chunk's first bin and end bin
# Bundle ranges a task reads ahead, in threads: hg19 has ~1,900 bundles, and one ranged GET at a time (tens of
# milliseconds each on an object store) would leave the task waiting most of its time.
READS_AHEAD = 8
# The folder under a run's output where distributed work keeps its bundles while it runs (a subfolder per
# call, deleted when it ends).
SCRATCH_FOLDER = ".parts"


def bundle_name(chunk: int) -> str:
    """A new name for a bundle of chunk ``chunk``: each attempt at a chunk writes its own, and the driver reads
    the one whose index it was sent (a retried or speculative task's bundle may differ: BLAS on another CPU)."""
    return f"chunk-{chunk:07d}-{uuid.uuid4().hex[:12]}.bundle"


class BundleWriter:
    """Writes one bundle of bins ``[lo, hi)`` with ``n_tracks`` pieces into the open binary ``file`` (writable,
    seekable), from its current position, which is the bundle's first byte.

    Call :meth:`next_piece` before writing each track's piece to ``file``, in track order, then :meth:`close`,
    which writes the header and index and returns the index (uint64, tracks + 1 offsets), leaving ``file`` at
    the bundle's end.
    """

    def __init__(self, file: BinaryIO, lo: int, hi: int, n_tracks: int):
        self.file, self.lo, self.hi = file, lo, hi
        self.start = file.tell()
        self.offsets = np.zeros(n_tracks + 1, "<u8")
        self.track = 0
        file.write(bytes(BUNDLE_HEADER.size + 8 * (n_tracks + 1)))  # completed by close

    def next_piece(self) -> None:
        """The next track's piece starts at ``file``'s position."""
        if self.track >= len(self.offsets) - 1:
            raise ValueError(f"bundle of {len(self.offsets) - 1} tracks: a piece too many")
        self.offsets[self.track] = self.file.tell() - self.start
        self.track += 1

    def add_floats(self, values: np.ndarray) -> None:
        """The next track's piece: ``values`` as little-endian float32, deflated (zlib's checksum finds a damaged
        piece); :func:`read_floats` reads it back."""
        self.next_piece()
        self.file.write(isal_zlib.compress(np.asarray(values).astype("<f4", copy=False).tobytes(), 1))

    def close(self) -> np.ndarray:
        """Write the header and index; the bundle's index."""
        if self.track != len(self.offsets) - 1:
            raise ValueError(f"bundle of {len(self.offsets) - 1} tracks: {self.track} pieces written")
        self.offsets[-1] = self.file.tell() - self.start
        index = self.offsets.tobytes()
        self.file.seek(self.start)
        self.file.write(BUNDLE_HEADER.pack(BUNDLE_MAGIC, self.track, isal_zlib.crc32(index), self.lo, self.hi) + index)
        self.file.seek(self.start + int(self.offsets[-1]))
        return self.offsets


def read_bundle_index(data: bytes, name: str) -> tuple[int, int, np.ndarray]:
    """The chunk's bins ``(lo, hi)`` and the index of the bundle whose first bytes are ``data`` (at least its
    header and index); ``name`` names it in errors."""
    if len(data) < BUNDLE_HEADER.size or data[:8] != BUNDLE_MAGIC:
        raise PredictdInputError(name, "header", "no bundle header: not a chunk bundle")
    _, n_tracks, crc, lo, hi = BUNDLE_HEADER.unpack_from(data)
    index = data[BUNDLE_HEADER.size:BUNDLE_HEADER.size + 8 * (n_tracks + 1)]
    if len(index) < 8 * (n_tracks + 1) or isal_zlib.crc32(index) != crc:
        raise PredictdInputError(name, "index", "damaged or cut short: not a complete chunk bundle")
    return lo, hi, np.frombuffer(index, "<u8").copy()


def read_floats(piece: bytes | memoryview, count: int, bundle: str, field: str, what: str) -> np.ndarray:
    """The ``count`` float32 values of a piece :meth:`BundleWriter.add_floats` wrote; a damaged piece, or one of
    another length, is an input error naming ``bundle`` and ``field`` (what the piece is: ``what``)."""
    try:
        values = np.frombuffer(isal_zlib.decompress(piece), "<f4")
    except isal_zlib.error as error:
        raise PredictdInputError(bundle, field, f"damaged {what} ({error})") from None
    if values.size != count:
        raise PredictdInputError(bundle, field, f"{values.size} values of {what} where {count} belong")
    return values


def read_ahead(ranges: Sequence[tuple[Location, int, int]], ahead: int = READS_AHEAD) -> Iterator[bytes]:
    """The bytes of each ``(location, start, end)`` of ``ranges`` (:func:`~predictd_core.io.read_range`), in
    order, with up to ``ahead`` reads under way in threads at once (memory: ``ahead`` ranges)."""
    with ThreadPoolExecutor(max(1, ahead)) as pool:
        pending: deque = deque()
        try:
            for location, start, end in ranges:
                pending.append(pool.submit(read_range, location, start, end))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # left early (an error): what has not started never will
                future.cancel()


def write_whole(location: Location, write: Callable[[BinaryIO], Any]) -> Any:
    """``write(file)`` into a new file that becomes ``location`` only when complete (locally a hidden sibling,
    renamed; remotely a local temporary file, then one upload); returns what ``write`` returns."""
    if is_remote(location):
        with tempfile.NamedTemporaryFile(dir=task_local_folder(), prefix="predictd-bundle-") as file:
            result = write(file)
            file.flush()
            upload_file(file.name, str(location))
        return result
    unfinished = temporary_sibling(location)
    try:
        with open(unfinished, "w+b") as file:
            result = write(file)
        os.replace(unfinished, location)
    except BaseException:
        unfinished.unlink(missing_ok=True)
        raise
    return result


@contextmanager
def scratch_folder(output: Location) -> Iterator[Location]:
    """A new folder of the caller's own, ``output/.parts/<id>``, for bundles; deleted with everything in it
    when the block ends, whatever happened (locally ``.parts`` too, unless another call is using it)."""
    scratch = join_location(output, SCRATCH_FOLDER, uuid.uuid4().hex[:12])
    if not is_remote(scratch):
        Path(scratch).mkdir(parents=True)
    try:
        yield scratch
    finally:
        remove_folder(scratch)
        if not is_remote(scratch):
            try:
                Path(scratch).parent.rmdir()
            except OSError:
                pass
