"""Write bigWig files of fixed-size bins with numpy, ISA-L's deflate and struct: no Python work per value.

A bigWig (UCSC's format: Kent et al. 2010, Bioinformatics 26:2204) holds, in file order: a 64-byte header;
a 24-byte header per zoom level; a 40-byte summary of all the data; a B+ tree of the contigs (name to id and
length); the data, as zlib-compressed blocks of one contig each; an R-tree ("cirTree") over those blocks; then
for every zoom level its compressed blocks of 32-byte summary records (bases covered, min, max, sum, sum of
squares over a window of ``reduction`` bases) and an R-tree over them; and the magic number again at the end.

Every data block written here is a fixed-step one (type 3: a 24-byte header, then the float32 values of bins
``step`` bases apart and ``span`` wide), so a value costs 4 bytes before compression, against 12 for the
(start, end, value) items of a bedGraph block. What is left per value is deflate and a few numpy passes.

The layout follows libBigWig and kent's wigToBigWig: data blocks of 32 KB uncompressed (8,186 values, as
libBigWig's; :data:`VALUES_PER_BLOCK` says why not kent's 1,024), 1,024 records per zoom block (kent's
``itemsPerSlot``), 256 children per R-tree and B+ tree node (kent's ``blockSize``), zoom levels 4x apart,
starting where kent's rule puts them (:func:`zoom_reductions`). Zoom windows are aligned to the start of each
run of adjacent bins (whole contigs: to base 0), so a window never cuts a bin, each level is summed from the
level below, and the records hold float64 sums rounded once to the format's float32.

Memory per open file stays small whatever the genome's length (thousands of tracks are written at once): data
blocks go to the file as they fill; the zoom levels' compressed blocks, which belong after the data and its
index, wait in a side file (``<path>.zooms.partial``) once they pass :data:`ZOOM_BYTES_IN_MEMORY`; what grows
is the data index, 32 bytes a block. The file is written as
``<path>.partial`` and renamed to ``path`` when complete.

The pieces are shared with :mod:`predictd_core.tracks.bigwig_parts`, which writes a track in parts (one per
range of bins, deflated where the range is computed) and assembles them by copying: :class:`FixedStepRuns`
lays appended bins into runs, data blocks (:func:`data_blocks`) and level-0 records; :func:`summarise_bins`,
:func:`coarsen` and :func:`zoom_blocks` make the zoom levels; :class:`BigWigFile` writes the header, trees and
zoom levels around the blocks.
"""

from __future__ import annotations

import os
import struct
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from isal import isal_zlib

from predictd_core.errors import PredictdInputError

BIGWIG_MAGIC = 0x888FFC26
CHROM_TREE_MAGIC = 0x78CA8C91
RTREE_MAGIC = 0x2468ACE0
VERSION = 4
FIXED_STEP = 3  # the data block type: values only, ``step`` apart, ``span`` wide

HEADER = struct.Struct("<IHHQQQHHQQIQ")  # magic, version, zoom levels, chrom tree, data, index, fields x2,
# autoSql, total summary, uncompressed buffer size, extension: 64 bytes
ZOOM_HEADER = struct.Struct("<IIQQ")  # reduction, reserved, data offset, index offset
TOTAL_SUMMARY = struct.Struct("<Qdddd")  # bases covered, min, max, sum, sum of squares
BLOCK_HEADER = struct.Struct("<IIIIIBBH")  # chrom id, start, end, step, span, type, reserved, item count
RTREE_HEADER = struct.Struct("<IIQIIIIQII")  # magic, block size, items, first chrom/base, last chrom/base,
# end of the data indexed, items per slot, reserved
CHROM_TREE_HEADER = struct.Struct("<IIIIQQ")  # magic, block size, key size, value size, items, reserved

ZOOM_RECORD = np.dtype([("chrom", "<u4"), ("start", "<u4"), ("end", "<u4"), ("valid", "<u4"),
                        ("min", "<f4"), ("max", "<f4"), ("sum", "<f4"), ("squares", "<f4")])
_BOUNDS = [("start_chrom", "<u4"), ("start", "<u4"), ("end_chrom", "<u4"), ("end", "<u4")]
LEAF_ITEM = np.dtype(_BOUNDS + [("offset", "<u8"), ("size", "<u8")])  # an R-tree leaf's entry: one block
BRANCH_ITEM = np.dtype(_BOUNDS + [("child", "<u8")])  # an R-tree inner node's entry: one child node

# Values per data block: a block fills 32 KB uncompressed, as libBigWig's do (kent's wigToBigWig puts 1,024):
# deflate has a fixed cost per call, so on the pilot track 4 KB blocks compress 1.7x slower than 32 KB ones and
# come out 12% larger (on noisy full-mantissa values the two cost about the same); and the index holds 32
# bytes per block in memory until the file closes (0.5 MB for hg19 at 25 bp, not 4 MB).
VALUES_PER_BLOCK = (32_768 - 24) // 4
RECORDS_PER_BLOCK = 1024  # summary records per zoom block (kent's and libBigWig's: 32 KB)
TREE_BLOCK_SIZE = 256  # children per R-tree / B+ tree node (kent's blockSize)
ZOOM_FACTOR = 4  # each zoom level's reduction is 4x the one below (kent's and libBigWig's)
MAX_ZOOM_LEVELS = 10
# Blocks are deflated by ISA-L (Intel's zlib-compatible deflate, `isal`) at its level 1: on 32 KB blocks of the
# pilot track and of full-mantissa imputed values it runs 7-10 ns a value against zlib level 1's 34-75, at the
# same size (bench/bigwig_write.py); any zlib inflates it, as every bigWig reader does. zlib's levels 2-3 saved
# under 3% of the bytes for 5-18% more time, its level 6 1-6% for 1.5-1.9x the time.
DEFAULT_COMPRESS: Callable[[bytes], bytes] = partial(isal_zlib.compress, level=1)
ZOOM_BYTES_IN_MEMORY = 1 << 16  # compressed zoom blocks kept in memory before they go to the side file


def zoom_reductions(contigs: list[tuple[str, int]], bin_size: int) -> list[int]:
    """The zoom levels' reductions (bases per summary record) for bins of ``bin_size`` over ``contigs``.

    kent's rule: the first level sums 10 items, doubled until its records (32 bytes, counted twice since they
    compress worse than the data) take less than half the data's bytes (4 per fixed-step value), here 40 bins;
    then levels 4x apart up to the one that sums the longest contig in one record (at most
    :data:`MAX_ZOOM_LEVELS`, and within 32 bits).
    """
    bins = 10
    while 2 * ZOOM_RECORD.itemsize / bins >= 4 / 2:
        bins *= 2
    longest = max(length for _, length in contigs)
    reductions = [bins * bin_size]
    while (len(reductions) < MAX_ZOOM_LEVELS and reductions[-1] < longest
           and reductions[-1] * ZOOM_FACTOR < 2 ** 32):
        reductions.append(reductions[-1] * ZOOM_FACTOR)
    return reductions


def check_contigs(path: str | os.PathLike, contigs: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    """The names and lengths of ``contigs`` (the file's contig ids are their places), checked for what the format
    needs: at least one, no name twice, lengths in [1, 2**32). Errors name ``path``, the file being written."""
    names = [str(name) for name, _ in contigs]
    lengths = [int(length) for _, length in contigs]
    if not names:
        raise PredictdInputError(str(path), "contigs", "no contigs given")
    if len(set(names)) < len(names):
        raise PredictdInputError(str(path), "contigs", "a contig is listed twice")
    if not all(0 < length < 2 ** 32 for length in lengths):
        raise PredictdInputError(str(path), "contigs", "contig lengths must be in [1, 2**32)")
    return names, lengths


class Summaries(NamedTuple):
    """Zoom records in the making, one entry per record, as columns.

    A record sums the bins [k m, (k + 1) m) of one run of adjacent bins (``record`` is k, m the level's bins
    per record): ``run`` numbers the run in the file, ``chrom`` is its contig id and ``origin`` its first
    base. ``bases`` is the bases covered; ``total`` and ``squares`` are sums weighted by bases, as the
    format's are.
    """

    run: np.ndarray  # int64
    chrom: np.ndarray  # int64
    origin: np.ndarray  # int64
    record: np.ndarray  # int64
    bases: np.ndarray  # int64
    low: np.ndarray  # float32
    high: np.ndarray  # float32
    total: np.ndarray  # float64
    squares: np.ndarray  # float64

    def take(self, index) -> "Summaries":
        """The entries at ``index`` (a slice or index array)."""
        return Summaries(*(column[index] for column in self))

    @staticmethod
    def join(parts: list["Summaries"]) -> "Summaries":
        """The entries of ``parts``, one after the other."""
        if len(parts) == 1:
            return parts[0]
        return Summaries(*(np.concatenate(columns) for columns in zip(*parts)))


def summarise_bins(values: np.ndarray, run: int, chrom: int, origin: int, first_bin: int, bins_per_record: int,
                   width: int) -> Summaries:
    """Zoom records of ``values`` (float32, one per bin, each ``width`` bases), the first being bin
    ``first_bin`` of run ``run`` (on contig ``chrom``, from base ``origin``), in records of ``bins_per_record``
    bins aligned to the run's start."""
    n = len(values)
    first_cut = -first_bin % bins_per_record
    cuts = np.arange(first_cut, n, bins_per_record, dtype=np.int64)
    if first_cut:
        cuts = np.concatenate((np.zeros(1, np.int64), cuts))
    wide = values.astype(np.float64)
    count = len(cuts)
    return Summaries(
        run=np.full(count, run, np.int64), chrom=np.full(count, chrom, np.int64),
        origin=np.full(count, origin, np.int64),
        record=(first_bin + cuts) // bins_per_record,
        bases=np.diff(np.append(cuts, n)) * width,
        low=np.minimum.reduceat(values, cuts),
        high=np.maximum.reduceat(values, cuts),
        total=np.add.reduceat(wide, cuts) * width,
        squares=np.add.reduceat(wide * wide, cuts) * width,
    )


def coarsen(summaries: Summaries, factor: int) -> Summaries:
    """The same records merged ``factor`` at a time: a run's records k factor ... k factor + factor - 1 make
    its record k of the level above (records of different runs never merge)."""
    record = summaries.record // factor
    starts = np.ones(len(record), bool)
    starts[1:] = (np.diff(record) != 0) | (np.diff(summaries.run) != 0)
    cuts = np.flatnonzero(starts)
    return Summaries(summaries.run[cuts], summaries.chrom[cuts], summaries.origin[cuts], record[cuts],
                     np.add.reduceat(summaries.bases, cuts), np.minimum.reduceat(summaries.low, cuts),
                     np.maximum.reduceat(summaries.high, cuts), np.add.reduceat(summaries.total, cuts),
                     np.add.reduceat(summaries.squares, cuts))


class Blocks(NamedTuple):
    """Compressed blocks meant to lie one after another in a file, with their R-tree leaf entries
    (:data:`LEAF_ITEM`; offsets counted from the first block's start) and the largest block's size before
    compression (the header's buffer size must hold any block)."""

    data: list[bytes]
    items: np.ndarray
    largest: int


def join_items(tables: list[np.ndarray]) -> np.ndarray:
    """R-tree leaf entries (:data:`LEAF_ITEM` arrays) one after another, as one array (joined as bytes:
    numpy's concatenate of structured arrays costs ~40 us a table in dtype promotion)."""
    return np.frombuffer(b"".join(table.tobytes() for table in tables), LEAF_ITEM).copy()


def _leaf_items(start_chrom, start, end_chrom, end, data: list[bytes]) -> np.ndarray:
    """R-tree leaf entries of ``data``'s blocks laid one after another from offset 0, bounded as given."""
    items = np.zeros(len(data), LEAF_ITEM)
    items["start_chrom"], items["start"], items["end_chrom"], items["end"] = start_chrom, start, end_chrom, end
    items["size"] = [len(block) for block in data]
    items["offset"] = np.cumsum(items["size"]) - items["size"]
    return items


def data_blocks(values: np.ndarray, chrom: int, start: int, bin_size: int, span: int,
                compress: Callable[[bytes], bytes]) -> Blocks:
    """Fixed-step data blocks of adjacent bins of one contig from ``start``: ``values`` (float32) are either
    whole blocks of :data:`VALUES_PER_BLOCK` or one block of fewer; bins are ``bin_size`` apart and ``span``
    wide (narrower than a bin only for a single last bin)."""
    per = min(VALUES_PER_BLOCK, len(values))
    count = len(values) // per
    starts = start + np.arange(count, dtype=np.int64) * (per * bin_size)
    ends = starts + (per - 1) * bin_size + span
    words = np.empty((count, BLOCK_HEADER.size // 4 + per), "<u4")  # each row: header, then values
    words[:, 0] = chrom
    words[:, 1] = starts
    words[:, 2] = ends
    words[:, 3] = bin_size
    words[:, 4] = span
    words[:, 5] = FIXED_STEP | per << 16  # type, reserved byte, item count
    words[:, 6:] = values.astype("<f4", copy=False).view("<u4").reshape(count, per)
    data = [compress(row) for row in words]
    return Blocks(data, _leaf_items(chrom, starts, chrom, ends, data), words.shape[1] * 4)


def zoom_blocks(summaries: Summaries, reduction: int, compress: Callable[[bytes], bytes],
                firsts: np.ndarray | None = None) -> Blocks:
    """The zoom blocks of finished records of a level of ``reduction`` bases, :data:`RECORDS_PER_BLOCK` a block
    (the last one shorter), or cut before the records ``firsts`` (increasing, from 0; at most
    :data:`RECORDS_PER_BLOCK` apart): each record's float64 sums are rounded once, to the format's float32."""
    n = len(summaries.record)
    records = np.empty(n, ZOOM_RECORD)
    starts = summaries.origin + summaries.record * reduction
    records["chrom"] = summaries.chrom
    records["start"] = starts
    records["end"] = starts + summaries.bases  # a run's bins are adjacent: a record ends where its data do
    records["valid"] = summaries.bases
    records["min"] = summaries.low
    records["max"] = summaries.high
    records["sum"] = summaries.total
    records["squares"] = summaries.squares
    if firsts is None:
        firsts = np.arange(0, n, RECORDS_PER_BLOCK)
    ends = np.append(firsts[1:], n)[:len(firsts)]  # no records: no blocks
    data = [compress(records[first:end]) for first, end in zip(firsts.tolist(), ends.tolist())]
    items = _leaf_items(records["chrom"][firsts], records["start"][firsts], records["chrom"][ends - 1],
                        records["end"][ends - 1], data)
    return Blocks(data, items, int((ends - firsts).max(initial=0)) * ZOOM_RECORD.itemsize)


def rtree_bytes(items: np.ndarray, offset: int, data_end: int, items_per_slot: int) -> bytes:
    """A cirTree over ``items`` (:data:`LEAF_ITEM`, one per block, in genome order), to be written at
    ``offset``; ``data_end`` is where the blocks indexed end.

    Nodes of :data:`TREE_BLOCK_SIZE` entries, level by level from the root; a level's last node holds what is
    left and is not padded (kent pads it; readers follow the child offsets and take either, and padding costs
    8 KB per tree, which small tracks' files would notice).
    """
    size = TREE_BLOCK_SIZE
    n = len(items)
    spans = [size]  # items under one node, per level from the leaves up
    while -(-n // spans[-1]) > 1:
        spans.append(spans[-1] * size)
    entry_sizes = [LEAF_ITEM.itemsize] + [BRANCH_ITEM.itemsize] * (len(spans) - 1)
    entry_counts = [n] + [-(-n // span) for span in spans[:-1]]  # per level: one entry per node below
    level_offsets = [0] * len(spans)
    position = offset + RTREE_HEADER.size
    for level in reversed(range(len(spans))):
        level_offsets[level] = position
        position += 4 * max(1, -(-entry_counts[level] // size)) + entry_counts[level] * entry_sizes[level]
    parts = []
    for level in reversed(range(len(spans))):
        if level == 0:
            entries = items
        else:  # one entry per node of the level below, bounded by the first and last item under it
            firsts = np.arange(0, n, spans[level - 1])
            lasts = np.minimum(firsts + spans[level - 1], n) - 1
            entries = np.zeros(len(firsts), BRANCH_ITEM)
            for name in ("start_chrom", "start"):
                entries[name] = items[name][firsts]
            for name in ("end_chrom", "end"):
                entries[name] = items[name][lasts]
            entries["child"] = level_offsets[level - 1] + np.arange(len(firsts)) * (4 + size * entry_sizes[level - 1])
        for first in range(0, max(1, len(entries)), size):
            node = entries[first:first + size]
            parts.append(struct.pack("<BBH", int(level == 0), 0, len(node)) + node.tobytes())
    if n:
        bounds = (int(items["start_chrom"][0]), int(items["start"][0]), int(items["end_chrom"][-1]),
                  int(items["end"][-1]))
    else:
        bounds = (0, 0, 0, 0)
    return RTREE_HEADER.pack(RTREE_MAGIC, size, n, *bounds, data_end, items_per_slot, 0) + b"".join(parts)


def chrom_tree_bytes(names: list[str], lengths: list[int], offset: int) -> bytes:
    """The B+ tree of contigs (header, then nodes level by level from the root), to be written at ``offset``:
    keys are the names,
    zero-padded and in byte order as kent's lookups need; values are the contig's id (its place in ``names``,
    the order of the data) and length.

    Nodes are not padded to the block size (kent pads them): libBigWig reads the nodes one after another,
    skipping inner nodes' entries, so padding would be read as nodes; kent's reader follows the child offsets
    and takes either.
    """
    keys = [name.encode() for name in names]
    key_size = max(len(key) for key in keys)
    order = sorted(range(len(keys)), key=lambda k: keys[k])
    n = len(keys)
    size = min(TREE_BLOCK_SIZE, n)
    spans = [size]  # items under one node, per level from the leaves up
    while -(-n // spans[-1]) > 1:
        spans.append(spans[-1] * size)
    slot = key_size + 8  # a key and (id, length), or a key and a child offset

    def node_size(level: int, node: int) -> int:
        return 4 + slot * min(size, -(-(n - node * spans[level]) // (spans[level - 1] if level else 1)))

    node_offsets = {}  # (level, node) -> offset in the file, root level first
    position = offset + CHROM_TREE_HEADER.size
    for level in reversed(range(len(spans))):
        for node in range(-(-n // spans[level])):
            node_offsets[level, node] = position
            position += node_size(level, node)
    parts = [CHROM_TREE_HEADER.pack(CHROM_TREE_MAGIC, size, key_size, 8, n, 0)]
    for level in reversed(range(len(spans))):
        for node in range(-(-n // spans[level])):
            first = node * spans[level]
            if level == 0:
                entries = [keys[k].ljust(key_size, b"\0") + struct.pack("<II", k, lengths[k])
                           for k in order[first:first + size]]
            else:
                below = spans[level - 1]
                children = range(first // below, min(-(-n // below), first // below + size))
                entries = [keys[order[child * below]].ljust(key_size, b"\0")
                           + struct.pack("<Q", node_offsets[level - 1, child]) for child in children]
            parts.append(struct.pack("<BBH", int(level == 0), 0, len(entries)) + b"".join(entries))
    return b"".join(parts)


class AtomicFile:
    """A file written front to back as ``<path>.partial``, renamed to ``path`` by :meth:`commit` (so a reader
    never sees it incomplete); :meth:`discard` removes it instead.

    ``offset`` is where the next :meth:`write` goes; ``crc``, when set to an int, is the running CRC-32 of
    what is written from then on (parts check their blocks with it).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self._file = open(self.partial, "wb")
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
        """Overwrite bytes written before (a header completed at the end), leaving :attr:`offset` as it is."""
        self._file.seek(offset)
        self._file.write(data)
        self._file.seek(self.offset)

    def commit(self) -> None:
        """Close the file and rename it to ``path``."""
        self._file.close()
        self.closed = True
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        """Close and remove the partial file (nothing appears at ``path``)."""
        if not self.closed:
            self._file.close()
            self.closed = True
        self.partial.unlink(missing_ok=True)


class BigWigFile(AtomicFile):
    """A bigWig laid out in file order by its writer: header, zoom headers and total summary (left blank until
    :meth:`finish`), the contig tree and the data's block count are written on opening; then the caller writes
    the data blocks (from :attr:`offset`), :meth:`write_data_index`, :meth:`write_zoom_level` for each level
    and :meth:`finish`. Both the one-pass writer and the assembly of parts write through it.

    Parameters
    ----------
    path : path-like
        Where the file appears when finished (``<path>.partial`` until then).
    names, lengths : lists
        The contigs (:func:`check_contigs`), in the order of their ids.
    n_levels : int
        Zoom headers to make room for: at most this many levels are written.
    """

    def __init__(self, path: str | os.PathLike, names: list[str], lengths: list[int], n_levels: int) -> None:
        super().__init__(path)
        self._summary_offset = HEADER.size + ZOOM_HEADER.size * n_levels
        self._chrom_tree_offset = self._summary_offset + TOTAL_SUMMARY.size
        chrom_tree = chrom_tree_bytes(names, lengths, self._chrom_tree_offset)
        self._data_offset = self._chrom_tree_offset + len(chrom_tree)
        self.write(bytes(self._chrom_tree_offset) + chrom_tree + bytes(8))  # the data blocks follow
        self._index_offset = 0
        self._zooms: list[tuple[int, int, int]] = []  # (reduction, data offset, index offset) per level written

    def write_data_index(self, items: np.ndarray) -> None:
        """Write the R-tree of the data blocks (:data:`LEAF_ITEM`, in genome order, offsets in this file)."""
        self._index_offset = self.offset
        self.write(rtree_bytes(items, self.offset, self.offset, 1))

    def write_zoom_level(self, reduction: int, chunks, items: np.ndarray) -> None:
        """Write a zoom level: its block count, its blocks (the bytes of ``chunks``, an iterable of bytes, one
        after another) and their R-tree (``items``: one per block, offsets counted from the first block)."""
        data_offset = self.offset
        self.write(struct.pack("<I", len(items)))
        for chunk in chunks:
            self.write(chunk)
        if self.offset - data_offset - 4 != int(items["size"].sum()):
            raise RuntimeError(f"{self.path}: zoom level {reduction}: blocks and index disagree on their size")
        items = items.copy()
        items["offset"] += data_offset + 4
        index_offset = self.offset
        self.write(rtree_bytes(items, index_offset, index_offset, RECORDS_PER_BLOCK))
        self._zooms.append((reduction, data_offset, index_offset))

    def finish(self, n_blocks: int, summary: tuple[int, float, float, float, float], largest: int) -> None:
        """Complete the header (``n_blocks`` data blocks; ``summary``: bases covered, min, max, sum, sum of
        squares; ``largest``: the largest block uncompressed) and rename the file into place."""
        self.write(struct.pack("<I", BIGWIG_MAGIC))
        summary_offset = self._summary_offset if n_blocks else 0
        self.patch(0, HEADER.pack(BIGWIG_MAGIC, VERSION, len(self._zooms), self._chrom_tree_offset,
                                  self._data_offset, self._index_offset, 0, 0, 0, summary_offset, largest, 0)
                   + b"".join(ZOOM_HEADER.pack(reduction, 0, data_offset, index_offset)
                              for reduction, data_offset, index_offset in self._zooms))
        if n_blocks:
            self.patch(self._summary_offset, TOTAL_SUMMARY.pack(*summary))
        self.patch(self._data_offset, struct.pack("<Q", n_blocks))
        self.commit()


class _ZoomLevel:
    """One zoom level being written: its open record, finished records waiting for a block, and its
    compressed blocks (in memory, then in the side file).

    Level 0 takes every chunk's records as they come; a level above takes the records of the level below
    only as those go into blocks (1,024 at a time, and all at :meth:`FixedStepBigWigWriter.close`), so the
    upper levels cost a Python call per 1,024 records, not per chunk.
    """

    def __init__(self, reduction: int, bin_size: int) -> None:
        self.reduction = reduction
        self.bins_per_record = reduction // bin_size
        self.open: Summaries | None = None  # the last record, which the next records may extend
        self.finished: list[Summaries] = []  # records complete, not yet in a block
        self.n_finished = 0
        self.blocks: list[bytes] = []  # compressed blocks in memory, after those in the side file
        self.spilled: list[tuple[int, int]] = []  # (offset, size) of blocks in the side file, in order
        self.sizes: list[int] = []  # every block's compressed size, in order
        self.bounds: list[np.ndarray] = []  # LEAF_ITEM of every block (offsets set at close)
        self.largest = 0  # largest uncompressed block, bytes

    def extend(self, summaries: Summaries) -> None:
        """Take the next records, in order (``summaries`` may be changed in place)."""
        if self.open is not None:
            if (self.open.run[0], self.open.record[0]) == (summaries.run[0], summaries.record[0]):
                summaries.bases[0] += self.open.bases[0]
                summaries.low[0] = min(summaries.low[0], self.open.low[0])
                summaries.high[0] = max(summaries.high[0], self.open.high[0])
                summaries.total[0] += self.open.total[0]
                summaries.squares[0] += self.open.squares[0]
            else:
                self._finish(self.open)
        self._finish(summaries.take(slice(0, -1)))
        self.open = summaries.take(slice(-1, None))

    def end_run(self) -> None:
        """No more records extend the open one."""
        if self.open is not None:
            self._finish(self.open)
            self.open = None

    def _finish(self, summaries: Summaries) -> None:
        if len(summaries.record):
            self.finished.append(summaries)
            self.n_finished += len(summaries.record)

    def make_blocks(self, compress: Callable[[bytes], bytes], everything: bool) -> Summaries | None:
        """Compress the finished records into blocks of :data:`RECORDS_PER_BLOCK` (``everything``: the last,
        shorter one too). Returns the records put in blocks (for the level above), or None."""
        if self.n_finished < RECORDS_PER_BLOCK and not (everything and self.n_finished):
            return None
        finished = Summaries.join(self.finished)
        n = len(finished.record) if everything else len(finished.record) // RECORDS_PER_BLOCK * RECORDS_PER_BLOCK
        blocked = finished.take(slice(0, n))
        rest = finished.take(slice(n, None))
        self.finished, self.n_finished = ([rest], len(rest.record)) if len(rest.record) else ([], 0)
        blocks = zoom_blocks(blocked, self.reduction, compress)
        self.blocks += blocks.data
        self.sizes += blocks.items["size"].tolist()
        self.bounds.append(blocks.items)
        self.largest = max(self.largest, blocks.largest)
        return blocked


class FixedStepRuns:
    """Bins of one track appended in genome order, laid into runs of adjacent bins, fixed-step data blocks,
    level-0 zoom records and the total summary: what a bigWig writer (:class:`FixedStepBigWigWriter`) and a
    part of one (:class:`predictd_core.tracks.bigwig_parts.BigWigPart`) share.

    A subclass opens ``self._out`` (an :class:`AtomicFile`, at the offset where data blocks go) and says where
    each piece's level-0 records go (:meth:`_take_summaries`) and what a run's end means for them
    (:meth:`_end_zoom_run`), then completes the file in ``close``. Values are float32 as the format stores
    them and must be finite (imputed signal is): a NaN or infinity raises. Use as a context manager to have
    the partial files removed if the block raises.
    """

    _out: AtomicFile

    def __init__(self, path: str | os.PathLike, contigs: list[tuple[str, int]], bin_size: int,
                 compress: Callable[[bytes], bytes]) -> None:
        self.path = Path(path)
        self.bin_size, self.compress = int(bin_size), compress
        self._names, self._lengths = check_contigs(self.path, contigs)
        if self.bin_size <= 0:
            raise PredictdInputError(str(self.path), "bin_size", f"must be positive, got {bin_size}")
        self._ids = {name: k for k, name in enumerate(self._names)}
        self._reductions = zoom_reductions(list(zip(self._names, self._lengths)), self.bin_size)
        self._block_items: list[np.ndarray] = []  # LEAF_ITEM of the data blocks written (offsets in the file)
        self._n_blocks = 0
        self._largest_block = 0
        # the run of adjacent bins being written, and its values not yet in a block
        self._run, self._run_chrom, self._run_start, self._run_bins, self._run_open = -1, -1, 0, 0, False
        self._waiting = np.zeros(0, np.float32)
        self._last = (-1, 0)  # (contig id, end) of the data written so far
        self._bases, self._sum, self._squares = 0, 0.0, 0.0
        self._low, self._high = np.inf, -np.inf
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()

    def close(self) -> None:  # pragma: no cover - every subclass completes its own file
        raise NotImplementedError

    def discard(self) -> None:
        """Stop writing and remove the partial file (nothing appears at ``path``)."""
        self._closed = True
        self._out.discard()

    @property
    def summary(self) -> tuple[int, float, float, float, float]:
        """Bases covered, min, max, sum and sum of squares (sums weighted by bases) of the data so far."""
        return self._bases, float(self._low), float(self._high), self._sum, self._squares

    def add(self, contig: str, start: int, values: np.ndarray) -> None:
        """Write bins of :attr:`bin_size` from ``start`` on ``contig``, one per value (1-D, float32 or
        converted), after everything written so far."""
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.ndim != 1:
            raise ValueError(f"{self.path}: values must be 1-D, got shape {values.shape}")
        if len(values):
            self._start_or_continue(contig, int(start), int(start) + len(values) * self.bin_size)
            self._append(values, self.bin_size)

    def add_interval(self, contig: str, start: int, end: int, value: float) -> None:
        """Write one bin ``[start, end)`` narrower than :attr:`bin_size`: the last bin of a contig (or region)
        whose length is not a multiple of it. It ends its run: data after it start a new one."""
        start, end = int(start), int(end)
        if not 0 < end - start <= self.bin_size:
            raise PredictdInputError(str(self.path), f"{contig}:{start}-{end}",
                                     f"an interval must be 1 to {self.bin_size} bases wide")
        self._start_or_continue(contig, start, end)
        self._append(np.array([value], np.float32), end - start)
        self._end_run()

    def _start_or_continue(self, contig: str, start: int, end: int) -> None:
        """Continue the current run if ``start`` follows it on its contig, else end it and start another."""
        chrom = self._ids.get(contig)
        if chrom is None:
            raise PredictdInputError(str(self.path), "contig", f"{contig!r} is not among the file's contigs")
        if start < 0 or end > self._lengths[chrom]:
            raise PredictdInputError(str(self.path), f"{contig}:{start}-{end}",
                                     f"outside the contig (length {self._lengths[chrom]})")
        if (self._run_open and chrom == self._run_chrom
                and start == self._run_start + self._run_bins * self.bin_size):
            return
        self._end_run()
        if (chrom, start) < self._last:
            last_chrom, last_end = self._last
            raise PredictdInputError(str(self.path), f"{contig}:{start}",
                                     f"bins must come in genome order without overlap; the last written ended "
                                     f"at {self._names[last_chrom]}:{last_end}")
        self._run, self._run_chrom, self._run_start, self._run_bins = self._run + 1, chrom, start, 0
        self._run_open = True

    def _append(self, values: np.ndarray, width: int) -> None:
        """Values of the current run's next bins, each ``width`` bases (the bin size, or narrower for a last
        bin)."""
        summaries = summarise_bins(values, self._run, self._run_chrom, self._run_start, self._run_bins,
                                   self._reductions[0] // self.bin_size, width)
        low, high = float(summaries.low.min()), float(summaries.high.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            position = self._run_start + (self._run_bins + bad) * self.bin_size
            raise PredictdInputError(str(self.path), f"{self._names[self._run_chrom]}:{position}",
                                     f"values must be finite, got {values[bad]}")
        self._write_data(values, width)
        self._bases += int(summaries.bases.sum())
        self._sum += float(summaries.total.sum())
        self._squares += float(summaries.squares.sum())
        self._low, self._high = min(self._low, low), max(self._high, high)
        self._run_bins += len(values)
        self._last = (self._run_chrom, self._run_start + (self._run_bins - 1) * self.bin_size + width)
        self._take_summaries(summaries)

    def _take_summaries(self, summaries: Summaries) -> None:  # pragma: no cover - subclasses say
        """Level-0 zoom records of the piece just appended (the first may continue the last one taken)."""
        raise NotImplementedError

    def _end_zoom_run(self) -> None:
        """The current run has ended: no record taken later continues its last one."""

    def _write_data(self, values: np.ndarray, width: int) -> None:
        """Put the run's next values into fixed-step blocks of :data:`VALUES_PER_BLOCK` and write the full ones
        (a value narrower than a bin gets a block of its own)."""
        if width != self.bin_size:
            self._flush_waiting()
            self._write_blocks(values, self._run_start + self._run_bins * self.bin_size, width)
            return
        waiting = len(self._waiting)
        start = self._run_start + (self._run_bins - waiting) * self.bin_size
        if waiting:
            values = np.concatenate((self._waiting, values))
        full = len(values) // VALUES_PER_BLOCK * VALUES_PER_BLOCK
        if full:
            self._write_blocks(values[:full], start, self.bin_size)
        self._waiting = values[full:].copy()  # the caller may reuse its buffer

    def _flush_waiting(self) -> None:
        """Write the run's values that wait for a full block as a shorter block."""
        if len(self._waiting):
            start = self._run_start + (self._run_bins - len(self._waiting)) * self.bin_size
            self._write_blocks(self._waiting, start, self.bin_size)
            self._waiting = np.zeros(0, np.float32)

    def _write_blocks(self, values: np.ndarray, start: int, span: int) -> None:
        """Compress and write the run's next values from ``start`` (:func:`data_blocks`)."""
        blocks = data_blocks(values, self._run_chrom, start, self.bin_size, span, self.compress)
        blocks.items["offset"] += self._out.offset
        self._out.write(b"".join(blocks.data))
        self._block_items.append(blocks.items)
        self._n_blocks += len(blocks.items)
        self._largest_block = max(self._largest_block, blocks.largest)

    def _end_run(self) -> None:
        """End the current run: its waiting values are written and its last zoom record is finished."""
        if not self._run_open:
            return
        self._flush_waiting()
        self._end_zoom_run()
        self._run_open = False

    def _data_items(self) -> np.ndarray:
        """The R-tree leaf entries of every data block written, in order."""
        return join_items(self._block_items)


class FixedStepBigWigWriter(FixedStepRuns):
    """A bigWig of fixed-size bins, appended run by run in genome order.

    Parameters
    ----------
    path : path-like
        The file to write; it appears only when :meth:`close` has completed it (``<path>.partial`` until then).
    contigs : list of (name, length)
        Every contig of the genome, in the order the data will come (the file's contig ids); contigs given no
        data are listed too, as genome browsers expect.
    bin_size : int
        Bases per bin: every value written by :meth:`add` covers this many.
    compress : callable, bytes -> bytes
        The zlib-format deflate of every block (:data:`DEFAULT_COMPRESS`).

    Values are float32 as the format stores them and must be finite (imputed signal is): a NaN or infinity
    raises. Use as a context manager to have the partial files removed if the block raises.
    """

    def __init__(self, path: str | os.PathLike, contigs: list[tuple[str, int]], bin_size: int,
                 compress: Callable[[bytes], bytes] = DEFAULT_COMPRESS) -> None:
        super().__init__(path, contigs, bin_size, compress)
        self._side = self.path.with_name(self.path.name + ".zooms.partial")
        self._levels = [_ZoomLevel(reduction, self.bin_size) for reduction in self._reductions]
        self._out = BigWigFile(self.path, self._names, self._lengths, len(self._levels))
        self._spilled_bytes = 0  # size of the side file
        self._zoom_bytes = 0  # compressed zoom blocks held in memory

    def _take_summaries(self, summaries: Summaries) -> None:
        self._levels[0].extend(summaries)
        self._make_zoom_blocks(everything=False)

    def _end_zoom_run(self) -> None:
        self._levels[0].end_run()

    def _make_zoom_blocks(self, everything: bool) -> None:
        """Put the zoom levels' finished records into blocks, level by level, each level's blocked records
        going up to the next (``everything``: the file is complete, every record is finished)."""
        for index, level in enumerate(self._levels):
            if everything:
                level.end_run()
            blocked = level.make_blocks(self.compress, everything)
            if blocked is None:
                if everything:
                    continue
                break
            self._zoom_bytes += sum(level.sizes[-len(level.bounds[-1]):])
            if index + 1 < len(self._levels):
                self._levels[index + 1].extend(coarsen(blocked, ZOOM_FACTOR))
        if self._zoom_bytes > ZOOM_BYTES_IN_MEMORY and not everything:
            self._spill()

    def _spill(self) -> None:
        """Move the zoom blocks held in memory to the side file."""
        with open(self._side, "ab") as side:
            for level in self._levels:
                for data in level.blocks:
                    level.spilled.append((self._spilled_bytes, len(data)))
                    side.write(data)
                    self._spilled_bytes += len(data)
                level.blocks = []
        self._zoom_bytes = 0

    def close(self) -> None:
        """Write the index, the zoom levels and the header, and rename the file into place."""
        if self._closed:
            return
        self._end_run()
        self._make_zoom_blocks(everything=True)
        levels = self._levels if self._n_blocks else []  # no data: no zoom levels
        self._out.write_data_index(self._data_items())
        for level in levels:
            items = join_items(level.bounds)
            items["offset"] = np.cumsum(items["size"]) - items["size"]
            self._out.write_zoom_level(level.reduction, self._zoom_chunks(level), items)
        largest = max([self._largest_block] + [level.largest for level in levels])
        self._out.finish(self._n_blocks, self.summary, largest)
        self._closed = True
        self._side.unlink(missing_ok=True)

    def discard(self) -> None:
        """Stop writing and remove the partial files (the file at ``path`` is not made)."""
        super().discard()
        self._side.unlink(missing_ok=True)

    def _zoom_chunks(self, level: _ZoomLevel):
        """A zoom level's compressed blocks in order: those in the side file, then those in memory."""
        if level.spilled:
            with open(self._side, "rb") as side:
                for offset, size in level.spilled:
                    side.seek(offset)
                    yield side.read(size)
        yield from level.blocks
