"""bigWig files made in parts: each range of bins deflated where it is computed, the file put together by copying.

A *part* (:class:`BigWigPart`) is everything of one track over one contiguous range of genome bins (one store
chunk), in one file: its fixed-step data blocks, deflated, with their R-tree leaf entries; for every zoom level
the summary records that lie wholly inside the part, deflated into zoom blocks, with their leaf entries; the
records cut by the part's edges, kept as raw float64 partial summaries; and the part's total summary.
:func:`assemble` then writes the bigWig by copying the parts' blocks as bytes (nothing is inflated or deflated
again), merging the two (or more) shares of every record cut by part edges and deflating those few records
into small zoom blocks of their own, and writing the trees and the header. Readers see the values, intervals,
total summary and zoom records of :class:`~predictd_core.tracks.bigwig_writer.FixedStepBigWigWriter`'s file
for the same input (zoom sums to float32 rounding: float64 shares are added in another order); only the cuts
between blocks differ (data blocks end at part edges too, and each merged record is a block of its own
between the parts' blocks wherever the parts have complete records at that level). What assembly costs is
mostly per part (opening it, reading its index, a record per level per edge), not per byte: on a pilot track
in parts of 16,384 bins about a third of writing the file in one pass (bench/bigwig_parts.py).

Zoom records are aligned to the start of each run of adjacent bins, and a run continues across part edges, so
a part must know where the run holding its first bin started (``run_origin``): the start of a contig (or of a
region, unless the region before it ends there with a full bin), or the bin after a narrow one. A record is
cut on the left when the part continues a run and its first bin is not at a record's start; on the right when
the part's last run may go on after it (its last bin is full and ends before its contig's end) and its last
bin does not end a record. Records cut on the right that nothing continues are complete after all: the
assembly writes them as they are.

Part file layout (little-endian): :data:`PART_HEADER`; the data blocks; each zoom level's blocks, level by
level; the index at the header's offset: one :data:`PART_INDEX`, the zoom block count per level (uint64),
the data blocks' :data:`~predictd_core.tracks.bigwig_writer.LEAF_ITEM` entries (offsets in the part file),
the zoom blocks' entries, then the :data:`EDGE_RECORD` rows. The header holds CRC-32s of the blocks and of the
index, so a truncated or damaged part is refused by name (and the assembly leaves no file). Offsets are from
the part's first byte: a part may be written into an open file after other data (many parts one after another,
:mod:`predictd_core.impute.distributed`'s chunk bundles) and read back from a file positioned at its start, or
from its bytes.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import BinaryIO, Callable, NamedTuple

import numpy as np
from isal import isal_zlib

from predictd_core.errors import PredictdInputError
from predictd_core.tracks.bigwig_writer import (
    DEFAULT_COMPRESS, LEAF_ITEM, RECORDS_PER_BLOCK, ZOOM_FACTOR, AtomicFile, BigWigFile, FixedStepRuns, Summaries,
    check_contigs, coarsen, join_items, zoom_blocks, zoom_reductions)

PART_MAGIC = b"PDBWPRT1"
PART_HEADER = struct.Struct("<8sIIIIIIQ")  # magic, bin size, contigs' CRC, zoom levels, largest block
# uncompressed, CRC of the blocks, CRC of the index, offset of the index
PART_INDEX = struct.Struct("<QQQddddIIII")  # the index's head: data blocks, edge records, then the part's
# total summary (bases covered, min, max, sum, sum of squares), then (contig id, start) of its first bin and
# (contig id, end) of its last


class PartSummary(NamedTuple):
    """A part's index head (:data:`PART_INDEX`)."""

    data_blocks: int
    edges: int
    bases: int
    low: float
    high: float
    total: float
    squares: float
    first_chrom: int
    first_start: int
    last_chrom: int
    last_end: int


# A zoom record cut by the part's edges: its level, which edges cut it (LEFT | RIGHT), the window it belongs to
# (contig id, base its run starts at, record number in the run) and the part's share of it, unrounded.
EDGE_RECORD = np.dtype([("level", "<u4"), ("side", "<u4"), ("chrom", "<u4"), ("origin", "<u4"), ("record", "<u8"),
                        ("bases", "<u8"), ("low", "<f8"), ("high", "<f8"), ("total", "<f8"), ("squares", "<f8")])
LEFT, RIGHT = 1, 2
COPY_BYTES = 1 << 20  # bytes read at a time when copying a part's blocks
# A zoom level's spool stays in memory up to this size, then moves to a file: most levels are small, and making
# a file per level per track was half of assembling 3,048 tracks of 4 parts each side by side (the files'
# creation, in two processes at once: 13.7 core-seconds against 5.6, bench/distributed_impute.py).
SPOOL_MEMORY_BYTES = 1 << 20
IN_MEMORY = "<bigWig part>"  # the name errors give a part that has none (bytes, an anonymous file)

# Where a part is read from by :class:`Assembly`: its file, its bytes, or an open binary file positioned at its
# first byte, the part running to the file's end.
PartSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


def contigs_checksum(names: list[str], lengths: list[int], bin_size: int) -> int:
    """CRC-32 of the contigs and bin size, stored in each part so that assembly refuses parts of another
    genome layout."""
    text = "".join(f"{name}\t{length}\n" for name, length in zip(names, lengths)) + f"bin_size\t{bin_size}\n"
    return isal_zlib.crc32(text.encode())


class _PartStream:
    """What :class:`BigWigPart` writes through when given an open file: the part is written from the file's
    position at opening (offsets counted from there), the file is left open at the part's end by
    :meth:`commit` and cut back to where the part began by :meth:`discard`. The interface of
    :class:`~predictd_core.tracks.bigwig_writer.AtomicFile`."""

    def __init__(self, file: BinaryIO) -> None:
        self._file, self._start = file, file.tell()
        self.offset = 0
        self.crc: int | None = None
        self.closed = False

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        self._file.write(data)
        self.offset += len(data)
        if self.crc is not None:
            self.crc = isal_zlib.crc32(data, self.crc)

    def patch(self, offset: int, data: bytes) -> None:
        """Overwrite bytes of the part written before, leaving :attr:`offset` as it is."""
        self._file.seek(self._start + offset)
        self._file.write(data)
        self._file.seek(self._start + self.offset)

    def commit(self) -> None:
        """The part is complete; the file stays open (the caller's) at its end."""
        self.closed = True

    def discard(self) -> None:
        """Cut the file back to where the part began (nothing of the part is left)."""
        if not self.closed:
            self.closed = True
            self._file.seek(self._start)
            self._file.truncate()


class BigWigPart(FixedStepRuns):
    """One track's bins over one contiguous range of genome bins, written as a part file for :func:`assemble`.

    Pieces come in genome order exactly as :class:`~predictd_core.tracks.bigwig_writer.FixedStepBigWigWriter`
    takes them (:meth:`add`, :meth:`add_interval`: a narrow last bin ends its run); :meth:`close` writes the
    file (``<path>.partial`` until complete). Use as a context manager to have the partial file removed if
    the block raises. Memory: the part's level-0 zoom records (one per 40 bins) until :meth:`close`.

    Parameters
    ----------
    path : path-like or binary file
        The part file; or an open, seekable binary file to write the part into from its current position
        (several parts one after another in one file: no file per part), left open at the part's end by
        :meth:`close` (and cut back to where the part began if it is discarded).
    contigs : list of (name, length)
        Every contig of the genome, as the assembled file will list them.
    bin_size : int
        Bases per bin.
    run_origin : int, optional
        When the part's first bin continues a run of adjacent bins begun before the part (the bin before it,
        in the previous part, is full-width and adjacent), the base on the first piece's contig where that run
        started; zoom windows are aligned to it. None (or the first piece's start): the part starts a run.
    compress : callable, bytes -> bytes
        The zlib-format deflate of every block.
    """

    def __init__(self, path: str | os.PathLike | BinaryIO, contigs: list[tuple[str, int]], bin_size: int,
                 run_origin: int | None = None, compress: Callable[[bytes], bytes] = DEFAULT_COMPRESS) -> None:
        stream = path if hasattr(path, "write") else None
        name = getattr(stream, "name", None) if stream is not None else path
        super().__init__(name if isinstance(name, (str, os.PathLike)) else IN_MEMORY, contigs, bin_size, compress)
        if run_origin is not None and int(run_origin) < 0:
            raise PredictdInputError(str(self.path), "run_origin", f"must be a base >= 0, got {run_origin}")
        self.run_origin = None if run_origin is None else int(run_origin)
        self._first_offset = 0  # bins of the part's first run before its first bin
        self._first = (0, 0)  # (contig id, start) of the part's first bin
        self._summaries: list[Summaries] = []  # level-0 records, piece by piece
        self._out = AtomicFile(self.path) if stream is None else _PartStream(stream)
        self._out.write(bytes(PART_HEADER.size))  # completed at close
        self._out.crc = 0  # of the blocks, from here to the index

    def _start_or_continue(self, contig: str, start: int, end: int) -> None:
        """As the writer's, and the part's first piece continues the run begun at :attr:`run_origin`."""
        first = self._run < 0
        super()._start_or_continue(contig, start, end)
        if not first:
            return
        self._first = (self._run_chrom, start)
        if self.run_origin is not None:
            offset, rest = divmod(start - self.run_origin, self.bin_size)
            if offset < 0 or rest:
                raise PredictdInputError(str(self.path), f"{contig}:{start}",
                                         f"the part's first bin is not a whole number of {self.bin_size} bp bins "
                                         f"after its run's origin {self.run_origin}")
            self._run_start, self._run_bins, self._first_offset = self.run_origin, offset, offset

    def _take_summaries(self, summaries: Summaries) -> None:
        self._summaries.append(summaries)

    def close(self) -> None:
        """Write the zoom blocks, edge records and index, and rename the part into place."""
        if self._closed:
            return
        may_continue = self._run_open and self._last[1] < self._lengths[self._last[0]]
        run_end = self._run_bins  # bins of the last run up to the part's end
        self._flush_waiting()  # the data blocks end with the part; the run's zoom records may not
        largest = self._largest_block
        counts, zoom_items = [0] * len(self._reductions), []
        cut_levels, cut_sides, cut_records = [], [], []  # the records cut by the part's edges, level by level
        # pieces that continue a run continue its records: merge them (a factor of 1 merges equal records)
        records = coarsen(Summaries.join(self._summaries), 1) if self._summaries else None
        for level, reduction in enumerate(self._reductions if records is not None else []):
            if level and len(records.record) == self._run + 1:  # a record per run: the level above is alike
                records = records._replace(record=records.record // ZOOM_FACTOR)
            elif level:
                records = coarsen(records, ZOOM_FACTOR)
            per = reduction // self.bin_size
            n = len(records.record)
            left = int(self._first_offset % per != 0)  # the first record is cut by the part's start
            right = int(may_continue and run_end % per != 0)  # the last one by its end
            if n - right > left:
                blocks = zoom_blocks(records.take(slice(left, n - right)), reduction, self.compress)
                blocks.items["offset"] += self._out.offset
                self._out.write(b"".join(blocks.data))
                counts[level] = len(blocks.items)
                zoom_items.append(blocks.items)
                largest = max(largest, blocks.largest)
            if left:
                cut_records.append(records.take(slice(0, 1)))
                cut_sides.append(LEFT | (RIGHT if right and n == 1 else 0))  # the part may lie inside a record
            if right and not (left and n == 1):
                cut_records.append(records.take(slice(n - 1, n)))
                cut_sides.append(RIGHT)
            cut_levels += [level] * (len(cut_sides) - len(cut_levels))
        edges = np.zeros(len(cut_sides), EDGE_RECORD)
        if cut_records:
            edges["level"], edges["side"] = cut_levels, cut_sides
            for name, column in zip(("chrom", "origin", "record", "bases", "low", "high", "total", "squares"),
                                    Summaries.join(cut_records)[1:]):
                edges[name] = column
        blocks_crc = self._out.crc
        self._out.crc = None
        data_items = self._data_items()
        bases, low, high, total, squares = self.summary
        index = PART_INDEX.pack(len(data_items), len(edges), bases, low if bases else 0.0, high if bases else 0.0,
                                total, squares, *self._first, *(self._last if bases else (0, 0)))
        index_bytes = b"".join([index, np.array(counts, "<u8").tobytes(), data_items.tobytes()]
                               + [items.tobytes() for items in zoom_items] + [edges.tobytes()])
        index_offset = self._out.offset
        self._out.write(index_bytes)
        self._out.patch(0, PART_HEADER.pack(PART_MAGIC, self.bin_size, contigs_checksum(self._names, self._lengths,
                                                                                        self.bin_size),
                                            len(self._reductions), largest, blocks_crc,
                                            isal_zlib.crc32(index_bytes), index_offset))
        self._out.commit()
        self._closed = True


class _PartIndex(NamedTuple):
    """What a part file's index says. Block offsets are not used: a part's blocks lie one after another (data,
    then level by level) and are copied so, their offsets in the assembled file follow from their sizes."""

    summary: PartSummary
    data_items: np.ndarray  # LEAF_ITEM
    data_size: int  # bytes of the data blocks
    zoom_items: list[np.ndarray]  # LEAF_ITEM per level
    zoom_sizes: list[int]  # bytes of each level's blocks
    edges: list[list[tuple]]  # EDGE_RECORD rows per level, in order, as tuples
    largest: int
    blocks_crc: int


def _read_part_index(handle, path: str, checksum: int, bin_size: int, n_levels: int) -> _PartIndex:
    """Read and check a part's header and index from the open file ``handle`` (positioned at the part's first
    byte, the part running to the file's end; left where its blocks begin)."""
    def corrupt(field: str, message: str) -> PredictdInputError:
        return PredictdInputError(path, field, f"{message}: not a complete bigWig part (rewrite it)")

    start = handle.tell()
    size = handle.seek(0, io.SEEK_END) - start
    handle.seek(start)
    header = handle.read(PART_HEADER.size)
    if len(header) < PART_HEADER.size or header[:8] != PART_MAGIC:
        raise corrupt("header", "no part header")
    _, part_bin_size, part_checksum, part_levels, largest, blocks_crc, index_crc, index_offset = \
        PART_HEADER.unpack(header)
    if (part_bin_size, part_checksum, part_levels) != (bin_size, checksum, n_levels):
        raise PredictdInputError(path, "header", f"written for other contigs or bin size (bin size {part_bin_size},"
                                                 f" {part_levels} zoom levels) than the file assembled "
                                                 f"({bin_size}, {n_levels})")
    if not PART_HEADER.size <= index_offset <= size - PART_INDEX.size - 8 * n_levels:
        raise corrupt("index", f"index offset {index_offset} outside the file ({size} bytes)")
    handle.seek(start + index_offset)
    index_bytes = handle.read()
    if isal_zlib.crc32(index_bytes) != index_crc:
        raise corrupt("index", "index checksum mismatch")
    summary = PartSummary(*PART_INDEX.unpack_from(index_bytes))
    position = PART_INDEX.size
    counts = [summary.data_blocks, *struct.unpack_from(f"<{n_levels}Q", index_bytes, position)]
    position += 8 * n_levels
    n_items, n_edges = sum(counts), summary.edges
    if position + LEAF_ITEM.itemsize * n_items + EDGE_RECORD.itemsize * n_edges != len(index_bytes):
        raise corrupt("index", f"index of {len(index_bytes)} bytes does not hold what it counts")
    items = np.frombuffer(index_bytes, LEAF_ITEM, n_items, position)
    bounds = [0]
    for count in counts:
        bounds.append(bounds[-1] + count)
    block_sizes = items["size"].tolist()
    sizes = [sum(block_sizes[first:last]) for first, last in zip(bounds[:-1], bounds[1:])]  # data, each level
    if PART_HEADER.size + sum(sizes) != index_offset:
        raise corrupt("index", "its blocks do not end where the index starts")
    edges: list[list[tuple]] = [[] for _ in range(n_levels)]
    for row in np.frombuffer(index_bytes, EDGE_RECORD, n_edges, position + LEAF_ITEM.itemsize * n_items).tolist():
        edges[row[0]].append(row)  # rows are in level order
    handle.seek(start + PART_HEADER.size)
    return _PartIndex(summary, items[:bounds[1]], sizes[0],
                      [items[first:last] for first, last in zip(bounds[1:-1], bounds[2:])], sizes[1:], edges, largest,
                      blocks_crc)


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
        """Deflate the merged records (blocks of at most :data:`RECORDS_PER_BLOCK`, never across copied blocks)
        after the copied ones; returns every block's leaf entry in genome order (offsets in the spool)."""
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


class Assembly:
    """The bigWig at ``path`` put together from :class:`BigWigPart` parts given one at a time, in genome order
    (:meth:`add`), and completed by :meth:`close`: :func:`assemble` for parts that arrive while others are still
    read (many tracks assembled side by side from one read of each chunk's bundle of parts).

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

    def __enter__(self) -> "Assembly":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()

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
        part = _read_part_index(handle, name, self._checksum, self._bin_size, len(self._levels))
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
    """Write the bigWig made of ``part_paths`` (:class:`BigWigPart` files, in genome order) at ``path``
    (:class:`Assembly`: blocks copied as bytes, records cut by part edges merged; on any error nothing is left
    at ``path`` and the error names the part).

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
