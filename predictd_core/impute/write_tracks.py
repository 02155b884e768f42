"""Write imputed signal as bigWig tracks a genome browser opens (-log10 p scale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyBigWig

from predictd_core.tracks.genome import GenomeBins


def to_pvalue_scale(arcsinh_signal: np.ndarray) -> np.ndarray:
    """Back to -log10 p: negatives clipped to 0 first (as PREDICTD's ``enforce_nonegs``), then sinh."""
    return np.sinh(np.maximum(arcsinh_signal, 0.0))


class BigWigWriter:
    """Append bins chunk by chunk, in genome order, to one bigWig with the compendium's contigs.

    Runs of full-width adjacent bins are written as fixed-step entries; a shorter last bin of a
    region is written as its own interval, so the file has exactly the input's bin layout.
    """

    def __init__(self, path: Path, bins: GenomeBins) -> None:
        self.path, self.bins = Path(path), bins
        self._file = pyBigWig.open(str(self.path), "w")
        self._file.addHeader(list(bins.contigs), maxZooms=10)

    def add(self, lo: int, hi: int, values: np.ndarray) -> None:
        """Write bins ``[lo, hi)`` with ``values`` (shape (hi - lo,), -log10 p scale)."""
        values = np.asarray(values, dtype=np.float64)
        size = self.bins.bin_size
        for contig, start, end, first, last in self.bins.runs(lo, hi):
            n_full = (end - start) // size
            if n_full:
                self._file.addEntries(contig, start, values=values[first - lo:first - lo + n_full],
                                      span=size, step=size)
            if first + n_full < last:
                self._file.addEntries([contig], [start + n_full * size], ends=[end],
                                      values=[float(values[last - 1 - lo])])

    def close(self) -> None:
        self._file.close()
