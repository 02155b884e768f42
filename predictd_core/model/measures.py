"""ChromImpute's and PREDICTD's quality measures for one imputed track against the observed one.

MSE measures are on the arcsinh scale, GWcorr on the -log10 p scale (after sinh), rank measures on
either. Top-k% sets are the ``round(k/100 * N)`` highest bins by a stable sort (ties go to the later bin,
as PREDICTD's ``quality_measures.py`` argsort gives them); ranks of ties are their average rank. Imputed
values are clipped at 0 first, as the written tracks are.

Region MSEs (MSEprom, MSEgene, MSEenh) are the ENCODE Imputation Challenge's, not PREDICTD's: the
MSE over the bins of a region set (see :mod:`predictd_core.evaluate.regions`).

A whole-genome track is 124 M bins, and a scoring task holds several, so the measures hold no float64
copy of a track: sums run over blocks of :data:`BLOCK_BINS`, a float32 track is sorted as one 8-byte key a
bin (its value's order-preserving bits, then the bin), and ranks are computed a block of the sorted order at
a time, from where each block's first and last tie group begin and end in the whole sort.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

MEASURES = ("MSEglobal", "MSE1obs", "MSE1imp", "GWcorr", "GWcorrasinh", "GWspcorr",
            "Match1", "Catch1obs", "Catch1imp", "AucObs1", "AucImp1")
REGION_MEASURES = {"promoters": "MSEprom", "genes": "MSEgene", "enhancers": "MSEenh"}
BLOCK_BINS = 1 << 20  # bins summed or ranked at once: ~10 float64 temporaries of 8 MB, whatever the genome
_LOW_BITS = np.uint64(0xFFFFFFFF)


def lower_is_better(measure: str) -> bool:
    """True for the MSE family (errors); every other measure is a correlation, overlap or AUC."""
    return measure.startswith("MSE")


def _blocks(n: int):
    return ((lo, min(lo + BLOCK_BINS, n)) for lo in range(0, n, BLOCK_BINS))


def _ordered_bits(values: np.ndarray) -> np.ndarray:
    """float32 ``values`` as uint32 whose order is the values' (-0 read as +0, so that they tie)."""
    bits = (values + np.float32(0.0)).view(np.uint32)
    return bits ^ np.where(bits >> 31, np.uint32(0xFFFFFFFF), np.uint32(0x80000000))


class SortedTrack:
    """A track's scored bins in a stable ascending sort: ties keep the order of their bins.

    Parameters
    ----------
    values : ndarray of shape (n_bins,)
        No NaN among the scored bins. A float32 track is sorted as packed 8-byte keys (value bits, then bin):
        no index array, no float64 copy; any other dtype by a stable argsort of its float64 values.
    scored : ndarray of bool, shape (n_bins,), optional
        The bins that count (default: all).
    floor : float, optional
        Values below it are read as it (an imputation is clipped at 0).
    """

    def __init__(self, values: np.ndarray, scored: np.ndarray | None = None, floor: float | None = None):
        values = np.asarray(values)
        self.compact = values.dtype == np.float32 and values.size < 1 << 32
        if self.compact:
            self._keys = np.empty(values.size if scored is None else int(np.count_nonzero(scored)), np.uint64)
            filled = 0
            for lo, hi in _blocks(values.size):
                block, where = values[lo:hi], np.arange(lo, hi, dtype=np.uint64)
                if scored is not None:
                    block, where = block[scored[lo:hi]], where[scored[lo:hi]]
                if floor is not None:
                    block = np.maximum(block, np.float32(floor))
                _refuse_nan(block)
                bits = _ordered_bits(block).astype(np.uint64) << np.uint64(32)
                self._keys[filled:filled + block.size] = bits | where
                filled += block.size
            self._keys.sort()
            self.n = self._keys.size
        else:
            self._index = np.arange(values.size) if scored is None else np.flatnonzero(scored)
            ordered = values[self._index].astype(np.float64)
            if floor is not None:
                ordered = np.maximum(ordered, floor)
            _refuse_nan(ordered)
            order = np.argsort(ordered, kind="stable")
            self._index, self._sorted = self._index[order], ordered[order]
            self.n = self._index.size

    def bins(self, lo: int, hi: int) -> np.ndarray:
        """The bins at sorted positions ``[lo, hi)``."""
        if self.compact:
            return (self._keys[lo:hi] & _LOW_BITS).astype(np.int64)
        return self._index[lo:hi]

    def top(self, count: int) -> np.ndarray:
        """The ``count`` highest bins (the last ``count`` of the sort)."""
        return self.bins(self.n - count, self.n)

    def average_ranks(self, lo: int, hi: int) -> np.ndarray:
        """The 1-based ranks of sorted positions ``[lo, hi)`` with ties given their average rank (as
        ``scipy.stats.rankdata``), float64."""
        if self.compact:
            values = self._keys[lo:hi] >> np.uint64(32)
            first = np.searchsorted(self._keys, values[0] << np.uint64(32), side="left")
            last = np.searchsorted(self._keys, (values[-1] << np.uint64(32)) | _LOW_BITS, side="right")
        else:
            values = self._sorted[lo:hi]
            first = np.searchsorted(self._sorted, values[0], side="left")
            last = np.searchsorted(self._sorted, values[-1], side="right")
        bounds = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1, [hi - lo]])
        starts, ends = lo + bounds[:-1], lo + bounds[1:]
        starts[0], ends[-1] = first, last  # the block's first and last tie groups may reach past it
        return np.repeat((starts + ends + 1) / 2.0, np.diff(bounds))

    def rank_blocks(self):
        """``(bins, average ranks)`` of the sort, :data:`BLOCK_BINS` positions at a time."""
        for lo, hi in _blocks(self.n):
            yield self.bins(lo, hi), self.average_ranks(lo, hi)


class SortedValues:
    """A track's scored values sorted, without their bins: :class:`SortedTrack`'s top sets and average ranks
    of given values, from a plain sort (a fraction of a stable argsort's time).

    Parameters
    ----------
    values, scored, floor
        As :class:`SortedTrack`'s; holds the scored values once sorted and once in bin order.
    """

    def __init__(self, values: np.ndarray, scored: np.ndarray | None = None, floor: float | None = None):
        values = np.asarray(values)
        self._index = np.arange(values.size) if scored is None else np.flatnonzero(scored)
        self._values = values[self._index]
        if floor is not None:
            self._values = np.maximum(self._values, self._values.dtype.type(floor))
        _refuse_nan(self._values)
        self._sorted = np.sort(self._values)
        self.n = self._sorted.size

    def top(self, count: int) -> np.ndarray:
        """The ``count`` highest bins, the ties at the threshold to the later bins, in ascending order of value
        and bin: :meth:`SortedTrack.top`'s, in its order (a mean over them sums in the same order)."""
        if count == 0:
            return np.empty(0, dtype=np.int64)
        threshold = self._sorted[self.n - count]
        chosen = self._values > threshold
        tied = np.flatnonzero(self._values == threshold)
        chosen[tied[tied.size - (count - np.count_nonzero(chosen)):]] = True
        return self._index[chosen][np.argsort(self._values[chosen], kind="stable")]

    def average_ranks(self, values: np.ndarray) -> np.ndarray:
        """The 1-based rank each of ``values`` would have among the scored values, ties given their average rank
        (as :meth:`SortedTrack.average_ranks` gives a scored bin's own value)."""
        values = np.asarray(values, dtype=self._sorted.dtype)
        below = np.searchsorted(self._sorted, values, side="left")
        return (below + np.searchsorted(self._sorted, values, side="right") + 1) / 2.0


def _refuse_nan(values: np.ndarray) -> None:
    if np.isnan(values).any():
        raise ValueError("a scored bin is NaN: leave it out of the scored bins")


def _top_count(n: int, percent: int) -> int:
    return int(round(percent / 100 * n))


class ObservedTrack:
    """An observed track ready to score imputations of it: sorted and ranked once.

    Holds its doubled average ranks (uint32 a bin) and which of its top sets each bin is in (a byte a bin):
    on a whole genome, 5 bytes a bin beside the track.

    Parameters
    ----------
    observed : ndarray of shape (n_bins,)
        arcsinh(-log10 p); NaN allowed only outside ``scored``.
    scored : ndarray of bool, shape (n_bins,), optional
        The bins every measure is over (default: all).
    """

    def __init__(self, observed: np.ndarray, scored: np.ndarray | None = None):
        self.observed = np.asarray(observed)
        self.scored = None if scored is None else np.asarray(scored, dtype=bool)
        if self.scored is not None and self.scored.shape != self.observed.shape:
            raise ValueError(f"scored bins of shape {self.scored.shape} for a track of shape {self.observed.shape}")
        ordered = SortedTrack(self.observed, self.scored)
        self.n = ordered.n
        if self.n == 0:
            raise ValueError("no bin to score")
        self.n1, self.n5 = _top_count(self.n, 1), _top_count(self.n, 5)
        self.top1, top5 = ordered.top(self.n1), ordered.top(self.n5)
        self.top_level = np.zeros(self.observed.size, dtype=np.uint8)  # 2: in the top 1%, 1: in the top 5% only
        self.top_level[top5] = 1
        self.top_level[self.top1] = 2
        # twice the average rank is a whole number up to 2n: 4 bytes a bin where float64 ranks take 8
        self.doubled_ranks = np.zeros(self.observed.size, dtype=np.uint32 if 2 * self.n < 1 << 32 else np.uint64)
        self.rank_spread = 0.0  # sum of squared centred ranks, the variance term of GWspcorr
        for bins, ranks in ordered.rank_blocks():
            self.doubled_ranks[bins] = (2 * ranks).astype(self.doubled_ranks.dtype)
            self.rank_spread += float(np.square(ranks - (self.n + 1) / 2.0).sum())
        del ordered

    def _scored_blocks(self, imputed: np.ndarray, masks: dict[str, np.ndarray]):
        """``(observed, imputed clipped at 0, {name: mask})`` over the scored bins, float64, a block at a time."""
        for lo, hi in _blocks(self.observed.size):
            observed = self.observed[lo:hi].astype(np.float64)
            imputed_block = np.maximum(imputed[lo:hi].astype(np.float64), 0.0)
            block_masks = {name: mask[lo:hi] for name, mask in masks.items()}
            if self.scored is not None:
                keep = self.scored[lo:hi]
                observed, imputed_block = observed[keep], imputed_block[keep]
                block_masks = {name: mask[keep] for name, mask in block_masks.items()}
            yield observed, imputed_block, block_masks

    def measures(self, imputed: np.ndarray, region_masks: Mapping[str, np.ndarray] | None = None,
                 rank_correlation: bool = True) -> dict[str, float]:
        """Every measure of :data:`MEASURES` of ``imputed`` (the shape of the observed track, arcsinh; NaN
        allowed only outside the scored bins), then the region MSEs asked for; see :func:`quality_measures`.

        Without ``rank_correlation``, GWspcorr is left out and no bin's rank is computed: the top sets and
        the top bins' ranks come from the sorted values (:class:`SortedValues`), a third of the time, with the
        same numbers. It holds two copies of the scored values (in bin order and sorted) and an index of their
        bins: for a sample, as the refinement's validation scores hundreds of candidates."""
        imputed = np.asarray(imputed)
        if imputed.shape != self.observed.shape:
            raise ValueError(f"an imputed track of shape {imputed.shape} for an observed one of shape "
                             f"{self.observed.shape}")
        masks = _checked_masks(region_masks or {}, self.observed.shape)
        n, n1 = self.n, self.n1
        sums = _Sums(masks)
        for observed, clipped, block_masks in self._scored_blocks(imputed, masks):
            sums.add_first_pass(observed, clipped, block_masks)
        for observed, clipped, _ in self._scored_blocks(imputed, {}):  # the regions were summed in the first
            sums.add_second_pass(observed, clipped)
        if rank_correlation:
            ordered = SortedTrack(imputed, self.scored, floor=0.0)
            top1, top5 = ordered.top(n1), ordered.top(self.n5)
            centre = (n + 1) / 2.0
            rank_product = rank_spread = positive_ranks = 0.0
            for bins, ranks in ordered.rank_blocks():
                centred = ranks - centre
                rank_product += _sum_of_products(centred, self.doubled_ranks[bins] / 2.0 - centre)
                rank_spread += _sum_of_products(centred, centred)
                positive_ranks += float(ranks[self.top_level[bins] == 2].sum())
            spearman = {"GWspcorr": _correlation(rank_product, self.rank_spread, rank_spread)}
        else:
            ordered = SortedValues(imputed, self.scored, floor=0.0)
            top1, top5 = ordered.top(n1), ordered.top(self.n5)
            positive_ranks = float(ordered.average_ranks(np.maximum(imputed[self.top1], 0.0)).sum())
            spearman = {}
        del ordered
        per_top = max(n1, 1)
        return {
            "MSEglobal": sums.squared_error / n,
            "MSE1obs": self._top_mse(imputed, self.top1),
            "MSE1imp": self._top_mse(imputed, top1),
            "GWcorr": sums.pearson("sinh"),
            "GWcorrasinh": sums.pearson("asinh"),
            **spearman,
            "Match1": float(np.count_nonzero(self.top_level[top1] == 2) / per_top),
            "Catch1obs": float(np.count_nonzero(self.top_level[top5] == 2) / per_top),
            "Catch1imp": float(np.count_nonzero(self.top_level[top1] >= 1) / per_top),
            "AucObs1": _auc(positive_ranks, n1, n),
            "AucImp1": _auc(float(self.doubled_ranks[top1].sum()) / 2.0, n1, n),
            **{REGION_MEASURES[name]: sums.region_mse(name) for name in REGION_MEASURES if name in masks},
        }

    def _top_mse(self, imputed: np.ndarray, bins: np.ndarray) -> float:
        if bins.size == 0:
            return float("nan")
        error = self.observed[bins].astype(np.float64) - np.maximum(imputed[bins].astype(np.float64), 0.0)
        return float(np.square(error).mean())


class _Sums:
    """Running sums of the scored bins for the MSEs and the two Pearson correlations: a first pass gives
    the means, a second the centred products (as the correlation of whole arrays centres them)."""

    def __init__(self, masks: Mapping[str, np.ndarray]):
        self.n = 0
        self.squared_error = 0.0
        self.region = {name: [0.0, 0] for name in masks}
        self.total = {"asinh": [0.0, 0.0], "sinh": [0.0, 0.0]}
        self.products = {scale: [0.0, 0.0, 0.0] for scale in self.total}

    def add_first_pass(self, observed, imputed, masks) -> None:
        squared = np.square(observed - imputed)
        self.n += observed.size
        self.squared_error += float(squared.sum())
        for name, mask in masks.items():
            self.region[name][0] += float(squared[mask].sum())
            self.region[name][1] += int(np.count_nonzero(mask))
        for scale, (x, y) in _scales(observed, imputed):
            self.total[scale][0] += float(x.sum())
            self.total[scale][1] += float(y.sum())

    def add_second_pass(self, observed, imputed) -> None:
        for scale, (x, y) in _scales(observed, imputed):
            x, y = x - self.total[scale][0] / self.n, y - self.total[scale][1] / self.n
            sums = self.products[scale]
            sums[0] += _sum_of_products(x, y)
            sums[1] += _sum_of_products(x, x)
            sums[2] += _sum_of_products(y, y)

    def pearson(self, scale: str) -> float:
        return _correlation(*self.products[scale])

    def region_mse(self, name: str) -> float:
        total, count = self.region[name]
        return total / count if count else float("nan")


def _scales(observed, imputed):
    yield "asinh", (observed, imputed)
    yield "sinh", (np.sinh(observed), np.sinh(imputed))


def _sum_of_products(x: np.ndarray, y: np.ndarray) -> float:
    """``x @ y`` without BLAS: its threads spin on a busy machine, and a scoring pass makes thousands of these."""
    return float(np.multiply(x, y).sum())


def _correlation(product: float, spread_x: float, spread_y: float) -> float:
    denominator = np.sqrt(spread_x * spread_y)
    return float(product / denominator) if denominator > 0 else float("nan")


def _auc(positive_ranks: float, n_positive: int, n: int) -> float:
    """Area under the ROC curve from the positives' summed average ranks (Mann-Whitney U)."""
    n_negative = n - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    return float((positive_ranks - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative))


def _checked_masks(region_masks: Mapping[str, np.ndarray], shape: tuple) -> dict[str, np.ndarray]:
    """The region masks, each boolean of the track's ``shape``, keyed as :data:`REGION_MEASURES`."""
    unknown = sorted(set(region_masks) - set(REGION_MEASURES))
    if unknown:
        raise ValueError(f"unknown region set(s) {unknown}; expected some of {list(REGION_MEASURES)}")
    checked = {}
    for name, mask in region_masks.items():
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != shape:
            raise ValueError(f"the {name!r} mask must be boolean of shape {shape}, got {mask.dtype} of shape "
                             f"{mask.shape}")
        checked[name] = mask
    return checked


def quality_measures(observed: np.ndarray, imputed: np.ndarray,
                     region_masks: Mapping[str, np.ndarray] | None = None,
                     scored: np.ndarray | None = None) -> dict[str, float]:
    """Every measure of :data:`MEASURES` for one experiment, then the region MSEs asked for.

    To score several imputations of one track, prepare it once: ``ObservedTrack(observed, scored)``, then
    :meth:`ObservedTrack.measures` of each.

    Parameters
    ----------
    observed, imputed : ndarray of shape (n_bins,)
        arcsinh(-log10 p); no NaN among the scored bins.
    region_masks : mapping of str to ndarray of shape (n_bins,), dtype bool, optional
        Keys of :data:`REGION_MEASURES` (``"promoters"``, ``"genes"``, ``"enhancers"``), each marking
        the bins of a region set, aligned with ``observed`` (only its scored bins count).
    scored : ndarray of bool, shape (n_bins,), optional
        The bins scored (default: all).

    Returns
    -------
    dict of str to float
        :data:`MEASURES` in order, then ``MSEprom``, ``MSEgene``, ``MSEenh`` for the masks given
        (NaN for a mask that selects no scored bin).

    Raises
    ------
    ValueError
        A key of ``region_masks`` is not in :data:`REGION_MEASURES`, a mask is not boolean of the shape of
        ``observed``, the tracks' shapes differ, or a scored bin is NaN.
    """
    return ObservedTrack(observed, scored).measures(imputed, region_masks)
