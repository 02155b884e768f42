"""bigWig zoom levels: their reductions, the summary records of bins (:class:`Summaries`) summed level by level,
and the records deflated into zoom blocks.

Zoom levels are 4x apart, starting where kent's rule puts them (:func:`zoom_reductions`). Zoom windows are
aligned to the start of each run of adjacent bins (whole contigs: to base 0), so a window never cuts a bin, each
level is summed from the level below (:func:`coarsen`), and the records hold float64 sums rounded once to the
format's float32 (:func:`zoom_blocks`). :class:`ZoomLevel` is one level as the one-pass writer builds it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from predictd_core.tracks.bigwig.format import RECORDS_PER_BLOCK, ZOOM_RECORD, Blocks, leaf_items

ZOOM_FACTOR = 4  # each zoom level's reduction is 4x the one below (kent's and libBigWig's)
MAX_ZOOM_LEVELS = 10


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


def zoom_blocks(summaries: Summaries, reduction: int, compress: Callable[[bytes], bytes],
                firsts: np.ndarray | None = None) -> Blocks:
    """The zoom blocks of finished records of a level of ``reduction`` bases,
    :data:`~predictd_core.tracks.bigwig.format.RECORDS_PER_BLOCK` a block (the last one shorter), or cut before the
    records ``firsts`` (increasing, from 0; at most :data:`~predictd_core.tracks.bigwig.format.RECORDS_PER_BLOCK`
    apart): each record's float64 sums are rounded once, to the format's float32."""
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
    items = leaf_items(records["chrom"][firsts], records["start"][firsts], records["chrom"][ends - 1],
                        records["end"][ends - 1], data)
    return Blocks(data, items, int((ends - firsts).max(initial=0)) * ZOOM_RECORD.itemsize)


class ZoomLevel:
    """One zoom level being written: its open record, finished records waiting for a block, and its
    compressed blocks (in memory, then in the side file).

    Level 0 takes every chunk's records as they come; a level above takes the records of the level below
    only as those go into blocks (1,024 at a time, and all at
    :meth:`~predictd_core.tracks.bigwig.writer.FixedStepBigWigWriter.close`), so the upper levels cost a Python
    call per 1,024 records, not per chunk.
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
        """Compress the finished records into blocks of :data:`~predictd_core.tracks.bigwig.format.RECORDS_PER_BLOCK`
        (``everything``: the last, shorter one too). Returns the records put in blocks (for the level above), or
        None."""
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
