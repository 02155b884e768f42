"""Annotation BEDs (promoters, genes, enhancers) as boolean masks over the modelled genome bins.

A bin belongs to a region set when it overlaps any interval by at least 1 bp. Annotation BEDs cover
the whole genome while a run may model only some regions, so intervals on contigs or stretches that
are not modelled are ignored rather than refused.
"""

from __future__ import annotations

import os

import numpy as np

from predictd_core.errors import PredictdInputError
from predictd_core.io import read_text
from predictd_core.tracks.genome import GenomeBins

_HEADER_PREFIXES = ("#", "track", "browser")


def read_bed_mask(path: str | os.PathLike, bins: GenomeBins, field: str) -> np.ndarray:
    """Mark every genome bin that overlaps an interval of a BED file.

    Parameters
    ----------
    path : str or PathLike
        BED file; the first three columns (contig, 0-based start, end exclusive) are used, more
        are allowed. Blank, ``#``, ``track`` and ``browser`` lines are skipped.
    bins : GenomeBins
        The modelled bins; the mask follows their global order.
    field : str
        The config field that named ``path`` (e.g. ``"evaluation.promoters"``), for errors.

    Returns
    -------
    ndarray of shape (bins.n_bins,), dtype bool
        True for each bin overlapping at least one interval by at least 1 bp.

    Raises
    ------
    PredictdInputError
        The file is missing (field ``field``), or a line has fewer than 3 columns, non-integer or
        negative coordinates, or start > end (field ``"line N"``).
    """
    contigs, starts, ends = _read_intervals(path, field)
    lo, hi = _bin_ranges(bins, contigs, starts, ends)
    return _union_mask(bins.n_bins, lo, hi)


def _read_intervals(path: str | os.PathLike, field: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Contig names, starts and ends (int64) of every interval line of a BED file (local or at a URL)."""
    contigs: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for line_no, line in enumerate(read_text(path, field, "file not found").splitlines(), start=1):
        if not line.strip() or line.startswith(_HEADER_PREFIXES):
            continue
        fields = line.split(None, 3)  # a fourth column (a name) may hold spaces; only three are read
        if len(fields) < 3:
            raise PredictdInputError(str(path), f"line {line_no}", f"expected 'contig start end', got {line!r}")
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            raise PredictdInputError(str(path), f"line {line_no}",
                                     f"start and end must be integers, got {fields[1]!r} and {fields[2]!r}") from None
        if start < 0 or start > end:
            raise PredictdInputError(str(path), f"line {line_no}",
                                     f"expected 0 <= start <= end, got start {start} and end {end}")
        contigs.append(fields[0])
        starts.append(start)
        ends.append(end)
    return contigs, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def _bin_ranges(bins: GenomeBins, contigs: list[str], starts: np.ndarray, ends: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Global bin ranges ``[lo, hi)`` of every overlap (>= 1 bp) between an interval and a modelled span.

    Positions become one sorted key, ``contig index * stride + position`` with ``stride`` above every
    contig length, so one ``searchsorted`` finds each interval's spans on every contig at once.
    """
    index = {name: k for k, (name, _) in enumerate(bins.contigs)}
    lengths = np.array([length for _, length in bins.contigs], dtype=np.int64)
    stride = int(lengths.max()) + 1
    span_lo, span_hi, span_first = _span_keys(bins, index, stride)

    contig = np.array([index.get(name, -1) for name in contigs], dtype=np.int64)
    known = contig >= 0
    contig, starts, ends = contig[known], starts[known], ends[known]
    # Clipping to the contig keeps a key inside its contig's stride even for an over-long interval.
    lo = contig * stride + np.minimum(starts, lengths[contig])
    hi = contig * stride + np.minimum(ends, lengths[contig])
    first_span = np.searchsorted(span_hi, lo, side="right")  # the first span ending after the interval starts
    n_spans = np.maximum(np.searchsorted(span_lo, hi, side="left") - first_span, 0)

    interval = np.repeat(np.arange(lo.size), n_spans)
    span = first_span[interval] + np.arange(interval.size) - np.repeat(np.cumsum(n_spans) - n_spans, n_spans)
    overlap_lo = np.maximum(lo[interval], span_lo[span]) - span_lo[span]
    overlap_hi = np.minimum(hi[interval], span_hi[span]) - span_lo[span]
    # An empty interval (start == end) inside a span matches it but overlaps no base.
    keep = overlap_lo < overlap_hi
    span, overlap_lo, overlap_hi = span[keep], overlap_lo[keep], overlap_hi[keep]
    return (span_first[span] + overlap_lo // bins.bin_size,
            span_first[span] - (-overlap_hi // bins.bin_size))


def _span_keys(bins: GenomeBins, index: dict[str, int], stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start key, end key and first global bin of every non-empty span, sorted by start key."""
    runs = bins.runs(0, bins.n_bins)  # one run per non-empty span
    contig = np.array([index[run[0]] for run in runs], dtype=np.int64)
    lo = contig * stride + np.array([run[1] for run in runs], dtype=np.int64)
    hi = contig * stride + np.array([run[2] for run in runs], dtype=np.int64)
    first = np.array([run[3] for run in runs], dtype=np.int64)
    order = np.argsort(lo)  # spans are disjoint, so this sorts their end keys too
    return lo[order], hi[order], first[order]


def _union_mask(n_bins: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Boolean mask of the union of bin ranges ``[lo, hi)``.

    Overlapping and touching ranges are merged first, so every run start and end is a distinct
    position and a one-byte difference array suffices (124 MB for a whole genome, not 1 GB of counts).
    """
    if lo.size == 0:
        return np.zeros(n_bins, dtype=bool)
    order = np.argsort(lo, kind="stable")
    lo, reach = lo[order], np.maximum.accumulate(hi[order])
    starts_run = np.concatenate([[True], lo[1:] > reach[:-1]])
    ends_run = np.concatenate([starts_run[1:], [True]])
    steps = np.zeros(n_bins + 1, dtype=np.int8)
    steps[lo[starts_run]] = 1
    steps[reach[ends_run]] = -1
    return np.cumsum(steps[:-1], dtype=np.int8).astype(bool)
