"""The paired block bootstrap: the fast path equals quality_measures on the resampled genome, and the margins
of planted methods cover what was planted."""

import numpy as np
import pytest

from predictd_core.model.measures import MEASURES, quality_measures

from bench.accuracy.bootstrap import block_of_bins, bootstrap_measures, draw_block_counts, resampled_bins
from bench.accuracy.margins import ALL_SQUARES, margin_rows, verdict


def _tied_tracks(n: int, seed: int = 5) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An observed track and two imputations rounded so that ties are everywhere, with a stretch of zeros
    and negative imputed values (clipped at 0), as real tracks have."""
    rng = np.random.default_rng(seed)
    observed = np.round(np.arcsinh(rng.gamma(0.4, 3.0, n)), 1)
    observed[rng.random(n) < 0.3] = 0.0
    return observed, {"near": np.round(0.7 * observed + rng.normal(0, 0.4, n), 1),
                      "far": np.round(rng.normal(0.3, 1.0, n), 2)}


def test_the_fast_path_equals_quality_measures_on_the_resampled_genome():
    observed, imputations = _tied_tracks(2_500)
    bins = np.sort(np.random.default_rng(1).choice(3_000, 2_500, replace=False))  # scored bins have gaps
    blocks = block_of_bins(bins, 100)
    counts = draw_block_counts(30, 6, seed=3)
    masks = {"promoters": np.random.default_rng(2).random(2_500) < 0.1}
    fast = bootstrap_measures(observed, imputations, blocks, counts, masks)
    assert (counts.sum(axis=1) == 30).all() and (counts == 0).any() and (counts > 1).any()
    for b in range(counts.shape[0]):
        where = resampled_bins(blocks, counts[b])
        assert where.size == counts[b] @ np.bincount(blocks, minlength=30)
        for method, imputed in imputations.items():
            direct = quality_measures(observed[where], imputed[where], {"promoters": masks["promoters"][where]})
            assert list(direct) == [*MEASURES, "MSEprom"]
            np.testing.assert_allclose(fast[method][b], list(direct.values()), rtol=1e-10, atol=1e-12,
                                       err_msg=f"resample {b}, {method}")


def test_drawing_every_block_once_gives_the_measures_of_the_data():
    observed, imputations = _tied_tracks(1_000)
    blocks = block_of_bins(np.arange(1_000), 50)
    fast = bootstrap_measures(observed, imputations, blocks, np.ones((1, 20), dtype=int))
    for method, imputed in imputations.items():
        np.testing.assert_allclose(fast[method][0], list(quality_measures(observed, imputed).values()), rtol=1e-10)


def test_the_draws_are_fixed_by_the_seed_and_each_resample_draws_as_many_blocks_as_there_are():
    first, again, other = draw_block_counts(40, 50, 7), draw_block_counts(40, 50, 7), draw_block_counts(40, 50, 8)
    assert first.shape == (50, 40) and (first.sum(axis=1) == 40).all()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # with replacement: about 1 - 1/e of the blocks are drawn at least once per resample
    assert 0.55 < (first > 0).mean() < 0.71


def _planted(n: int, block_bins: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """An observed track far from 0 (no clipping) and methods with known errors, the errors of each block
    sharing a random scale, so that bins within a block are alike (what the blocks are for)."""
    rng = np.random.default_rng(seed)
    blocks = block_of_bins(np.arange(n), block_bins)
    scale = rng.uniform(0.5, 1.5, blocks.max() + 1)[blocks]
    observed = 4.0 + rng.normal(0, 1, n)
    error = rng.normal(0, 0.3, n) * scale
    return observed, {
        "predictd": observed + error,
        "worse": observed + error + rng.normal(0, 0.4, n) * scale,          # MSE larger by 0.16 * E[scale^2]
        "twin": observed + rng.normal(0, 0.3, n) * scale,                   # as good as predictd
        "same": observed + error,                                           # identical to predictd
    }, blocks


def _margins(observed, methods, blocks, resamples=200, seed=0):
    counts = draw_block_counts(blocks.max() + 1, resamples, seed)
    resampled = {name: values[None] for name, values in bootstrap_measures(observed, methods, blocks, counts).items()}
    means = {name: np.array(list(quality_measures(observed, values).values())) for name, values in methods.items()}
    rows = margin_rows({"square": resampled}, {"square": means}, list(MEASURES))
    return {(row["scope"], row["peer"], row["measure"]): row for row in rows}


def test_a_large_planted_difference_is_covered_and_won_and_identical_methods_tie():
    observed, methods, blocks = _planted(20_000, 200, seed=1)
    margins = _margins(observed, methods, blocks)
    truth = -0.4 ** 2 * np.mean(np.random.default_rng(1).uniform(0.5, 1.5, 100) ** 2)  # the draw's E[scale^2]
    worse = margins[("square", "worse", "MSEglobal")]
    assert worse["low"] < truth < worse["high"] and worse["high"] < 0 and worse["verdict"] == "win"
    assert worse["difference"] == pytest.approx(truth, abs=0.01)
    assert margins[("square", "worse", "GWcorr")]["verdict"] == "win"  # higher is better: the interval is above 0
    for measure in MEASURES:  # identical methods: every resample gives a difference of exactly 0
        same = margins[("square", "same", measure)]
        assert same["low"] == same["high"] == same["difference"] == 0 and same["verdict"] == "tie"
    twin = margins[("square", "twin", "MSEglobal")]
    assert twin["low"] < 0 < twin["high"] and twin["verdict"] == "tie"
    assert twin["high"] - twin["low"] < 0.05  # not a vacuous interval: the planted difference is 0.16
    overall = margins[(ALL_SQUARES, "worse", "MSEglobal")]  # one square: the mean over squares is that square
    assert (overall["low"], overall["high"], overall["difference"]) == (worse["low"], worse["high"], worse["difference"])


def test_the_blocks_widen_the_interval_where_bins_are_alike_within_blocks():
    """Errors whose size is shared within a block: single-bin blocks (an iid bootstrap) understate the spread."""
    observed, methods, blocks = _planted(20_000, 200, seed=2)
    pair = {"predictd": methods["predictd"], "worse": methods["worse"]}
    by_block = _margins(observed, pair, blocks)[("square", "worse", "MSEglobal")]
    by_bin = _margins(observed, pair, np.arange(observed.size))[("square", "worse", "MSEglobal")]
    assert by_block["high"] - by_block["low"] > 2 * (by_bin["high"] - by_bin["low"])


def test_the_mean_over_squares_pairs_each_resample_across_squares():
    """Two squares whose differences move in opposite directions resample by resample: their mean's interval is
    far narrower than either square's, which only pairing across squares gives."""
    b = np.linspace(-1, 1, 200)
    base = np.zeros((1, 200, 1))
    resampled = {"one": {"predictd": base + b[None, :, None], "peer": base},
                 "two": {"predictd": base - b[None, :, None] + 0.5, "peer": base}}
    means = {"one": {"predictd": np.array([0.0]), "peer": np.array([0.0])},
             "two": {"predictd": np.array([0.5]), "peer": np.array([0.0])}}
    rows = {row["scope"]: row for row in margin_rows(resampled, means, ["GWcorr"])}
    assert rows["one"]["verdict"] == rows["two"]["verdict"] == "tie"
    assert rows[ALL_SQUARES]["low"] == pytest.approx(0.25) and rows[ALL_SQUARES]["high"] == pytest.approx(0.25)
    assert rows[ALL_SQUARES]["verdict"] == "win" and rows[ALL_SQUARES]["difference"] == pytest.approx(0.25)


@pytest.mark.parametrize("measure, low, high, expected", [
    ("MSEglobal", -0.2, -0.1, "win"), ("MSEglobal", 0.1, 0.2, "loss"), ("MSEglobal", -0.1, 0.1, "tie"),
    ("GWcorr", 0.1, 0.2, "win"), ("GWcorr", -0.2, -0.1, "loss"), ("Catch1obs", 0.0, 0.1, "tie"),
    ("AucObs1", float("nan"), float("nan"), "n/a"),
])
def test_a_win_is_an_interval_that_excludes_0_on_the_side_the_measure_prefers(measure, low, high, expected):
    assert verdict(low, high, measure) == expected
