"""Genome coordinates: chrom sizes, optional regions, and the fixed-size bins laid over them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from predictd_core.errors import PredictdInputError
from predictd_core.io import read_text


def read_chrom_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Read a UCSC chrom.sizes file (``name<TAB>length``; local or at a URL) into an ordered dict."""
    sizes: dict[str, int] = {}
    for line_no, line in enumerate(read_text(path, "chrom_sizes", "chrom sizes file not found").splitlines(),
                                   start=1):
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
    """Read a BED of regions to model (local or at a URL), sorted in chrom-sizes order, overlapping regions
    merged."""
    regions: list[tuple[str, int, int]] = []
    for line_no, line in enumerate(read_text(path, "regions", "regions BED not found").splitlines(), start=1):
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

    Held as spans (one row per region), not per bin, so memory follows the number of regions,
    not the genome length; coordinates of any bin range are computed on demand.

    Attributes
    ----------
    contigs : tuple of (name, length)
        Every contig of the chrom sizes, in order (bigWig headers need them all).
    bin_size : int
    spans : tuple of (contig index, start, end)
        The regions binned, in genome order (whole contigs by default).
    """

    contigs: tuple[tuple[str, int], ...]
    bin_size: int
    spans: tuple[tuple[int, int, int], ...]

    @cached_property
    def _first_bin(self) -> np.ndarray:
        """Index of each span's first bin, and the total at the end: shape (n_spans + 1,)."""
        counts = [-(-(end - start) // self.bin_size) for _, start, end in self.spans]
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @property
    def n_bins(self) -> int:
        return int(self._first_bin[-1])

    @classmethod
    def build(cls, chrom_sizes: dict[str, int], bin_size: int,
              regions: list[tuple[str, int, int]] | None = None) -> "GenomeBins":
        """Lay bins of ``bin_size`` over every region (default: every whole contig)."""
        if bin_size <= 0:
            raise ValueError(f"bin_size must be positive, got {bin_size}")
        names = list(chrom_sizes)
        spans = regions if regions is not None else [(name, 0, size) for name, size in chrom_sizes.items()]
        return cls(tuple(chrom_sizes.items()), bin_size,
                   tuple((names.index(chrom), int(lo), int(hi)) for chrom, lo, hi in spans))

    def runs(self, lo: int, hi: int) -> list[tuple[str, int, int, int, int]]:
        """Split bins ``[lo, hi)`` into runs of adjacent bins inside one span.

        Returns tuples ``(contig, start, end, first_bin, last_bin_exclusive)``: one read each.
        """
        first = self._first_bin
        found = []
        for k in range(int(np.searchsorted(first, lo, side="right")) - 1, len(self.spans)):
            if first[k] >= hi:
                break
            a, b = max(lo, int(first[k])), min(hi, int(first[k + 1]))
            if a >= b:
                continue
            contig, span_start, span_end = self.spans[k]
            start = span_start + (a - int(first[k])) * self.bin_size
            end = min(span_start + (b - int(first[k])) * self.bin_size, span_end)
            found.append((self.contigs[contig][0], start, end, a, b))
        return found

    def bin_range(self, contig: str, start: int, end: int) -> tuple[int, int]:
        """Bins ``[lo, hi)`` covering ``contig:start-end``, clipped to the one modelled span that holds ``start``.

        Raises ValueError when no modelled span holds ``start``.
        """
        names = [name for name, _ in self.contigs]
        for k, (index, span_start, span_end) in enumerate(self.spans):
            if names[index] == contig and span_start <= start < span_end:
                first = int(self._first_bin[k])
                lo = first + (start - span_start) // self.bin_size
                hi = first - (-(min(end, span_end) - span_start) // self.bin_size)
                return lo, hi
        raise ValueError(f"{contig}:{start}-{end} is outside the modelled bins")

    def coordinates(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Contig index (int32), start and end (int64) of every bin in ``[lo, hi)``."""
        names = [name for name, _ in self.contigs]
        parts = []
        for contig, start, end, _, _ in self.runs(lo, hi):
            starts = np.arange(start, end, self.bin_size, dtype=np.int64)
            parts.append((np.full(starts.shape, names.index(contig), dtype=np.int32), starts,
                          np.minimum(starts + self.bin_size, end)))
        if not parts:
            return np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return tuple(np.concatenate(column) for column in zip(*parts))
