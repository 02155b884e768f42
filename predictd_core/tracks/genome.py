"""Genome coordinates: chrom sizes, optional regions, and the fixed-size bins laid over them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictd_core.errors import PredictdInputError


def read_chrom_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Read a UCSC chrom.sizes file (``name<TAB>length``) into an ordered dict."""
    source = Path(path)
    if not source.is_file():
        raise PredictdInputError(str(path), "chrom_sizes", "chrom sizes file not found")
    sizes: dict[str, int] = {}
    for line_no, line in enumerate(source.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) <= 0:
            raise PredictdInputError(str(path), f"line {line_no}", f"expected 'name<TAB>length>0', got {line!r}")
        if fields[0] in sizes:
            raise PredictdInputError(str(path), f"line {line_no}", f"contig {fields[0]} listed twice")
        sizes[fields[0]] = int(fields[1])
    if not sizes:
        raise PredictdInputError(str(path), "chrom_sizes", "no contigs listed")
    return sizes


def read_regions(path: str | os.PathLike, chrom_sizes: dict[str, int]) -> list[tuple[str, int, int]]:
    """Read a BED of regions to model, sorted in chrom-sizes order, overlapping regions merged."""
    source = Path(path)
    if not source.is_file():
        raise PredictdInputError(str(path), "regions", "regions BED not found")
    regions: list[tuple[str, int, int]] = []
    for line_no, line in enumerate(source.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        try:
            chrom, start, end = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise PredictdInputError(str(path), f"line {line_no}", f"expected 'chrom start end', got {line!r}")
        if chrom not in chrom_sizes:
            raise PredictdInputError(str(path), f"line {line_no}: chrom", f"contig {chrom!r} is not in chrom sizes")
        if not 0 <= start < end <= chrom_sizes[chrom]:
            raise PredictdInputError(str(path), f"line {line_no}: start/end",
                                     f"[{start}, {end}) is not inside {chrom} (length {chrom_sizes[chrom]})")
        regions.append((chrom, start, end))
    if not regions:
        raise PredictdInputError(str(path), "regions", "no regions listed")
    order = {name: i for i, name in enumerate(chrom_sizes)}
    regions.sort(key=lambda r: (order[r[0]], r[1]))
    merged = [regions[0]]
    for chrom, start, end in regions[1:]:
        last = merged[-1]
        if chrom == last[0] and start <= last[2]:
            merged[-1] = (chrom, last[1], max(end, last[2]))
        else:
            merged.append((chrom, start, end))
    return merged


@dataclass(frozen=True)
class GenomeBins:
    """Fixed-size bins over whole contigs or over regions; the last bin of a region may be shorter.

    Attributes
    ----------
    contigs : tuple of (name, length)
        Every contig of the chrom sizes, in order (bigWig headers need them all).
    bin_size : int
    contig_index : ndarray of shape (n_bins,), int32
        Index into ``contigs`` of each bin.
    start, end : ndarray of shape (n_bins,), int64
        Half-open coordinates of each bin.
    """

    contigs: tuple[tuple[str, int], ...]
    bin_size: int
    contig_index: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @property
    def n_bins(self) -> int:
        return int(self.start.shape[0])

    @classmethod
    def build(cls, chrom_sizes: dict[str, int], bin_size: int,
              regions: list[tuple[str, int, int]] | None = None) -> "GenomeBins":
        """Lay bins of ``bin_size`` over every region (default: every whole contig)."""
        if bin_size <= 0:
            raise ValueError(f"bin_size must be positive, got {bin_size}")
        names = list(chrom_sizes)
        spans = regions if regions is not None else [(name, 0, size) for name, size in chrom_sizes.items()]
        contig_parts, start_parts, end_parts = [], [], []
        for chrom, lo, hi in spans:
            starts = np.arange(lo, hi, bin_size, dtype=np.int64)
            contig_parts.append(np.full(starts.shape, names.index(chrom), dtype=np.int32))
            start_parts.append(starts)
            end_parts.append(np.minimum(starts + bin_size, hi))
        return cls(tuple(chrom_sizes.items()), bin_size, np.concatenate(contig_parts),
                   np.concatenate(start_parts), np.concatenate(end_parts))

    def runs(self, lo: int, hi: int) -> list[tuple[str, int, int, int, int]]:
        """Split bins ``[lo, hi)`` into runs of adjacent bins on one contig.

        Returns tuples ``(contig, start, end, first_bin, last_bin_exclusive)``: one read each.
        """
        contig = self.contig_index[lo:hi]
        start, end = self.start[lo:hi], self.end[lo:hi]
        breaks = np.flatnonzero((contig[1:] != contig[:-1]) | (start[1:] != end[:-1])) + 1
        edges = np.concatenate([[0], breaks, [hi - lo]])
        return [(self.contigs[contig[a]][0], int(start[a]), int(end[b - 1]), lo + int(a), lo + int(b))
                for a, b in zip(edges[:-1], edges[1:])]
