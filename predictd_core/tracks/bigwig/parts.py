"""bigWig files made in parts: one track's bins over one range of genome bins, deflated where they are computed,
written as a part file (:class:`BigWigPart`) that :mod:`predictd_core.tracks.bigwig.assembly` copies into the
bigWig.

A *part* (:class:`BigWigPart`) is everything of one track over one contiguous range of genome bins (one store
chunk), in one file: its fixed-step data blocks, deflated, with their R-tree leaf entries; for every zoom level
the summary records that lie wholly inside the part, deflated into zoom blocks, with their leaf entries; the
records cut by the part's edges, kept as raw float64 partial summaries; and the part's total summary.

Zoom records are aligned to the start of each run of adjacent bins, and a run continues across part edges, so
a part must know where the run holding its first bin started (``run_origin``): the start of a contig (or of a
region, unless the region before it ends there with a full bin), or the bin after a narrow one. A record is
cut on the left when the part continues a run and its first bin is not at a record's start; on the right when
the part's last run may go on after it (its last bin is full and ends before its contig's end) and its last
bin does not end a record. Records cut on the right that nothing continues are complete after all: the
assembly writes them as they are.

Part file layout (little-endian): :data:`PART_HEADER`; the data blocks; each zoom level's blocks, level by
level; the index at the header's offset: one :data:`PART_INDEX`, the zoom block count per level (uint64),
the data blocks' :data:`~predictd_core.tracks.bigwig.format.LEAF_ITEM` entries (offsets in the part file),
the zoom blocks' entries, then the :data:`EDGE_RECORD` rows. The header holds CRC-32s of the blocks and of the
index, so a truncated or damaged part is refused by name (and the assembly leaves no file). Offsets are from
the part's first byte: a part may be written into an open file after other data (many parts one after another,
:mod:`predictd_core.impute.distributed`'s chunk bundles) and read back from a file positioned at its start, or
from its bytes (:func:`read_part_index`).
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO, Callable, NamedTuple

import numpy as np
from isal import isal_zlib

from predictd_core.errors import PredictdInputError
from predictd_core.tracks.bigwig.format import DEFAULT_COMPRESS, LEAF_ITEM, AtomicFile, ByteSink
from predictd_core.tracks.bigwig.writer import FixedStepRuns
from predictd_core.tracks.bigwig.zoom import ZOOM_FACTOR, Summaries, coarsen, zoom_blocks

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
IN_MEMORY = "<bigWig part>"  # the name errors give a part that has none (bytes, an anonymous file)


def contigs_checksum(names: list[str], lengths: list[int], bin_size: int) -> int:
    """CRC-32 of the contigs and bin size, stored in each part so that assembly refuses parts of another
    genome layout."""
    text = "".join(f"{name}\t{length}\n" for name, length in zip(names, lengths)) + f"bin_size\t{bin_size}\n"
    return isal_zlib.crc32(text.encode())


class _PartStream(ByteSink):
    """What :class:`BigWigPart` writes through when given an open file: the part is written from the file's
    position at opening (offsets counted from there), the file is left open at the part's end by
    :meth:`commit` and cut back to where the part began by :meth:`discard`. The interface of
    :class:`~predictd_core.tracks.bigwig.format.AtomicFile`."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, file.tell())

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
    """One track's bins over one contiguous range of genome bins, written as a part file for
    :func:`~predictd_core.tracks.bigwig.assembly.assemble`.

    Pieces come in genome order exactly as :class:`~predictd_core.tracks.bigwig.writer.FixedStepBigWigWriter`
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


class PartIndex(NamedTuple):
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


def read_part_index(handle, path: str, checksum: int, bin_size: int, n_levels: int) -> PartIndex:
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
    return PartIndex(summary, items[:bounds[1]], sizes[0],
                      [items[first:last] for first, last in zip(bounds[1:-1], bounds[2:])], sizes[1:], edges, largest,
                      blocks_crc)
