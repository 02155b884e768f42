"""What the report draws of a scored target: a genome-browser window of its signal (:class:`TrackPanel`) and a
sample of its bins for the observed-against-imputed scatter.

All signal is on the model's arcsinh(-log10 p) scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictd_core.config import RunConfig, parse_region
from predictd_core.errors import PredictdInputError
from predictd_core.impute.outputs import spread_path
from predictd_core.io import is_file
from predictd_core.store.signal_store import SignalStore
from predictd_core.tracks.genome import GenomeBins
from predictd_core.tracks.readers import read_track_bins
from predictd_core.tracks.table import Track

SCATTER_BINS = 3000  # bins per target drawn in the report's scatter: enough to see the shape, small to embed
PANEL_BINS = 400  # a 10 kb browser window at 25 bp
MAX_PANELS = 5


@dataclass(frozen=True)
class TrackPanel:
    """One genome-browser window of one target: observed, imputed and baseline signal per bin.

    Attributes
    ----------
    target : str
        ``"CELL:ASSAY"``.
    contig : str
    start : int
        Start (bp) of the first bin.
    bin_size : int
        Bin width in bp.
    observed : ndarray of shape (n_bins,)
        Measured signal, NaN where there is no data.
    imputed : ndarray of shape (n_bins,)
        predictd's ensemble imputation.
    baseline : ndarray of shape (n_bins,)
        Same-assay average over the other cell types.
    spread : ndarray of shape (n_bins,) or None
        Standard deviation of the ensemble's models per bin; drawn as a band around ``imputed``.
    """

    target: str
    contig: str
    start: int
    bin_size: int
    observed: np.ndarray
    imputed: np.ndarray
    baseline: np.ndarray
    spread: np.ndarray | None = None

    @property
    def end(self) -> int:
        """End (bp, exclusive) of the last bin."""
        return self.start + self.bin_size * len(self.observed)


def browser_windows(config: RunConfig, store: SignalStore) -> list[tuple[int, int]]:
    """The bin ranges of ``evaluation.browser_regions``; a region outside the store's bins is an error."""
    windows = []
    for index, region in enumerate(config.evaluation.browser_regions):
        try:
            windows.append(store.bins.bin_range(*parse_region(region)))
        except ValueError as error:
            raise PredictdInputError(config.source, f"evaluation.browser_regions[{index}]", str(error)) from None
    return windows


def track_panel(config: RunConfig, bins: GenomeBins, experiment: Track, observed: np.ndarray,
                imputed: np.ndarray, baseline: np.ndarray, windows: list[tuple[int, int]]) -> TrackPanel:
    """The configured window, or else the 10 kb around the target's strongest observed signal."""
    if windows:
        lo, hi = windows[0]
    else:
        smooth = np.convolve(np.nan_to_num(observed), np.ones(PANEL_BINS // 4), mode="same")
        centre = int(np.argmax(smooth))
        lo = max(0, min(centre - PANEL_BINS // 2, observed.size - PANEL_BINS))
        hi = min(observed.size, lo + PANEL_BINS)
    (contig, start, _, _, hi), *_ = bins.runs(lo, hi)  # a panel shows one contiguous span
    spread_file = spread_path(config.output, experiment.cell_type, experiment.assay)
    spread = read_track_bins(spread_file, bins, lo, hi) if is_file(spread_file) else None
    # The spread track holds arcsinh-scale values as written; undo read_track_bins' arcsinh.
    return TrackPanel(target=experiment.name, contig=contig, start=start, bin_size=bins.bin_size,
                      observed=observed[lo:hi], imputed=np.maximum(imputed[lo:hi], 0.0), baseline=baseline[lo:hi],
                      spread=None if spread is None else np.sinh(spread))


def scatter_sample(rng: np.random.Generator, seen: np.ndarray, observed: np.ndarray,
                   imputed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(observed, imputed) over at most :data:`SCATTER_BINS` of the ``seen`` bins, drawn by ``rng``."""
    sample = rng.choice(np.flatnonzero(seen), size=min(SCATTER_BINS, int(seen.sum())), replace=False)
    return observed[sample], np.maximum(imputed[sample], 0.0)
