"""Quality measures against values worked out by hand on tiny tracks."""

import numpy as np
import pytest

from predictd_core.evaluate.measures import MEASURES, quality_measures, rank_average, roc_auc


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
    assert set(m) == set(MEASURES)


def test_negative_imputations_are_clipped_like_the_written_tracks():
    observed = np.linspace(0, 1, 200)
    assert quality_measures(observed, observed - 5)["MSEglobal"] == pytest.approx(np.mean(observed**2))


def test_rank_average_gives_ties_their_mean_rank():
    np.testing.assert_allclose(rank_average(np.array([10.0, 20.0, 10.0, 30.0])), [1.5, 3.0, 1.5, 4.0])


def test_spearman_and_auc_against_brute_force():
    rng = np.random.default_rng(0)
    observed = np.round(rng.gamma(1, 1, 300), 1)  # many ties
    imputed = observed + rng.normal(0, 0.5, 300)
    m = quality_measures(observed, imputed)
    ro, ri = rank_average(observed), rank_average(np.maximum(imputed, 0))
    assert m["GWspcorr"] == pytest.approx(np.corrcoef(ro, ri)[0, 1])
    labels = rng.random(300) < 0.2
    pos, neg = imputed[labels], imputed[~labels]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert roc_auc(imputed, labels) == pytest.approx(brute)


def test_perfect_imputation_scores_perfectly():
    observed = np.random.default_rng(1).gamma(1, 1, 1000)
    m = quality_measures(observed, observed)
    assert m["MSEglobal"] == 0 and m["Match1"] == 1 and m["GWcorr"] == pytest.approx(1)
