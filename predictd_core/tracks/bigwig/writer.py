"""Write bigWig files of fixed-size bins with numpy, ISA-L's deflate and struct: no Python work per value.

Every data block written here is a fixed-step one (type 3: a 24-byte header, then the float32 values of bins
``step`` bases apart and ``span`` wide), so a value costs 4 bytes before compression, against 12 for the
(start, end, value) items of a bedGraph block. What is left per value is deflate and a few numpy passes. Data
blocks hold 32 KB uncompressed (8,186 values, as libBigWig's; :data:`VALUES_PER_BLOCK` says why not kent's
1,024); the file layout is :mod:`predictd_core.tracks.bigwig.format`'s, the zoom levels
:mod:`predictd_core.tracks.bigwig.zoom`'s.

Memory per open file stays small whatever the genome's length (thousands of tracks are written at once): data
blocks go to the file as they fill; the zoom levels' compressed blocks, which belong after the data and its
index, wait in a side file (``<path>.zooms.partial``) once they pass :data:`ZOOM_BYTES_IN_MEMORY`; what grows
is the data index, 32 bytes a block. The file is written as
``<path>.partial`` and renamed to ``path`` when complete.

The pieces are shared with :mod:`predictd_core.tracks.bigwig.parts`, which writes a track in parts (one per
range of bins, deflated where the range is computed), assembled by copying
(:mod:`predictd_core.tracks.bigwig.assembly`): :class:`FixedStepRuns` lays appended bins into runs, data blocks
(:func:`data_blocks`) and level-0 records; :func:`~predictd_core.tracks.bigwig.zoom.summarise_bins`,
:func:`~predictd_core.tracks.bigwig.zoom.coarsen` and :func:`~predictd_core.tracks.bigwig.zoom.zoom_blocks`
make the zoom levels; :class:`~predictd_core.tracks.bigwig.format.BigWigFile` writes the header, trees and
zoom levels around the blocks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from predictd_core.errors import PredictdInputError
from predictd_core.tracks.bigwig.format import (
    BLOCK_HEADER, DEFAULT_COMPRESS, FIXED_STEP, AtomicFile, BigWigFile, Blocks, CloseOrDiscard, check_contigs,
    join_items, leaf_items)
from predictd_core.tracks.bigwig.zoom import (
    ZOOM_FACTOR, Summaries, ZoomLevel, coarsen, summarise_bins, zoom_reductions)

# Values per data block: a block fills 32 KB uncompressed, as libBigWig's do (kent's wigToBigWig puts 1,024):
# deflate has a fixed cost per call, so on the pilot track 4 KB blocks compress 1.7x slower than 32 KB ones and
# come out 12% larger (on noisy full-mantissa values the two cost about the same); and the index holds 32
# bytes per block in memory until the file closes (0.5 MB for hg19 at 25 bp, not 4 MB).
VALUES_PER_BLOCK = (32_768 - 24) // 4
ZOOM_BYTES_IN_MEMORY = 1 << 16  # compressed zoom blocks kept in memory before they go to the side file


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
    return Blocks(data, leaf_items(chrom, starts, chrom, ends, data), words.shape[1] * 4)


class FixedStepRuns(CloseOrDiscard):
    """Bins of one track appended in genome order, laid into runs of adjacent bins, fixed-step data blocks,
    level-0 zoom records and the total summary: what a bigWig writer (:class:`FixedStepBigWigWriter`) and a
    part of one (:class:`~predictd_core.tracks.bigwig.parts.BigWigPart`) share.

    A subclass opens ``self._out`` (an :class:`~predictd_core.tracks.bigwig.format.AtomicFile`, at the offset
    where data blocks go) and says where each piece's level-0 records go (:meth:`_take_summaries`) and what a
    run's end means for them (:meth:`_end_zoom_run`), then completes the file in ``close``. Values are float32
    as the format stores them and must be finite (imputed signal is): a NaN or infinity raises. Use as a context
    manager to have the partial files removed if the block raises.
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
        The zlib-format deflate of every block (:data:`~predictd_core.tracks.bigwig.format.DEFAULT_COMPRESS`).

    Values are float32 as the format stores them and must be finite (imputed signal is): a NaN or infinity
    raises. Use as a context manager to have the partial files removed if the block raises.
    """

    def __init__(self, path: str | os.PathLike, contigs: list[tuple[str, int]], bin_size: int,
                 compress: Callable[[bytes], bytes] = DEFAULT_COMPRESS) -> None:
        super().__init__(path, contigs, bin_size, compress)
        self._side = self.path.with_name(self.path.name + ".zooms.partial")
        self._levels = [ZoomLevel(reduction, self.bin_size) for reduction in self._reductions]
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

    def _zoom_chunks(self, level: ZoomLevel):
        """A zoom level's compressed blocks in order: those in the side file, then those in memory."""
        if level.spilled:
            with open(self._side, "rb") as side:
                for offset, size in level.spilled:
                    side.seek(offset)
                    yield side.read(size)
        yield from level.blocks
