"""The bigWig file layout: magic numbers, header structs and record dtypes, the contig B+ tree and R-trees as
bytes, and the file laid out in order around its blocks (:class:`BigWigFile`, written through :class:`AtomicFile`).

A bigWig (UCSC's format: Kent et al. 2010, Bioinformatics 26:2204) holds, in file order: a 64-byte header;
a 24-byte header per zoom level; a 40-byte summary of all the data; a B+ tree of the contigs (name to id and
length); the data, as zlib-compressed blocks of one contig each; an R-tree ("cirTree") over those blocks; then
for every zoom level its compressed blocks of 32-byte summary records (bases covered, min, max, sum, sum of
squares over a window of ``reduction`` bases) and an R-tree over them; and the magic number again at the end.

The layout follows libBigWig and kent's wigToBigWig: 1,024 records per zoom block (kent's ``itemsPerSlot``),
256 children per R-tree and B+ tree node (kent's ``blockSize``). What fills the blocks is the other modules':
the data blocks (:mod:`predictd_core.tracks.bigwig.writer`) and the zoom levels
(:mod:`predictd_core.tracks.bigwig.zoom`). Both the one-pass writer and the assembly of parts
(:mod:`predictd_core.tracks.bigwig.assembly`) write the file through :class:`BigWigFile`.
"""

from __future__ import annotations

import os
import struct
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable, NamedTuple

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

RECORDS_PER_BLOCK = 1024  # summary records per zoom block (kent's and libBigWig's: 32 KB)
TREE_BLOCK_SIZE = 256  # children per R-tree / B+ tree node (kent's blockSize)
# Blocks are deflated by ISA-L (Intel's zlib-compatible deflate, `isal`) at its level 1: on 32 KB blocks of the
# pilot track and of full-mantissa imputed values it runs 7-10 ns a value against zlib level 1's 34-75, at the
# same size (bench/bigwig_write.py); any zlib inflates it, as every bigWig reader does. zlib's levels 2-3 saved
# under 3% of the bytes for 5-18% more time, its level 6 1-6% for 1.5-1.9x the time.
# The same block's deflate is not always the same bytes in two processes (seen once: 3 small zoom blocks of
# one track, inflating to the same records), so two runs' files agree block for block, inflated, not byte
# for byte.
DEFAULT_COMPRESS: Callable[[bytes], bytes] = partial(isal_zlib.compress, level=1)


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


def leaf_items(start_chrom, start, end_chrom, end, data: list[bytes]) -> np.ndarray:
    """R-tree leaf entries of ``data``'s blocks laid one after another from offset 0, bounded as given."""
    items = np.zeros(len(data), LEAF_ITEM)
    items["start_chrom"], items["start"], items["end_chrom"], items["end"] = start_chrom, start, end_chrom, end
    items["size"] = [len(block) for block in data]
    items["offset"] = np.cumsum(items["size"]) - items["size"]
    return items


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


class CloseOrDiscard:
    """As a context manager: :meth:`close` when the block ends normally, :meth:`discard` when it raises (so a
    failed write leaves no file behind)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


class ByteSink:
    """Bytes appended to an open binary file from position ``start`` on: ``offset`` is where the next
    :meth:`write` goes, counted from ``start``; ``crc``, when set to an int, is the running CRC-32 of what is
    written from then on (parts check their blocks with it)."""

    def __init__(self, file: BinaryIO, start: int = 0) -> None:
        self._file, self._start = file, start
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
        self._file.seek(self._start + offset)
        self._file.write(data)
        self._file.seek(self._start + self.offset)


class AtomicFile(ByteSink):
    """A file written front to back as ``<path>.partial``, renamed to ``path`` by :meth:`commit` (so a reader
    never sees it incomplete); :meth:`discard` removes it instead."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        super().__init__(open(self.partial, "wb"))

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
