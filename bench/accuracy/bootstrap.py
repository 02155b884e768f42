"""The paired block bootstrap over the genome: every quality measure on resampled genomes, fast.

A resample draws the genome's blocks (``block_bins`` consecutive store bins, 4,000 bins of 25 bp =
100 kb by default) with replacement, as many draws as there are blocks. The resampled genome lists
every scored bin as many times as its block was drawn, in genome order, and each measure is
:func:`~predictd_core.model.measures.quality_measures` on that genome: ties in a top-k% set are
broken by genome position as there, and copies of one bin are adjacent. One set of draws serves every
target, method and square of a run (the blocks are the same loci), which is what makes differences
paired.

Nothing is re-sorted per resample. Each track (the observed one, each imputation clipped at 0) is
sorted once; a resample only gives each sorted bin a weight (how often its block was drawn), so
  * sums (MSEglobal and the region MSEs, and Pearson's GWcorr and GWcorrasinh) are dot products of
    the block counts with per-block sums computed once;
  * the top-k% sets are the last ``round(k/100 * W)`` copies of the weighted sorted order (W: the
    resampled genome's length): a cumulative sum of the weights, read only at the top;
  * average ranks (GWspcorr, the AUCs) are each tie group's first and last copy positions in that
    cumulative sum.
:func:`resampled_bins` builds the same resampled genome explicitly; the tests check that
:func:`quality_measures` on it gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from threadpoolctl import threadpool_limits

from predictd_core.model.measures import MEASURES, REGION_MEASURES

BLOCK_BINS = 4000
RESAMPLES = 1000
SEED = 0


def block_of_bins(bins: np.ndarray, block_bins: int = BLOCK_BINS) -> np.ndarray:
    """The block (``bin // block_bins``) of each store bin index in ``bins``."""
    return np.asarray(bins, dtype=np.int64) // block_bins


def draw_block_counts(n_blocks: int, n_resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """How often each of ``n_blocks`` blocks is drawn in each resample: int array (n_resamples, n_blocks),
    every row summing to ``n_blocks`` (``n_blocks`` draws with replacement); fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_blocks, size=(n_resamples, n_blocks))
    flat = (draws + n_blocks * np.arange(n_resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=n_resamples * n_blocks).reshape(n_resamples, n_blocks)


def resampled_bins(blocks: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The resampled genome of one resample, explicitly: positions into the scored bins (whose blocks are
    ``blocks``), each bin repeated as often as its block was drawn (``counts``), in genome order."""
    return np.repeat(np.arange(blocks.size), counts[blocks])


class _SortedTrack:
    """One track's stable sort over the scored bins and its tie groups, computed once; a resample reads
    its top-k% copies and average ranks from the weights alone."""

    def __init__(self, values: np.ndarray, blocks: np.ndarray):
        self.order = np.argsort(values, kind="stable")
        ordered = values[self.order]
        self.block_sorted = blocks[self.order]
        new_group = np.concatenate([[True], ordered[1:] != ordered[:-1]])
        self.group_last = np.concatenate([np.flatnonzero(new_group)[1:] - 1, [values.size - 1]])
        self.group_of_bin = np.empty(values.size, dtype=np.int64)
        self.group_of_bin[self.order] = np.cumsum(new_group) - 1

    def resample(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The weight of each sorted bin (its block's count) and their inclusive cumulative sum."""
        weights = counts[self.block_sorted]
        return weights, np.cumsum(weights)

    def top(self, weights: np.ndarray, cumulative: np.ndarray, n_top: int) -> tuple[np.ndarray, np.ndarray]:
        """The bins (indices into the scored bins) with copies among the ``n_top`` highest of the resampled
        genome, and how many of their copies are."""
        total = int(cumulative[-1])
        first = int(np.searchsorted(cumulative, total - n_top, side="right"))
        taken = np.minimum(cumulative[first:] - (total - n_top), weights[first:])
        keep = taken > 0
        return self.order[first:][keep], taken[keep]

    def centred_ranks(self, cumulative: np.ndarray) -> tuple[np.ndarray, float]:
        """Per scored bin, twice its average rank in the resampled genome minus (W + 1): the average
        ranks of the copies (every copy of a bin shares its tie group's rank), centred and
        doubled so that they are whole numbers with weighted mean 0; and their weighted sum of squares
        (the variance term of a Spearman correlation), summed per tie group."""
        last = cumulative[self.group_last]
        before = np.concatenate([[0], last[:-1]])
        centred = (before + last - last[-1]).astype(np.float64)
        spread = float((last - before) @ np.square(centred))
        return centred[self.group_of_bin], spread


def _block_sums(values: np.ndarray, blocks: np.ndarray, n_blocks: int) -> np.ndarray:
    """The sum of ``values`` over each block's bins."""
    return np.bincount(blocks, weights=values, minlength=n_blocks)


def _pearson_from_sums(counts: np.ndarray, sums: dict[str, np.ndarray]) -> np.ndarray:
    """Pearson correlation per resample from per-block sums of n, x, y, xx, yy, xy (x and y centred on
    their whole-genome means first, so that no large sums cancel)."""
    n, x, y, xx, yy, xy = (counts @ sums[key] for key in ("n", "x", "y", "xx", "yy", "xy"))
    with np.errstate(invalid="ignore", divide="ignore"):
        cov, var_x, var_y = xy - x * y / n, xx - x * x / n, yy - y * y / n
        denominator = np.sqrt(var_x * var_y)
        return np.where(denominator > 0, cov / np.where(denominator > 0, denominator, 1.0), np.nan)


def _moment_sums(x: np.ndarray, y: np.ndarray, blocks: np.ndarray, n_blocks: int) -> dict[str, np.ndarray]:
    """Per-block sums of 1, x, y, xx, yy and xy, with x and y centred on their means over all bins."""
    x, y = x - x.mean(), y - y.mean()
    return {"n": _block_sums(np.ones_like(x), blocks, n_blocks), "x": _block_sums(x, blocks, n_blocks),
            "y": _block_sums(y, blocks, n_blocks), "xx": _block_sums(x * x, blocks, n_blocks),
            "yy": _block_sums(y * y, blocks, n_blocks), "xy": _block_sums(x * y, blocks, n_blocks)}


def bootstrap_measures(observed: np.ndarray, imputations: Mapping[str, np.ndarray], blocks: np.ndarray,
                       counts: np.ndarray, region_masks: Mapping[str, np.ndarray] | None = None
                       ) -> dict[str, np.ndarray]:
    """Every measure of every imputation of one target on every resample.

    Parameters
    ----------
    observed : ndarray of shape (n,)
        The observed track (arcsinh) on the scored bins (no NaN).
    imputations : mapping of str to ndarray of shape (n,)
        Each method's imputation on the same bins (clipped at 0 here, as ``quality_measures`` does).
    blocks : ndarray of int, shape (n,)
        Each scored bin's block (:func:`block_of_bins`), in genome order.
    counts : ndarray of int, shape (n_resamples, n_blocks)
        How often each block is drawn in each resample (:func:`draw_block_counts`); one row of ones
        is the data itself.
    region_masks : mapping of str to bool ndarray of shape (n,), optional
        As for ``quality_measures``: the region MSEs asked for.

    Returns
    -------
    dict of str to ndarray of shape (n_resamples, n_measures)
        Per method, the measures in :data:`MEASURES` order then the region MSEs present, per resample:
        what ``quality_measures`` gives on :func:`resampled_bins`.
    """
    # The products here are over one genome's vectors: BLAS threads gain nothing and, on a busy machine, spin
    # (3-4x slower per resample with 2 OpenBLAS threads than with 1 on the 2-core development machine).
    with threadpool_limits(1, user_api="blas"):
        return _bootstrap_measures(observed, imputations, blocks, counts, region_masks)


def _bootstrap_measures(observed, imputations, blocks, counts, region_masks) -> dict[str, np.ndarray]:
    observed = np.asarray(observed, dtype=np.float64)
    blocks = np.asarray(blocks, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    n_resamples, n_blocks = counts.shape
    if blocks.size and (blocks.max() >= n_blocks or np.any(np.diff(blocks) < 0)):
        raise ValueError(f"the bins' blocks must be in genome order (non-decreasing) and below the {n_blocks} "
                         "blocks of the counts")
    block_sizes = np.bincount(blocks, minlength=n_blocks)
    region_masks = {name: np.asarray(mask, dtype=bool) for name, mask in (region_masks or {}).items()}
    regions = [(name, measure) for name, measure in REGION_MEASURES.items() if name in region_masks]
    lengths = counts @ block_sizes
    region_lengths = {name: counts @ _block_sums(region_masks[name].astype(np.float64), blocks, n_blocks)
                      for name, _ in regions}

    tracks = {name: np.maximum(np.asarray(values, dtype=np.float64), 0.0) for name, values in imputations.items()}
    sorted_observed = _SortedTrack(observed, blocks)
    sorted_tracks = {name: _SortedTrack(values, blocks) for name, values in tracks.items()}
    squared = {name: np.square(observed - values) for name, values in tracks.items()}
    results = {name: np.empty((n_resamples, len(MEASURES) + len(regions))) for name in tracks}
    column = {measure: k for k, measure in enumerate([*MEASURES, *(measure for _, measure in regions)])}

    # the measures that are sums over bins: per-block sums once, one matrix product for all resamples
    for name, values in tracks.items():
        out = results[name]
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN for a resample of blocks without scored bins
            out[:, column["MSEglobal"]] = counts @ _block_sums(squared[name], blocks, n_blocks) / lengths
        out[:, column["GWcorr"]] = _pearson_from_sums(counts, _moment_sums(np.sinh(observed), np.sinh(values),
                                                                           blocks, n_blocks))
        out[:, column["GWcorrasinh"]] = _pearson_from_sums(counts, _moment_sums(observed, values, blocks, n_blocks))
        for region, measure in regions:
            with np.errstate(invalid="ignore", divide="ignore"):
                region_sums = counts @ _block_sums(squared[name] * region_masks[region], blocks, n_blocks)
                out[:, column[measure]] = np.where(region_lengths[region] > 0,
                                                   region_sums / np.maximum(region_lengths[region], 1), np.nan)

    # the rank measures: per resample, weights on the sorted tracks
    top1_observed_counts = np.zeros(observed.size, dtype=np.int64)  # scratch, reset after each resample
    top5_observed_counts = np.zeros(observed.size, dtype=np.int64)
    for b in range(n_resamples):
        row = counts[b]
        total = int(lengths[b])
        n1, n5 = int(round(0.01 * total)), int(round(0.05 * total))
        per_top = max(n1, 1)
        weights_observed, cumulative_observed = sorted_observed.resample(row)
        ranks_observed, spread_observed = sorted_observed.centred_ranks(cumulative_observed)
        weighted_ranks_observed = np.repeat(row, block_sizes) * ranks_observed  # bins are in genome order
        top1_observed, taken1_observed = sorted_observed.top(weights_observed, cumulative_observed, n1)
        top5_observed, taken5_observed = sorted_observed.top(weights_observed, cumulative_observed, n5)
        top1_observed_counts[top1_observed] = taken1_observed
        top5_observed_counts[top5_observed] = taken5_observed
        for name, sorted_track in sorted_tracks.items():
            out = results[name]
            weights, cumulative = sorted_track.resample(row)
            ranks, spread = sorted_track.centred_ranks(cumulative)
            top1, taken1 = sorted_track.top(weights, cumulative, n1)
            top5, taken5 = sorted_track.top(weights, cumulative, n5)
            overlap1 = np.minimum(top1_observed_counts[top1], taken1).sum()
            catch_observed = np.minimum(top1_observed_counts[top5], taken5).sum()
            catch_imputed = np.minimum(top5_observed_counts[top1], taken1).sum()
            squared_error = squared[name]
            out[b, column["MSE1obs"]] = (taken1_observed @ squared_error[top1_observed]) / n1 if n1 else np.nan
            out[b, column["MSE1imp"]] = (taken1 @ squared_error[top1]) / n1 if n1 else np.nan
            denominator = np.sqrt(spread_observed * spread)
            spearman = float(weighted_ranks_observed @ ranks) / denominator if denominator > 0 else np.nan
            out[b, column["GWspcorr"]] = spearman
            out[b, column["Match1"]] = overlap1 / per_top
            out[b, column["Catch1obs"]] = catch_observed / per_top
            out[b, column["Catch1imp"]] = catch_imputed / per_top
            out[b, column["AucObs1"]] = _auc(taken1_observed @ ranks[top1_observed], n1, total)
            out[b, column["AucImp1"]] = _auc(taken1 @ ranks_observed[top1], n1, total)
        top1_observed_counts[top1_observed] = 0
        top5_observed_counts[top5_observed] = 0
    return results


def _auc(centred_rank_sum: float, n_positive: int, total: int) -> float:
    """The ROC AUC from the positives' summed centred doubled ranks (see ``_SortedTrack.centred_ranks``)."""
    n_negative = total - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    rank_sum = (centred_rank_sum + n_positive * (total + 1)) / 2.0
    return float((rank_sum - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative))
