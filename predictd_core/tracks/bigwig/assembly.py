"""A bigWig put together from its parts (:mod:`predictd_core.tracks.bigwig.parts`) by copying their blocks.

:func:`assemble` (and :class:`Assembly`, for parts given one at a time) writes the bigWig by copying the parts'
blocks as bytes (nothing is inflated or deflated again), merging the two (or more) shares of every record cut by
part edges and deflating those few records into small zoom blocks of their own, and writing the trees and the
header. Readers see the values, intervals, total summary and zoom records of
:class:`~predictd_core.tracks.bigwig.writer.FixedStepBigWigWriter`'s file for the same input (zoom sums to
float32 rounding: float64 shares are added in another order); only the cuts between blocks differ (data blocks
end at part edges too, and each merged record is a block of its own between the parts' blocks wherever the
parts have complete records at that level). What assembly costs is mostly per part (opening it, reading its
index, a record per level per edge), not per byte: on a pilot track in parts of 16,384 bins about a third of
writing the file in one pass (bench/bigwig_parts.py).
"""

from __future__ import annotations

import io
import os
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from isal import isal_zlib

from predictd_core.errors import PredictdInputError
from predictd_core.tracks.bigwig.format import (
    DEFAULT_COMPRESS, LEAF_ITEM, RECORDS_PER_BLOCK, BigWigFile, CloseOrDiscard, check_contigs, join_items)
from predictd_core.tracks.bigwig.parts import IN_MEMORY, LEFT, RIGHT, contigs_checksum, read_part_index
from predictd_core.tracks.bigwig.zoom import Summaries, zoom_blocks, zoom_reductions

COPY_BYTES = 1 << 20  # bytes read at a time when copying a part's blocks
# A zoom level's spool stays in memory up to this size, then moves to a file: most levels are small, and making
# a file per level per track was half of assembling 3,048 tracks of 4 parts each side by side (the files'
# creation, in two processes at once: 13.7 core-seconds against 5.6, bench/distributed_impute.py).
SPOOL_MEMORY_BYTES = 1 << 20

# Where a part is read from by :class:`Assembly`: its file, its bytes, or an open binary file positioned at its
# first byte, the part running to the file's end.
PartSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


def _read_exactly(source, size: int) -> bytes:
    """``size`` bytes from ``source``; EOFError if it ends first."""
    data = source.read(size)
    if len(data) < size:
        raise EOFError("the part ended early")
    return data


def _copy(source, write: Callable[[bytes], None], size: int) -> int:
    """Copy ``size`` bytes from ``source`` through ``write``, :data:`COPY_BYTES` at a time; returns their CRC-32."""
    crc = 0
    for first in range(0, size, COPY_BYTES):
        chunk = _read_exactly(source, min(COPY_BYTES, size - first))
        write(chunk)
        crc = isal_zlib.crc32(chunk, crc)
    return crc


def _laid_out(items: np.ndarray, start: int = 0) -> np.ndarray:
    """``items`` with offsets of blocks lying one after another from ``start``, in their order."""
    sizes = items["size"].astype(np.int64)
    items["offset"] = start + np.cumsum(sizes) - sizes
    return items


class _LevelAssembly:
    """One zoom level being assembled: the parts' blocks copied to a spool file, and the records cut by part
    edges merged and kept, in genome order, until :meth:`finish` deflates them into small blocks of their own.

    Leaf entries must be in genome order, block offsets need not be: the merged records' blocks go after the
    copied ones in the file, their entries between the copied blocks' entries where they belong; so all of a
    level's merged records are deflated in one pass at the end, not one small block per part edge as they come.
    """

    def __init__(self, reduction: int, directory: Path, compress: Callable[[bytes], bytes]) -> None:
        self.reduction, self.compress = reduction, compress
        self.spool = tempfile.SpooledTemporaryFile(SPOOL_MEMORY_BYTES, dir=directory,
                                                   prefix=".bigwig-zooms-")  # gone when closed
        self.size = 0  # bytes in the spool
        # in genome order: LEAF_ITEM of the copied blocks of a part, or a list of merged records
        # ([chrom, origin, record, bases, min, max, sum, squares]) lying between copied blocks
        self.segments: list = []
        self.merged: list[list] = []  # merged records after the last copied blocks
        self.open: list | None = None  # the record cut by the last part's end: the next part may continue it
        self.largest = 0

    def take(self, path: str, edges: list[tuple], items: np.ndarray, blocks: bytes) -> None:
        """Take a part's records of this level: its cut records (``edges``, EDGE_RECORD tuples in order) and its
        blocks (``items``; their bytes, ``blocks``, are copied to the spool)."""
        if edges and edges[0][1] & LEFT:
            left = edges[0]
            merged = self.open
            if merged is None or merged[:3] != list(left[2:5]):
                raise PredictdInputError(path, "run", "its first bins continue a run begun before the part, but "
                                                      "the part before it does not end in that run: a part is "
                                                      "missing or out of order")
            merged[3] += left[5]
            merged[4], merged[5] = min(merged[4], left[6]), max(merged[5], left[7])
            merged[6] += left[8]
            merged[7] += left[9]
            if left[1] & RIGHT:  # the part lies inside this record: the next part may continue it too
                return
        if self.open is not None:
            self.merged.append(self.open)
            self.open = None
        if len(items):
            if self.merged:
                self.segments.append(self.merged)
                self.merged = []
            self.segments.append(items.copy())  # not a view: the part's index is let go
            self.spool.write(blocks)
            self.size += len(blocks)
        if edges and edges[-1][1] == RIGHT:
            self.open = list(edges[-1][2:])

    def finish(self) -> np.ndarray:
        """Deflate the merged records (blocks of at most
        :data:`~predictd_core.tracks.bigwig.format.RECORDS_PER_BLOCK`, never across copied blocks) after the
        copied ones; returns every block's leaf entry in genome order (offsets in the spool)."""
        if self.open is not None:
            self.merged.append(self.open)
            self.open = None
        if self.merged:
            self.segments.append(self.merged)
            self.merged = []
        is_copied = [not isinstance(segment, list) for segment in self.segments]
        copied = _laid_out(join_items([segment for segment, kind in zip(self.segments, is_copied) if kind]))
        groups = [segment for segment, kind in zip(self.segments, is_copied) if not kind]
        entries = [len(segment) for segment in self.segments]  # leaf entries per segment (groups: below)
        items = np.zeros(len(copied), LEAF_ITEM)
        if groups:
            lengths = np.array([len(group) for group in groups])
            rows = np.array([record for group in groups for record in group], dtype=np.float64)
            group_starts = np.cumsum(lengths) - lengths
            firsts = np.flatnonzero((np.arange(len(rows)) - np.repeat(group_starts, lengths)) % RECORDS_PER_BLOCK == 0)
            records = Summaries(np.zeros(len(rows), np.int64), *(rows[:, k].astype(np.int64) for k in range(4)),
                                rows[:, 4].astype(np.float32), rows[:, 5].astype(np.float32), rows[:, 6], rows[:, 7])
            blocks = zoom_blocks(records, self.reduction, self.compress, firsts)
            blocks.items["offset"] += self.size
            self.spool.write(b"".join(blocks.data))
            self.size += int(blocks.items["size"].sum())
            self.largest = blocks.largest
            blocks_per_group = iter(np.diff(np.append(np.searchsorted(firsts, group_starts), len(firsts))).tolist())
            entries = [count if kind else next(blocks_per_group) for count, kind in zip(entries, is_copied)]
            items = np.zeros(len(copied) + len(blocks.items), LEAF_ITEM)
            items[~np.repeat(np.array(is_copied, bool), entries)] = blocks.items
        items[np.repeat(np.array(is_copied, bool), entries)] = copied
        self.spool.seek(0)
        return items

    def chunks(self):
        """The spooled blocks' bytes, piece by piece."""
        return iter(lambda: self.spool.read(COPY_BYTES), b"")


def _open_part(source: PartSource, name: str | None):
    """A context giving ``source`` (:data:`PartSource`) as a binary file at the part's first byte, and the
    part's name for errors (``name``, else its path or :data:`IN_MEMORY`)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source), name or IN_MEMORY
    if hasattr(source, "read"):
        own = getattr(source, "name", None)  # an anonymous temporary file's is its descriptor
        return nullcontext(source), name or (str(own) if isinstance(own, (str, os.PathLike)) else IN_MEMORY)
    name = name or str(source)
    try:
        return open(source, "rb"), name
    except FileNotFoundError:
        raise PredictdInputError(name, "part", "not found (was it written?)") from None
    except OSError as error:
        raise PredictdInputError(name, "part", f"cannot be read: {error.strerror}") from None


class Assembly(CloseOrDiscard):
    """The bigWig at ``path`` put together from :class:`~predictd_core.tracks.bigwig.parts.BigWigPart` parts
    given one at a time, in genome order (:meth:`add`), and completed by :meth:`close`: :func:`assemble` for parts
    that arrive while others are still read (many tracks assembled side by side from one read of each chunk's
    bundle of parts).

    The parts' data and zoom blocks are copied as bytes; records cut by part edges are merged and deflated
    (``compress``) as small zoom blocks; then come the R-trees and the header. Memory holds the index entries
    (32 bytes a block), a few records per part edge and one part's zoom blocks, not the data. The file is
    written as ``<path>.partial`` and renamed by :meth:`close`; on any error (a part missing, damaged, written
    for other contigs, out of order) the assembly is discarded, nothing is left at ``path`` and the error names
    the part. Use as a context manager to have it discarded if the block raises. Open files: the bigWig and a
    spool per zoom level.

    Parameters
    ----------
    path : path-like
        The bigWig to write.
    contigs, bin_size :
        As the parts were written with (checked).
    compress : callable, bytes -> bytes
        The zlib-format deflate of the merged records' blocks.
    """

    def __init__(self, path: str | os.PathLike, contigs: list[tuple[str, int]], bin_size: int,
                 compress: Callable[[bytes], bytes] = DEFAULT_COMPRESS) -> None:
        self.path = Path(path)
        names, lengths = check_contigs(self.path, contigs)
        if int(bin_size) <= 0:
            raise PredictdInputError(str(self.path), "bin_size", f"must be positive, got {bin_size}")
        self._names, self._bin_size = names, int(bin_size)
        reductions = zoom_reductions(list(zip(names, lengths)), bin_size)
        self._checksum = contigs_checksum(names, lengths, self._bin_size)
        self._out = BigWigFile(self.path, names, lengths, len(reductions))
        self._data_start = self._out.offset
        self._levels: list[_LevelAssembly] = []
        self._closed = False
        try:
            self._levels = [_LevelAssembly(reduction, self.path.parent, compress) for reduction in reductions]
        except BaseException:
            self.discard()
            raise
        self._data_items: list[np.ndarray] = []
        self._bases, self._low, self._high, self._total, self._squares, self._largest = 0, np.inf, -np.inf, 0.0, 0.0, 0
        self._last = (0, 0)  # (contig id, end) of the data so far

    def add(self, source: PartSource, name: str | None = None) -> None:
        """Append the part ``source`` (:data:`PartSource`; a part without data is skipped), after the parts
        added so far; ``name`` names it in errors (default: its path). An error discards the assembly."""
        if self._closed:
            raise ValueError(f"{self.path}: the assembly is closed")
        try:
            opened, name = _open_part(source, name)
            with opened as handle:
                self._take(handle, name)
        except BaseException:
            self.discard()
            raise

    def _take(self, handle, name: str) -> None:
        part = read_part_index(handle, name, self._checksum, self._bin_size, len(self._levels))
        summary = part.summary
        if not summary.data_blocks:
            return
        first = (summary.first_chrom, summary.first_start)
        if first < self._last:
            raise PredictdInputError(name, "order", f"starts at {self._names[first[0]]}:{first[1]}, before the end "
                                                    f"of the part before it ({self._names[self._last[0]]}:"
                                                    f"{self._last[1]})")
        self._last = (summary.last_chrom, summary.last_end)
        self._data_items.append(part.data_items.copy())  # not a view: the part's index is let go
        try:
            crc = _copy(handle, self._out.write, part.data_size)
            zooms = _read_exactly(handle, sum(part.zoom_sizes))  # small: about a tenth of the data
        except EOFError as error:
            raise PredictdInputError(name, "blocks", f"{error}: not a complete bigWig part") from None
        if isal_zlib.crc32(zooms, crc) != part.blocks_crc:
            raise PredictdInputError(name, "blocks", "checksum mismatch: the part is damaged (rewrite it)")
        position = 0
        for level, items, size, edges in zip(self._levels, part.zoom_items, part.zoom_sizes, part.edges):
            level.take(name, edges, items, zooms[position:position + size])
            position += size
        self._bases += summary.bases
        self._low, self._high = min(self._low, summary.low), max(self._high, summary.high)
        self._total += summary.total
        self._squares += summary.squares
        self._largest = max(self._largest, part.largest)

    def close(self) -> None:
        """Write the trees, the merged records' blocks and the header, and rename the file into place."""
        if self._closed:
            return
        try:
            items = _laid_out(join_items(self._data_items), self._data_start)
            self._out.write_data_index(items)
            largest = self._largest
            if len(items):  # no data: no zoom levels, as the one-pass writer
                for level in self._levels:
                    level_items = level.finish()
                    self._out.write_zoom_level(level.reduction, level.chunks(), level_items)
                    largest = max(largest, level.largest)
            self._out.finish(len(items), (self._bases, self._low, self._high, self._total, self._squares), largest)
        except BaseException:
            self.discard()
            raise
        self._closed = True
        self._close_spools()

    def discard(self) -> None:
        """Stop and remove the partial file (nothing appears at ``path``)."""
        self._closed = True
        self._out.discard()
        self._close_spools()

    def _close_spools(self) -> None:
        for level in self._levels:
            level.spool.close()


def assemble(part_paths: list[PartSource], path: str | os.PathLike, contigs: list[tuple[str, int]],
             bin_size: int, compress: Callable[[bytes], bytes] = DEFAULT_COMPRESS) -> None:
    """Write the bigWig made of ``part_paths`` (:class:`~predictd_core.tracks.bigwig.parts.BigWigPart` files, in
    genome order) at ``path`` (:class:`Assembly`: blocks copied as bytes, records cut by part edges merged; on any
    error nothing is left at ``path`` and the error names the part).

    Parameters
    ----------
    part_paths : list of path-like (or any :data:`PartSource`)
        The parts, in genome order (parts without data are skipped).
    path : path-like
        The bigWig to write.
    contigs, bin_size :
        As the parts were written with (checked).
    """
    with Assembly(path, contigs, bin_size, compress) as assembly:
        for part in part_paths:
            assembly.add(part)
