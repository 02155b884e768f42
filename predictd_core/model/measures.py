"""ChromImpute's and PREDICTD's quality measures for one imputed track against the observed one.

MSE measures are on the arcsinh scale, GWcorr on the -log10 p scale (after sinh), rank measures on
either. Top-k% sets are the ``round(k/100 * N)`` highest bins by argsort (stable, as PREDICTD's
``quality_measures.py``). Imputed values are clipped at 0 first, as the written tracks are.

Region MSEs (MSEprom, MSEgene, MSEenh) are the ENCODE Imputation Challenge's, not PREDICTD's: the
MSE over the bins of a region set (see :mod:`predictd_core.evaluate.regions`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

MEASURES = ("MSEglobal", "MSE1obs", "MSE1imp", "GWcorr", "GWcorrasinh", "GWspcorr",
            "Match1", "Catch1obs", "Catch1imp", "AucObs1", "AucImp1")
REGION_MEASURES = {"promoters": "MSEprom", "genes": "MSEgene", "enhancers": "MSEenh"}


def lower_is_better(measure: str) -> bool:
    """True for the MSE family (errors); every other measure is a correlation, overlap or AUC."""
    return measure.startswith("MSE")


def rank_average(values: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Ranks 1..N with ties given their average rank (as ``scipy.stats.rankdata``); ``order``: the stable
    argsort of ``values`` when the caller already has it."""
    if order is None:
        order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
    ends = np.concatenate([starts[1:], [values.size]])
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def roc_auc(scores: np.ndarray, positive: np.ndarray, ranks: np.ndarray | None = None) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive`` (Mann-Whitney U);
    ``ranks``: :func:`rank_average` of ``scores`` when the caller already has them."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    if ranks is None:
        ranks = rank_average(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator > 0 else float("nan")


def _top(order: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` highest bins, from the values' stable argsort ``order``."""
    mask = np.zeros(order.size, dtype=bool)
    if count:
        mask[order[-count:]] = True
    return mask


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values`` where ``mask`` is True; NaN when it selects nothing."""
    return float(values[mask].mean()) if mask.any() else float("nan")


def _region_mses(squared_error: np.ndarray, region_masks: Mapping[str, np.ndarray]) -> dict[str, float]:
    """MSE over each region set's bins, named and ordered as :data:`REGION_MEASURES`."""
    unknown = sorted(set(region_masks) - set(REGION_MEASURES))
    if unknown:
        raise ValueError(f"unknown region set(s) {unknown}; expected some of {list(REGION_MEASURES)}")
    found = {}
    for name, measure in REGION_MEASURES.items():
        if name in region_masks:
            mask = np.asarray(region_masks[name])
            if mask.dtype != bool or mask.shape != squared_error.shape:
                raise ValueError(f"the {name!r} mask must be boolean of shape {squared_error.shape}, "
                                 f"got {mask.dtype} of shape {mask.shape}")
            found[measure] = _masked_mean(squared_error, mask)
    return found


def quality_measures(observed: np.ndarray, imputed: np.ndarray,
                     region_masks: Mapping[str, np.ndarray] | None = None,
                     observed_order: np.ndarray | None = None) -> dict[str, float]:
    """Every measure of :data:`MEASURES` for one experiment, then the region MSEs asked for.

    Parameters
    ----------
    observed, imputed : ndarray of shape (n_bins,)
        arcsinh(-log10 p) over the evaluation bins (no NaN).
    region_masks : mapping of str to ndarray of shape (n_bins,), dtype bool, optional
        Keys of :data:`REGION_MEASURES` (``"promoters"``, ``"genes"``, ``"enhancers"``), each marking
        the evaluation bins of a region set, aligned with ``observed``.
    observed_order : ndarray of int, optional
        ``np.argsort(observed, kind="stable")``, when the caller scores many imputations of one track.

    Returns
    -------
    dict of str to float
        :data:`MEASURES` in order, then ``MSEprom``, ``MSEgene``, ``MSEenh`` for the masks given
        (NaN for a mask that selects no bin).

    Raises
    ------
    ValueError
        A key of ``region_masks`` is not in :data:`REGION_MEASURES`, or a mask is not boolean of
        the shape of ``observed``.
    """
    observed = np.asarray(observed, dtype=np.float64)
    imputed = np.maximum(np.asarray(imputed, dtype=np.float64), 0.0)
    n = observed.size
    n1, n5 = int(round(0.01 * n)), int(round(0.05 * n))
    # one sort per track: every top set and rank below comes from it
    order_obs = np.argsort(observed, kind="stable") if observed_order is None else observed_order
    order_imp = np.argsort(imputed, kind="stable")
    ranks_obs, ranks_imp = rank_average(observed, order_obs), rank_average(imputed, order_imp)
    top1_obs, top1_imp = _top(order_obs, n1), _top(order_imp, n1)
    top5_obs, top5_imp = _top(order_obs, n5), _top(order_imp, n5)
    sq = np.square(observed - imputed)
    per_top = max(n1, 1)
    return {
        "MSEglobal": float(sq.mean()),
        "MSE1obs": _masked_mean(sq, top1_obs),
        "MSE1imp": _masked_mean(sq, top1_imp),
        "GWcorr": _pearson(np.sinh(observed), np.sinh(imputed)),
        "GWcorrasinh": _pearson(observed, imputed),
        "GWspcorr": _pearson(ranks_obs, ranks_imp),
        "Match1": float((top1_obs & top1_imp).sum() / per_top),
        "Catch1obs": float((top1_obs & top5_imp).sum() / per_top),
        "Catch1imp": float((top1_imp & top5_obs).sum() / per_top),
        "AucObs1": roc_auc(imputed, top1_obs, ranks_imp),
        "AucImp1": roc_auc(observed, top1_imp, ranks_obs),
        **_region_mses(sq, region_masks or {}),
    }
