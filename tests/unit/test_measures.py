"""Quality measures against values worked out by hand on tiny tracks."""

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from predictd_core.model import measures
from predictd_core.model.measures import MEASURES, REGION_MEASURES, ObservedTrack, SortedTrack, quality_measures


def test_hand_computed_measures_on_100_bins():
    # 100 bins: top 1% is one bin, top 5% five bins.
    observed = np.zeros(100)
    observed[:5] = [5.0, 4.0, 3.0, 2.0, 1.0]  # bin 0 is the observed top 1%
    imputed = np.zeros(100)
    imputed[[1, 0, 10, 11, 12]] = [6.0, 3.0, 2.0, 1.5, 1.0]  # bin 1 is the imputed top 1%
    m = quality_measures(observed, imputed)
    sq = (observed - imputed) ** 2
    assert m["MSEglobal"] == pytest.approx(sq.mean())
    assert m["MSE1obs"] == pytest.approx((5.0 - 3.0) ** 2)  # bin 0
    assert m["MSE1imp"] == pytest.approx((4.0 - 6.0) ** 2)  # bin 1
    assert m["Match1"] == 0.0  # top obs bin 0 != top imp bin 1
    assert m["Catch1obs"] == 1.0  # bin 0 is inside the imputed top 5 {1, 0, 10, 11, 12}
    assert m["Catch1imp"] == 1.0  # bin 1 is inside the observed top 5 {0..4}
    # AucObs1: the positive (bin 0, imputed 3.0) outranks every negative but bin 1 (6.0): 98/99.
    assert m["AucObs1"] == pytest.approx(98 / 99)
    # AucImp1: positive bin 1 has observed 4.0, beaten only by bin 0 (5.0): 98/99.
    assert m["AucImp1"] == pytest.approx(98 / 99)
    assert m["GWcorrasinh"] == pytest.approx(np.corrcoef(observed, imputed)[0, 1])
    assert m["GWcorr"] == pytest.approx(np.corrcoef(np.sinh(observed), np.sinh(imputed))[0, 1])
    assert list(m) == list(MEASURES)


def test_hand_computed_top_sets_on_200_bins():
    # 200 bins: top 1% is two bins, top 5% ten bins, so the overlap fractions can be 0.5.
    observed = np.zeros(200)
    observed[:10] = np.arange(10, 0, -1)  # top 1% {0, 1} (10, 9); top 5% {0..9}
    imputed = np.zeros(200)
    imputed[[2, 50, 0, 1]] = [10.0, 9.0, 5.0, 4.5]  # top 1% {2, 50}
    imputed[100:107] = [8.0, 7.0, 6.0, 4.0, 3.0, 2.0, 1.0]  # top 5% {2, 50, 100, 101, 102, 0, 1, 103, 104, 105}
    m = quality_measures(observed, imputed)
    assert m["MSE1obs"] == pytest.approx(((10 - 5) ** 2 + (9 - 4.5) ** 2) / 2)  # bins 0, 1
    assert m["MSE1imp"] == pytest.approx(((8 - 10) ** 2 + (0 - 9) ** 2) / 2)  # bins 2, 50
    assert m["Match1"] == 0.0  # {0, 1} vs {2, 50}
    assert m["Catch1obs"] == 1.0  # bins 0 and 1 are both in the imputed top 5%
    assert m["Catch1imp"] == 0.5  # of {2, 50}, only bin 2 is in the observed top 5%
    # AucObs1: imputed 5 and 4.5 (bins 0, 1) each beat the 4 negatives at 4..1 and the 189 zeros;
    # 198 negatives.
    assert m["AucObs1"] == pytest.approx(2 * 193 / (2 * 198))
    # AucImp1: observed 8 (bin 2) beats 7..1 (bins 3..9) and the 189 zeros; observed 0 (bin 50) ties the
    # 189 zeros (half each).
    assert m["AucImp1"] == pytest.approx((196 + 189 / 2) / (2 * 198))


def test_negative_imputations_are_clipped_like_the_written_tracks():
    observed = np.linspace(0, 1, 200)
    assert quality_measures(observed, observed - 5)["MSEglobal"] == pytest.approx(np.mean(observed**2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_average_ranks_match_scipy_across_blocks(monkeypatch, dtype):
    # blocks of 7 sorted positions: tie groups (the many zeros, the rounded values) span several blocks
    monkeypatch.setattr(measures, "BLOCK_BINS", 7)
    rng = np.random.default_rng(4)
    values = np.round(rng.gamma(0.4, 1.0, 200), 1).astype(dtype)
    values[::9] = -0.0  # ties +0 as it does in a comparison
    values[5] = -1.5
    scored = rng.random(200) < 0.8
    ordered = SortedTrack(values, scored)
    bins = np.concatenate([b for b, _ in ordered.rank_blocks()])
    ranks = np.concatenate([r for _, r in ordered.rank_blocks()])
    np.testing.assert_array_equal(bins, np.flatnonzero(scored)[np.argsort(values[scored], kind="stable")])
    np.testing.assert_array_equal(ranks, np.sort(rankdata(values[scored])))
    assert ordered.top(3).tolist() == bins[-3:].tolist()


def test_a_float32_track_is_ranked_as_its_float64_values():
    rng = np.random.default_rng(5)
    observed = np.round(rng.exponential(size=5000), 1).astype(np.float32)
    imputed = (observed + rng.normal(scale=0.5, size=5000)).astype(np.float32)
    single, double = quality_measures(observed, imputed), quality_measures(observed.astype(np.float64),
                                                                           imputed.astype(np.float64))
    for name in MEASURES:
        assert single[name] == pytest.approx(double[name], rel=1e-12), name


def test_gw_spearman_matches_scipy_on_the_clipped_imputation():
    rng = np.random.default_rng(2)
    observed = np.round(rng.gamma(1, 1, 500), 1)  # many ties
    imputed = observed + rng.normal(0, 0.8, 500)  # some negative: clipped to 0, more ties
    expected = spearmanr(observed, np.maximum(imputed, 0)).statistic
    assert quality_measures(observed, imputed)["GWspcorr"] == pytest.approx(expected)
    assert expected != pytest.approx(spearmanr(observed, imputed).statistic)  # the clipping is tested


def test_region_mses_by_hand_in_region_measures_order():
    observed = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 1.0])
    imputed = np.array([1.0, 4.0, 0.0, -2.0, 1.0, 1.0])  # -2 is clipped: squared errors 0, 4, 9, 16, 1, 0
    masks = {"enhancers": np.zeros(6, dtype=bool),
             "genes": np.array([0, 0, 1, 1, 1, 0], dtype=bool),
             "promoters": np.array([1, 1, 0, 0, 0, 0], dtype=bool)}
    m = quality_measures(observed, imputed, masks)
    assert list(m) == [*MEASURES, "MSEprom", "MSEgene", "MSEenh"]
    assert m["MSEprom"] == pytest.approx((0 + 4) / 2)
    assert m["MSEgene"] == pytest.approx((9 + 16 + 1) / 3)
    assert np.isnan(m["MSEenh"])  # the mask selects no bin


def test_only_the_region_measures_given_are_returned():
    observed = np.linspace(0, 2, 50)
    genes = np.arange(50) < 10
    m = quality_measures(observed, observed + 1, {"genes": genes})
    assert list(m) == [*MEASURES, REGION_MEASURES["genes"]]
    assert m["MSEgene"] == pytest.approx(1.0)


@pytest.mark.parametrize("masks, message", [
    ({"exons": np.ones(10, dtype=bool)}, "unknown region set"),
    ({"genes": np.ones(9, dtype=bool)}, "must be boolean of shape"),
    ({"genes": np.ones(10)}, "must be boolean of shape"),
])
def test_bad_region_masks_are_refused(masks, message):
    observed = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match=message):
        quality_measures(observed, observed, masks)


def test_spearman_and_aucs_against_brute_force():
    rng = np.random.default_rng(0)
    observed = np.round(rng.gamma(1, 1, 300), 1)  # many ties
    imputed = observed + rng.normal(0, 0.5, 300)
    m = quality_measures(observed, imputed)
    clipped = np.maximum(imputed, 0)
    assert m["GWspcorr"] == pytest.approx(np.corrcoef(rankdata(observed), rankdata(clipped))[0, 1])

    def brute_auc(scores, labels):
        pos, neg = scores[labels], scores[~labels]
        wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        return wins / (pos.size * neg.size)

    top_observed, top_imputed = np.zeros(300, bool), np.zeros(300, bool)
    top_observed[np.argsort(observed, kind="stable")[-3:]] = True  # 1% of 300, ties to the later bin
    top_imputed[np.argsort(clipped, kind="stable")[-3:]] = True
    assert m["AucObs1"] == pytest.approx(brute_auc(clipped, top_observed))
    assert m["AucImp1"] == pytest.approx(brute_auc(observed, top_imputed))


def test_perfect_imputation_scores_perfectly():
    observed = np.random.default_rng(1).gamma(1, 1, 1000)
    m = quality_measures(observed, observed)
    assert m["MSEglobal"] == 0 and m["Match1"] == 1 and m["GWcorr"] == pytest.approx(1)


def test_scored_bins_are_the_track_cut_to_them_and_a_prepared_track_scores_the_same():
    rng = np.random.default_rng(7)
    observed = np.round(rng.exponential(size=3000), 1)  # ties, as real tracks' zeros
    imputed = observed + rng.normal(scale=0.5, size=3000)
    scored = rng.random(3000) < 0.9
    genes = rng.random(3000) < 0.3
    observed[~scored] = np.nan  # outside the scored bins NaN does not count
    imputed[np.flatnonzero(~scored)[::2]] = np.nan
    cut = quality_measures(observed[scored], imputed[scored], {"genes": genes[scored]})
    whole = quality_measures(observed, imputed, {"genes": genes}, scored=scored)
    prepared = ObservedTrack(observed, scored)
    assert prepared.measures(imputed, {"genes": genes}) == whole
    assert prepared.measures(np.nan_to_num(imputed[::-1]))["Match1"] != whole["Match1"]  # the imputation is read
    for name in cut:
        assert whole[name] == pytest.approx(cut[name], rel=1e-12), name


def test_blocks_do_not_change_the_measures(monkeypatch):
    rng = np.random.default_rng(8)
    observed = np.round(rng.gamma(0.5, 2.0, 1000), 1).astype(np.float32)
    imputed = (observed + rng.normal(scale=0.6, size=1000)).astype(np.float32)
    masks = {"promoters": rng.random(1000) < 0.1}
    whole = quality_measures(observed, imputed, masks)
    monkeypatch.setattr(measures, "BLOCK_BINS", 13)
    for name, value in quality_measures(observed, imputed, masks).items():
        assert value == pytest.approx(whole[name], rel=1e-12), name


def test_a_nan_in_a_scored_bin_is_refused():
    observed = np.linspace(0, 1, 50)
    imputed = observed.copy()
    imputed[3] = np.nan
    with pytest.raises(ValueError, match="scored bin is NaN"):
        quality_measures(observed, imputed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_without_the_rank_correlation_every_other_measure_is_the_same_number(dtype):
    """Ties at the top thresholds (rounded values, many zeros, -0) and scored bins: the sorted values give the
    stable sort's top sets and ranks, bit for bit."""
    rng = np.random.default_rng(9)
    for decimals, n in [(0, 700), (1, 1500), (2, 3000)]:
        observed = np.round(rng.gamma(0.5, 1.0, n), decimals).astype(dtype)
        imputed = np.round(rng.normal(0.3, 1.0, n), decimals).astype(dtype)
        imputed[imputed == 0] = -0.0
        scored = rng.random(n) < 0.8
        imputed[~scored] = np.nan
        track = ObservedTrack(observed, scored)
        full, quick = track.measures(imputed), track.measures(imputed, rank_correlation=False)
        assert list(quick) == [name for name in MEASURES if name != "GWspcorr"]
        assert quick == {name: full[name] for name in quick}
    with pytest.raises(ValueError, match="scored bin is NaN"):
        ObservedTrack(observed).measures(imputed, rank_correlation=False)
