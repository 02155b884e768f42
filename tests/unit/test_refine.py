"""The refinement stage, against hand-computed values and planted structure it must find."""

import numpy as np
import pytest

from predictd_core.impute.refine import stage
from predictd_core.impute.refine.features import (LEVELS, WINDOWS, ChunkFeatures, KnotGrid, cell_scale, quantile_tables,
                                                  cell_similarity, knot_grid, monotone_map, n_features,
                                                  nearest_inputs, sorted_quantiles, window_means)
from predictd_core.impute.refine.regression import RidgeBlocks, fit_refiner, peak_weights, ridge_weights
from predictd_core.impute.refine.stage import Refinement, sample_stretches, whole_cell_batches
from predictd_core.impute.refine.validation import (BLENDS, SCORED, TENSOR_SHARES, choose_blend, inner_tracks,
                                                    neighbour_counts, scale_losses, smallest_gain)
from predictd_core.model.factors import Layout


def grid_layout(n_cells: int, n_assays: int) -> Layout:
    cells, assays = np.meshgrid(np.arange(n_cells), np.arange(n_assays), indexing="ij")
    return Layout(tuple(f"C{c}" for c in range(n_cells)), tuple(f"A{a}" for a in range(n_assays)),
                  cells.ravel(), assays.ravel())


def test_monotone_map_averages_tied_knots_and_interpolates():
    xp, fp = np.array([0.0, 0.0, 1.0, 2.0]), np.array([0.0, 2.0, 3.0, 4.0])
    assert monotone_map(np.array([0.0, 0.5, 1.5, 9.0]), xp, fp) == pytest.approx([1.0, 2.0, 3.5, 4.0])


@pytest.mark.parametrize("cells_per_knot", [1, 4])
def test_knot_grid_maps_exactly_as_np_interp(cells_per_knot):
    rng = np.random.default_rng(7)
    # a peaky track's quantile function: a run of tied zeros, knots bunched near zero, a long sparse tail
    sample = np.arcsinh(np.where(rng.random(100_000) < 0.4, 0.0, rng.gamma(0.3, 3.0, 100_000)))
    xp = np.quantile(sample, LEVELS)
    xp[500:503] = xp[500] + np.array([0.0, 1e-12, 2e-12])  # knots far closer than a grid cell
    grid = KnotGrid(xp, cells_per_knot)
    targets = grid.targets(np.sort(rng.gamma(1.0, 2.0, xp.size)))
    values = np.concatenate([rng.choice(sample, 20_000), rng.uniform(-1, xp[-1] + 1, 2_000), xp, grid.knots,
                             [np.nan, np.inf, -np.inf, xp[500] + 1.5e-12]])
    for dtype in (np.float64, np.float32):
        expected = np.interp(values.astype(dtype), grid.knots, targets)
        assert np.array_equal(grid.map(values.astype(dtype), targets), expected, equal_nan=True)
        segments = grid.segments(values.astype(dtype))  # found once, then reused toward other targets
        assert segments.dtype == np.uint16
        assert np.array_equal(grid.map(values.astype(dtype), targets, segments), expected, equal_nan=True)
    one = KnotGrid(np.array([2.0, 2.0]))
    assert one.map(np.array([1.0, 2.0, 3.0]), one.targets(np.array([1.0, 3.0]))) == pytest.approx([2.0, 2.0, 2.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sorted_quantiles_are_np_quantile_value_for_value(dtype):
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 1000, 3001):  # fewer values than levels, and more
        values = rng.gamma(0.5, 2.0, (n, 4)).astype(dtype)
        values[:n // 3] = 0.0  # ties, as a track's empty bins
        expected = np.quantile(values, LEVELS, axis=0)
        assert np.array_equal(sorted_quantiles(np.sort(values, axis=0)), expected)
        assert np.array_equal(sorted_quantiles(np.sort(values[:, 0])), expected[:, 0])


def test_equal_knots_share_one_grid_while_held():
    table = np.linspace(0.0, 3.0, 11)
    grid = knot_grid(table)
    assert knot_grid(table.copy()) is grid and knot_grid(table + 1.0) is not grid


def test_window_means_match_a_loop_clipped_at_the_ends():
    for n in (50, 9, 5):  # windows inside the array, one just as long, none fitting whole
        x = np.random.default_rng(n).normal(size=(n, 3))
        for half in (0, 4):
            expected = np.array([x[max(0, i - half):i + half + 1].mean(axis=0) for i in range(n)])
            assert window_means(x, half) == pytest.approx(expected)
            assert window_means(x[:, 1], half) == pytest.approx(expected[:, 1])


def test_pair_features_use_other_cells_average_and_fill_a_missing_assay_with_its_average():
    layout = grid_layout(3, 3)
    inputs = np.array([k for k in range(9) if k != 5])  # cell 1 has no assay 2
    Z = np.random.default_rng(1).random((20, inputs.size))
    X = ChunkFeatures(Z, layout, inputs).design(cell=1, assay=0)
    assert X.shape == (20, n_features(3))
    column = {k: Z[:, j] for j, k in enumerate(inputs)}
    average = (column[0] + column[6]) / 2  # assay 0 in cells 0 and 2
    assert X[:, 0] == pytest.approx(average)
    own = np.column_stack([column[4], (column[2] + column[8]) / 2])  # cell 1's assay 1; assay 2 averaged
    n_windows = len(WINDOWS)  # blocks, each window-major: the average, the 2 own, their products, the 3 squares
    own_at, products_at, squares_at = n_windows, 3 * n_windows, 5 * n_windows
    assert X[:, own_at:own_at + 2] == pytest.approx(own)
    for w, half_width in enumerate(WINDOWS):  # every feature also as its window's mean
        assert X[:, w] == pytest.approx(window_means(average, half_width))
        assert X[:, own_at + 2 * w:own_at + 2 * w + 2] == pytest.approx(window_means(own, half_width))
    for w, half_width in enumerate(WINDOWS):  # the second-degree terms, window by window
        windowed_average, windowed_own = window_means(average, half_width), window_means(own, half_width)
        at = products_at + 2 * w
        assert X[:, at:at + 2] == pytest.approx(windowed_own * windowed_average[:, None])
        at = squares_at + 3 * w
        assert X[:, at] == pytest.approx(windowed_average ** 2)  # the average's square first
        assert X[:, at + 1:at + 3] == pytest.approx(windowed_own ** 2)
    assert squares_at + 3 * n_windows == X.shape[1] - 1  # then the intercept
    assert X[:, -1] == pytest.approx(1.0)


def test_cell_similarity_is_the_mean_correlation_over_the_other_assays_both_cells_measure():
    layout = grid_layout(4, 3)
    inputs = np.array([k for k in range(12) if k not in (5, 7, 9)])  # cells 1, 2, 3 lack assays 2, 1, 0
    rng = np.random.default_rng(11)
    Z = [rng.random((30, inputs.size)), rng.random((20, inputs.size))]
    similarity = cell_similarity(Z, layout, inputs)
    stacked = np.vstack(Z)
    track = {(int(layout.cell_of[k]), int(layout.assay_of[k])): stacked[:, j] for j, k in enumerate(inputs)}
    for assay in range(3):
        for c in range(4):
            for d in range(4):
                shared = [b for b in range(3) if b != assay and (c, b) in track and (d, b) in track]
                if c == d or not shared:
                    assert c == d or np.isnan(similarity[assay, c, d])
                    continue
                expected = np.mean([np.corrcoef(track[c, b], track[d, b])[0, 1] for b in shared])
                assert similarity[assay, c, d] == pytest.approx(expected, rel=1e-12)
    # for assay 0, cells 1 and 3 share only assay 1: cell 1 lacks assay 2
    assert np.isfinite(similarity[0, 1, 3])


def test_nearest_inputs_rank_the_other_cells_measuring_the_assay_by_similarity():
    layout = grid_layout(4, 2)
    inputs = np.array([0, 1, 2, 3, 5, 6, 7])  # cell 2 lacks assay 0
    similarity = np.full((2, 4, 4), np.nan)
    similarity[0, 0] = [1.0, 0.2, 0.9, 0.5]  # cell 2 is most like cell 0, but has no assay 0
    similarity[1, 0] = [1.0, 0.1, np.nan, 0.7]
    nearest = nearest_inputs(similarity, layout, inputs, 2)
    column = {int(k): j for j, k in enumerate(inputs)}
    assert nearest[0, 0].tolist() == [column[6], column[2]]  # assay 0 of cells 3 then 1
    assert nearest[0, 1].tolist() == [column[7], column[3]]  # NaN (cell 2) ranks last
    assert nearest_inputs(similarity, layout, inputs, 3)[0, 0].tolist() == [column[6], column[2], column[2]]
    alone = nearest_inputs(similarity, layout, np.array([0, 1, 3]), 2)
    assert alone[0, 0].tolist() == [-1, -1] and alone[1, 0].tolist() == [0, 0]  # no other cell; one other
    assert nearest_inputs(similarity, layout, inputs, 0).shape == (4, 2, 0)


def test_pair_features_end_with_the_nearest_cells_tracks_at_each_window():
    layout = grid_layout(4, 3)
    inputs = np.array([k for k in range(12) if k != 5])
    Z = np.random.default_rng(12).random((40, inputs.size))
    nearest = np.zeros((4, 3, 2), dtype=np.int64)
    nearest[1, 2] = [8, 2]  # (cell 1, assay 2): cell 3's track, then cell 0's (positions in inputs)
    X = ChunkFeatures(Z, layout, inputs, nearest).design(cell=1, assay=2)
    assert X.shape == (40, n_features(3, 2))
    assert X[:, :n_features(3) - 1] == pytest.approx(ChunkFeatures(Z, layout, inputs).design(1, 2)[:, :-1])
    expected = [window_means(Z[:, position], half) for position in (8, 2) for half in WINDOWS]
    assert X[:, n_features(3) - 1:-1] == pytest.approx(np.column_stack(expected))
    assert X[:, -1] == pytest.approx(1.0)


def test_neighbour_term_is_the_neighbour_windows_times_their_weights():
    layout = grid_layout(4, 3)
    inputs = np.array([k for k in range(12) if k != 5])
    rng = np.random.default_rng(15)
    Z = rng.random((50, inputs.size))
    nearest = nearest_inputs(rng.random((3, 4, 4)), layout, inputs, 3)
    nearest[2, 1] = -1  # as where no other cell measures the assay
    features = ChunkFeatures(Z, layout, inputs, nearest)
    for n in (1, 3):
        weights = rng.normal(size=n * len(WINDOWS))
        assert features.neighbour_term(1, 2, weights) == pytest.approx(
            features.neighbour_windows(1, 2, n) @ weights, rel=1e-12)
        assert features.neighbour_term(2, 1, weights).tolist() == [0.0] * 50


@pytest.mark.parametrize("n_neighbours", [0, 2])
def test_a_cells_assays_predicted_together_match_each_pairs_design_times_its_ridge(n_neighbours):
    layout = grid_layout(4, 3)
    inputs = np.array([k for k in range(12) if k not in (5, 7)])  # cell 1 lacks assay 2, cell 2 assay 1
    rng = np.random.default_rng(4)
    similarity = rng.random((3, 4, 4))
    features = ChunkFeatures(rng.random((60, inputs.size)), layout, inputs,
                             nearest_inputs(similarity, layout, inputs, n_neighbours))
    weights = rng.normal(size=(3, n_features(3, n_neighbours)))
    blocks = RidgeBlocks.from_weights(weights)
    every_pair = np.divmod(np.arange(12), 3)
    some_pairs = (np.array([3, 1, 1, 0, 2]), np.array([1, 2, 0, 2, 1]))  # in no order; cells' own assays among them
    for cells, assays in (every_pair, some_pairs, (2, np.array([1]))):
        predicted, average = blocks.predict(features, cells, assays)
        for i, (cell, assay) in enumerate(zip(*np.broadcast_arrays(cells, assays))):
            design = features.design(cell, assay)
            assert predicted[:, i] == pytest.approx(design @ weights[assay], rel=1e-12)
            assert average[:, i] == pytest.approx(design[:, 0], rel=1e-12)


@pytest.mark.parametrize("n_neighbours", [0, 1])
def test_each_assays_ridge_is_the_peak_weighted_least_squares_over_its_cells(n_neighbours):
    """Against the normal equations written out: rows of every cell measuring the assay, each weighted by
    1 + its value, the intercept not shrunk."""
    layout = grid_layout(4, 3)
    inputs = np.array([k for k in range(12) if k != 5])  # cell 1 lacks assay 2
    rng = np.random.default_rng(6)
    nearest = nearest_inputs(rng.random((3, 4, 4)), layout, inputs, n_neighbours)
    chunks = [ChunkFeatures(rng.gamma(0.5, 1.0, (50, inputs.size)) - 0.1, layout, inputs, nearest)
              for _ in range(2)]
    ridge = 3.0
    weights = ridge_weights(chunks, layout, inputs, ridge, None)
    assert peak_weights(np.array([-0.5, 0.0, 2.5])).tolist() == [1.0, 1.0, 3.5]
    for assay in range(3):
        X = np.vstack([chunk.design(int(layout.cell_of[k]), assay) for chunk in chunks
                       for k in inputs if layout.assay_of[k] == assay])
        y = np.concatenate([chunk.Z[:, j] for chunk in chunks for j, k in enumerate(inputs)
                            if layout.assay_of[k] == assay])
        w = 1.0 + np.clip(y, 0, None)
        penalty = np.full(X.shape[1], ridge)
        penalty[-1] = 0.0
        expected = np.linalg.solve(X.T @ (w[:, None] * X) + np.diag(penalty), X.T @ (w * y))
        assert weights[assay] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        plain = np.linalg.solve(X.T @ X + np.diag(penalty), X.T @ y)
        assert not np.allclose(weights[assay], plain, rtol=1e-3)  # the weights matter on skewed signal


def test_the_squares_fit_a_peak_that_grows_faster_than_the_cells_other_assay():
    """Assay 0 of every cell is the square of the cell's assay 1: the ridge's squares carry it to a cell it
    never saw, where the first-degree features alone (least squares on the same rows) miss it by far."""
    layout = grid_layout(5, 3)
    rng = np.random.default_rng(16)
    own = rng.gamma(1.0, 1.0, (400, 5))
    Z = np.column_stack([column for c in range(5) for column in (own[:, c] ** 2, own[:, c], rng.random(400))])
    inputs = np.arange(1, 15)  # cell 0's assay 0 left out
    features = ChunkFeatures(Z[:, inputs], layout, inputs)
    weights = ridge_weights([features], layout, inputs, 1e-6, None)
    predicted, _ = RidgeBlocks.from_weights(weights).predict(features, 0, np.array([0]))
    squares_error = np.mean((predicted[:, 0] - own[:, 0] ** 2) ** 2)
    linear = [column for column in range(n_features(3)) if not 9 <= column < 24]  # no second-degree terms
    X = np.vstack([features.design(cell, 0)[:, linear] for cell in range(1, 5)])
    fit = np.linalg.lstsq(X, (own[:, 1:] ** 2).T.ravel(), rcond=None)[0]
    linear_error = np.mean((features.design(0, 0)[:, linear] @ fit - own[:, 0] ** 2) ** 2)
    assert squares_error < 1e-6 * np.var(own[:, 0] ** 2) and linear_error > 0.05 * np.var(own[:, 0] ** 2)


def planted_tables(model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantile functions of a 4 x 3 grid that are exactly ``model``'s: (tables, cells, assays)."""
    rng = np.random.default_rng(2)
    cell_part, assay_part = np.cumsum(rng.random((4, 5)), axis=1), np.cumsum(rng.random((3, 5)), axis=1)
    shape = np.linspace(0, 3, 5)  # every part increasing: so is every sum, as a quantile function
    cells, assays = np.meshgrid(np.arange(4), np.arange(3), indexing="ij")
    cells, assays = cells.ravel(), assays.ravel()
    tables = shape + cell_part[cells] + assay_part[assays]
    return (tables if model == "additive" else np.expm1(tables)), cells, assays


@pytest.mark.parametrize("model", ["additive", "multiplicative"])
def test_cell_scale_recovers_a_left_out_pairs_quantile_function_of_its_model(model):
    tables, cells, assays = planted_tables(model)
    keep = np.arange(12) != 7
    scale = cell_scale(tables[keep], cells[keep], assays[keep], 4, 3, model)
    assert scale[7] == pytest.approx(tables[7], rel=1e-9, abs=1e-9)
    with pytest.raises(ValueError, match="scale model 'cubic'"):
        cell_scale(tables, cells, assays, 4, 3, "cubic")


@pytest.mark.parametrize("model", ["additive", "multiplicative"])
def test_the_scale_model_that_predicts_left_out_quantile_functions_best_is_the_planted_one(model):
    tables, cells, assays = planted_tables(model)
    layout = grid_layout(4, 3)
    inputs = cells * 3 + assays
    losses = scale_losses(tables, layout, inputs, np.array([0, 4, 7, 11]))
    other = next(m for m in losses if m != model)
    assert losses[model] < 1e-18 and losses[other] > 1e-4
    by_hand = np.mean([np.mean((cell_scale(np.delete(tables, j, axis=0), np.delete(cells, j), np.delete(assays, j),
                                           4, 3, other)[inputs[j]] - tables[j]) ** 2) for j in (0, 4, 7, 11)])
    assert losses[other] == pytest.approx(by_hand, rel=1e-12)


def planted_chunks(n_cells: int = 5, n_bins: int = 4000, seed: int = 3) -> list[np.ndarray]:
    """Assay 0 of every cell is that cell's own assay 1 (cell-specific peaks); assay 2 is shared noise.

    The average of assay 0 over the other cells knows nothing of a cell's peaks; its own assay 1 knows all.
    """
    rng = np.random.default_rng(seed)
    own = np.arcsinh(rng.exponential(1.0, size=(n_bins, n_cells)) * (rng.random((n_bins, n_cells)) < 0.1) * 20)
    shared = np.arcsinh(rng.exponential(1.0, size=n_bins))
    columns = []
    for c in range(n_cells):
        columns += [own[:, c], own[:, c], shared + 0.1 * rng.random(n_bins)]
    signal = np.column_stack(columns)
    return [signal[:n_bins // 2], signal[n_bins // 2:]]


def average_tensor(chunks: list[np.ndarray], layout: Layout, inputs: np.ndarray) -> list[np.ndarray]:
    """A tensor model that knows nothing of a cell: each input's imputation is its assay's mean over the
    other input cells."""
    return [np.column_stack([chunk[:, layout.same_assay_columns(inputs, k)].mean(axis=1) for k in inputs])
            for chunk in chunks]


def test_the_stage_learns_the_cells_own_assay_and_validation_trusts_it():
    layout = grid_layout(5, 3)
    chunks = planted_chunks()
    target = 0  # (cell 0, assay 0), held out
    inputs = np.arange(1, 15)
    validation = choose_blend(chunks, layout, inputs, ridge=1.0, limit=4,
                              tensor=average_tensor(chunks, layout, inputs))
    blend, table = validation.blend, validation.table
    assert [row["blend"] for row in table[:len(BLENDS)]] == list(BLENDS)
    assert all(row["tensor"] == 0.0 for row in table[:len(BLENDS)])
    assert [row["tensor"] for row in table[len(BLENDS):-1]] == list(TENSOR_SHARES)
    assert table[-1]["blend"] is None and table[-1]["tensor"] is None  # the baseline
    assert blend >= 0.8  # the regression is right; the average of other cells is not
    assert validation.tensor <= 0.2  # a tensor model that only knows that average adds little
    # an even sample of the 14 tracks ordered by assay (4 of A0, 5 of A1, 5 of A2): C2:A0, C1:A1, C4:A1, C3:A2
    assert validation.tracks == (6, 4, 13, 11)
    refiner = fit_refiner(chunks, layout, inputs, ridge=1.0, validation=validation)
    assert refiner.refinable(0, 0) and (refiner.blend, refiner.tensor) == (blend, validation.tensor)
    observed = np.concatenate([chunk[:, target] for chunk in chunks])
    average = np.concatenate([chunk[:, [3, 6, 9, 12]].mean(axis=1) for chunk in chunks])
    refined = np.concatenate([refiner.predict(refiner.features(chunk), 0, np.array([0]),
                                              chunk[:, [3, 6, 9, 12]].mean(axis=1, keepdims=True))[:, 0]
                              for chunk in chunks])
    assert np.mean((refined - observed) ** 2) < 0.2 * np.mean((average - observed) ** 2)
    assert np.corrcoef(refined, observed)[0, 1] > 0.9


def grouped_cells(n_bins: int = 4000) -> tuple[Layout, list[np.ndarray], np.ndarray]:
    """Two groups of three cells; each group has peaks of its own in every assay, different from assay to
    assay: the other assays rank a cell's group first, and only the nearest cells' track of an assay carries
    the group's peaks (the average mixes both groups, the cell's other assays carry other peaks). (layout,
    chunks, inputs: all but the target, cell 0's assay 0)."""
    rng = np.random.default_rng(13)
    peaks = rng.exponential(3.0, size=(2, 3, n_bins)) * (rng.random((2, 3, n_bins)) < 0.1)
    signal = np.column_stack([np.arcsinh(peaks[c // 3, a] + 0.3 * rng.random(n_bins)) for c in range(6)
                              for a in range(3)])
    return grid_layout(6, 3), [signal[:n_bins // 2], signal[n_bins // 2:]], np.arange(1, 18)


def test_the_nearest_cells_lend_a_pair_the_peaks_its_group_of_cells_shares():
    layout, chunks, inputs = grouped_cells()
    signal = np.vstack(chunks)
    errors = {}
    for n_neighbours in (0, 1):
        refiner = fit_refiner(chunks, layout, inputs, ridge=1.0, blend=1.0, neighbours=n_neighbours)
        refined = np.concatenate([refiner.predict(refiner.features(chunk), 0, np.array([0]), chunk[:, [0]] * 0)[:, 0]
                                  for chunk in chunks])
        errors[n_neighbours] = np.mean((refined - signal[:, 0]) ** 2)
    assert refiner.nearest[0, 0, 0] in (2, 5)  # positions of cells 1 and 2's assay 0 among the inputs
    assert errors[1] < 0.25 * errors[0]


def test_validation_tracks_are_an_even_sample_in_which_each_assay_counts_as_often_as_it_is_measured():
    layout = grid_layout(12, 3)
    inputs = np.array([k for k in range(36) if k % 3 == 0 or k < 12])  # A0 in 12 cells, A1 and A2 in 4
    picked = inner_tracks(layout, inputs, 8)
    assays = layout.assay_of[inputs[picked]]
    assert np.bincount(assays).tolist() == [5, 1, 2] and len(set(picked.tolist())) == 8  # in proportion: 4.8, 1.6, 1.6
    assert inner_tracks(layout, inputs, 100).size == inputs.size  # all of them when the limit allows
    allowed = layout.assay_of[inputs] != 1
    assert set(layout.assay_of[inputs[inner_tracks(layout, inputs, 8, allowed)]]) == {0, 2}
    two_cells = inputs[(layout.assay_of[inputs] != 2) | (layout.cell_of[inputs] < 2)]  # A2 in 2 cells only
    assert 2 not in layout.assay_of[two_cells[inner_tracks(layout, two_cells, 100)]]


def test_fewer_neighbours_solve_the_same_ridge_as_features_built_with_fewer():
    layout = grid_layout(5, 3)
    inputs = np.arange(1, 15)
    rng = np.random.default_rng(14)
    similarity = rng.random((3, 5, 5))
    Z = [rng.gamma(0.5, 1.0, (60, inputs.size)) for _ in range(2)]
    many = [ChunkFeatures(z, layout, inputs, nearest_inputs(similarity, layout, inputs, 2)) for z in Z]
    for count in (0, 1):
        few = [ChunkFeatures(z, layout, inputs, nearest_inputs(similarity, layout, inputs, count)) for z in Z]
        assert ridge_weights(many, layout, inputs, 2.0, None, count) == pytest.approx(
            ridge_weights(few, layout, inputs, 2.0, None), rel=1e-9, abs=1e-12)
    assert neighbour_counts(0) == (0,) and neighbour_counts(1) == (0, 1)
    assert neighbour_counts(4) == (0, 1, 2, 4) and neighbour_counts(6) == (0, 1, 2, 4, 6)


def test_validation_picks_neighbours_where_a_cells_group_shares_its_peaks_and_records_them():
    layout, chunks, inputs = grouped_cells()
    validation = choose_blend(chunks, layout, inputs, ridge=1.0, limit=6, tensor=average_tensor(chunks, layout, inputs),
                              neighbours=2)
    losses = validation.neighbour_losses
    assert set(losses) == {0, 1, 2} and validation.neighbours == min(losses, key=losses.get) >= 1
    assert losses[validation.neighbours] < 0.5 * losses[0]
    refiner = fit_refiner(chunks, layout, inputs, ridge=1.0, validation=validation)
    assert refiner.neighbours == validation.neighbours and refiner.weights.shape[1] == n_features(3, refiner.neighbours)
    record = Refinement((refiner,), np.zeros(18, dtype=np.int64)).record()[0]
    assert record["neighbours"] == validation.neighbours
    assert record["neighbour_losses"] == {str(k): loss for k, loss in losses.items()}


def test_validation_takes_the_multiplicative_scale_where_each_cell_multiplies_its_signal_and_records_it():
    layout = grid_layout(5, 3)
    rng = np.random.default_rng(17)
    assays = [np.arcsinh(rng.exponential(1.0, 4000) * (rng.random(4000) < 0.2) * 20), np.arcsinh(rng.exponential(2.0, 4000)),
              rng.random(4000)]
    factors = [1.0, 1.5, 2.0, 3.0, 4.0]  # every track of a cell: its assay's values, shuffled, times 1 + value
    signal = np.column_stack([(1.0 + rng.permutation(assays[a])) * factors[c] - 1.0 for c in range(5) for a in range(3)])
    chunks = [signal[:2000], signal[2000:]]
    inputs = np.arange(1, 15)
    validation = choose_blend(chunks, layout, inputs, ridge=1.0, limit=6, tensor=average_tensor(chunks, layout, inputs))
    losses = validation.scale_losses
    assert validation.scale == "multiplicative" and losses["multiplicative"] < 0.1 * losses["additive"]
    refiner = fit_refiner(chunks, layout, inputs, ridge=1.0, validation=validation)
    expected = cell_scale(quantile_tables(chunks, inputs), layout.cell_of[inputs], layout.assay_of[inputs], 5, 3,
                          "multiplicative")
    assert refiner.scale == pytest.approx(expected, rel=1e-12)
    record = Refinement((refiner,), np.zeros(15, dtype=np.int64)).record()[0]
    assert record["scale"] == "multiplicative" and record["scale_losses"] == losses


def cell_specific_assay():
    """5 cells x 3 assays where assay 2 of every cell is shared signal plus sparse peaks of its own that none of
    the cell's other tracks carries, and a tensor model's left-out imputation that is each input, slightly
    blurred: (layout, chunks, inputs, tensor)."""
    layout = grid_layout(5, 3)
    rng = np.random.default_rng(8)
    chunks = planted_chunks()
    for chunk in chunks:
        chunk[:, 2::3] += np.arcsinh(rng.exponential(1.0, size=(len(chunk), 5)) * (rng.random((len(chunk), 5)) < 0.1) * 20)
    inputs = np.arange(1, 15)
    tensor = [chunk[:, inputs] + 0.05 * rng.normal(size=(len(chunk), inputs.size)) for chunk in chunks]
    return layout, chunks, inputs, tensor


def test_validation_gives_a_tensor_model_that_knows_the_cell_its_share():
    """Assay 2 of every cell is shared noise plus a cell-specific part that none of the cell's other tracks
    carries: only a tensor model that knows the cell (here its left-out imputation is the track itself,
    slightly blurred) can supply it, and the validation hands it the result."""
    layout, chunks, inputs, tensor = cell_specific_assay()
    validation = choose_blend(chunks, layout, inputs, ridge=1.0, limit=6, tensor=tensor)
    assert validation.tensor >= 0.8
    chosen = next(row for row in validation.table if (row["blend"], row["tensor"]) == (validation.blend, validation.tensor))
    without = max((row for row in validation.table if row["tensor"] == 0.0), key=lambda row: row["min_gain"])
    assert chosen["min_gain"] > without["min_gain"] and chosen["MSEglobal"] < 0.5 * without["MSEglobal"]
    refiner = fit_refiner(chunks, layout, inputs, ridge=1.0, validation=validation)
    truth = chunks[0][:, [0]]
    # the mix is linear in the tensor's value: predicting with it is predicting with 0, plus its share of it
    features = refiner.features(chunks[0])
    assert refiner.predict(features, 0, np.array([0]), truth) == pytest.approx(
        refiner.predict(features, 0, np.array([0]), 0 * truth) + refiner.tensor * truth, rel=1e-9, abs=1e-12)


def test_every_candidate_is_judged_against_the_better_of_the_average_and_the_tensor_alone():
    """Where the tensor alone beats the average (here on every measure), a candidate's gain on a measure is
    what it closes of the tensor's error, not of the average's: mixing in a little tensor is no longer a win."""
    layout, chunks, inputs, tensor = cell_specific_assay()
    validation = choose_blend(chunks, layout, inputs, ridge=1.0, limit=6, tensor=tensor)
    average = validation.table[-1]
    alone = next(row for row in validation.table if row["tensor"] == 1.0)
    reference = {m: min(average[m], alone[m]) if m.startswith("MSE") else max(average[m], alone[m]) for m in SCORED}
    assert any(reference[m] != average[m] for m in SCORED)
    for row in validation.table[:-1]:
        means = {m: row[m] for m in SCORED}
        assert row["min_gain"] == pytest.approx(smallest_gain(means, reference), rel=1e-12)
    assert alone["min_gain"] <= 0 and max(row["min_gain"] for row in validation.table[:-1]) >= 0
    weak = next(row for row in validation.table if row["tensor"] == 0.0)
    assert smallest_gain({m: weak[m] for m in SCORED}, average) > weak["min_gain"]  # the average alone is easier


def test_the_tensor_is_judged_only_on_tracks_its_models_never_trained_on():
    """A tensor imputation that is NaN (every member trained on the track) never judges the tensor. While
    the other tracks can fill the validation they are its tracks; when they cannot (one model on a small
    grid: two validation tracks), the tensor gets no share and the average alone is the reference."""
    layout, chunks, inputs, tensor = cell_specific_assay()
    trained = [part.copy() for part in tensor]
    for part in trained:
        part[:, :2] = np.nan  # inputs 1 and 2 (C0:A1, C0:A2) were trained on by every member
    validation = choose_blend(chunks, layout, inputs, ridge=1.0, limit=6, tensor=trained)
    assert validation.tensor >= 0.8 and len(validation.tracks) == 6 and not {1, 2} & set(validation.tracks)
    for part in trained:
        part[:, 2:-2] = np.nan  # two unseen tracks left: too few for 6
    small = choose_blend(chunks, layout, inputs, ridge=1.0, limit=6, tensor=trained)
    assert small.tensor == 0.0 and len(small.tracks) == 6 and len(small.table) == len(BLENDS) + 1
    average = small.table[-1]
    for row in small.table[:-1]:
        assert row["tensor"] == 0.0
        assert row["min_gain"] == pytest.approx(smallest_gain({m: row[m] for m in SCORED}, average), rel=1e-12)


def test_refinement_keeps_the_tensor_value_where_an_assay_has_one_other_cell():
    layout = grid_layout(3, 2)
    chunks = planted_chunks(n_cells=3)
    chunks = [chunk[:, [0, 1, 3, 4, 6, 7]] for chunk in chunks]  # assays 0 and 1 of 3 cells
    inputs = np.array([1, 2, 3, 5])  # assay 0 measured in cell 1 only; assay 1 in cells 0, 1, 2
    refiner = fit_refiner(chunks, layout, inputs, ridge=1.0)
    assert not refiner.refinable(0, 0)  # one cell with assay 0: no rows to fit on
    refinement = Refinement((refiner,), np.array([-1 if not refiner.refinable(*divmod(p, 2)) else 0
                                                  for p in range(6)]))
    tensor = np.full((chunks[0].shape[0], 2), 7.0)
    out = refinement.apply(chunks[0], tensor, np.array([0, 1]))
    assert out[:, 0] == pytest.approx(7.0)  # (cell 0, assay 0): the tensor's value stands
    assert not np.allclose(out[:, 1], 7.0)  # (cell 0, assay 1): refined
    record = refinement.record()[0]
    assert record["inputs"] == ["C0:A1", "C1:A0", "C1:A1", "C2:A1"]
    assert record["refined"] == ["C0:A1", "C1:A1", "C2:A1"] and (record["blend"], record["tensor"]) == (0.5, 0.0)
    assert record["validated"] == [] and record["validation"] == []  # the blend was given, not validated


def test_smallest_gain_is_the_share_of_the_baseline_error_closed_and_survives_perfect_and_nan_baselines():
    base = {m: 0.2 if m.startswith("MSE") else 0.6 for m in SCORED}
    better = {m: 0.1 if m.startswith("MSE") else 0.7 for m in SCORED}
    assert smallest_gain(better, base) == pytest.approx(0.25)  # MSEs halved; 1 - score from 0.4 to 0.3
    assert smallest_gain(better | {"Match1": 0.5}, base) == pytest.approx(-0.25)  # 0.4 -> 0.5: a quarter worse
    near_ceiling = base | {"AucObs1": 0.99}  # 0.99 -> 0.992 closes a fifth of the error, as much as 0.6 -> 0.68
    assert smallest_gain(better | {"AucObs1": 0.992}, near_ceiling) == pytest.approx(0.2)
    perfect = base | {"Match1": 1.0, "GWcorr": float("nan"), "MSEglobal": 0.0}
    assert smallest_gain(better | {"Match1": 1.0, "MSEglobal": 0.0}, perfect) == 0.0  # ties at no error
    assert smallest_gain(better | {"Match1": 0.9, "MSEglobal": 0.0}, perfect) == -np.inf
    assert smallest_gain(dict.fromkeys(SCORED, float("nan")), base) == -np.inf


def test_blend_validation_on_flat_tracks_picks_a_blend():
    layout = grid_layout(4, 2)
    chunks = [np.zeros((300, 8))]  # no signal: MSEs of 0, no correlation
    validation = choose_blend(chunks, layout, np.arange(1, 8), ridge=1.0, limit=4,
                              tensor=[np.zeros((300, 7))])
    assert validation.blend in BLENDS and validation.tensor in (0.0, *TENSOR_SHARES)
    assert len(validation.table) == len(BLENDS) + len(TENSOR_SHARES) + 1


def test_the_sample_is_whole_chunks_or_middles_of_chunks_spread_over_the_genome(tmp_path, monkeypatch):
    from predictd_core.simulate import simulate_compendium
    from predictd_core.store.signal_store import SignalStore

    out = simulate_compendium(tmp_path / "comp", n_cells=3, n_assays=2, n_bins=4000, signal_format="store",
                              chunk_bins=500, contigs=1)
    store = SignalStore.open(out.store)
    everything = np.concatenate([store.read_chunk(k) for k in range(store.n_chunks)])
    stretches = sample_stretches(store, 1000)  # 2 chunks' worth: whole chunks, but from 4 places
    assert [s.shape[0] for s in stretches] == [250] * 4
    starts = [0 + 125, 1000 + 125, 2500 + 125, 3500 + 125]  # chunks 0, 2, 5, 7 (evenly spread), their middles
    for stretch, start in zip(stretches, starts):
        assert np.array_equal(stretch, everything[start:start + 250], equal_nan=True)
    assert [s.shape[0] for s in sample_stretches(store, 4000)] == [500] * 8
    monkeypatch.setattr(stage, "SAMPLE_VALUES", 6 * 400)  # 6 experiments: 400 bins at most
    assert sum(s.shape[0] for s in sample_stretches(store, 4000)) == 400


def stepped_chunks(n_cells: int = 5, n_bins: int = 6000, seed: int = 5) -> list[np.ndarray]:
    """Every cell's assays are steps of one latent value x of the cell's own (uniform on [0, 4], unrelated
    between cells): assay 0 jumps by 3 where x > 2, assay 1 is x, assay 2 jumps by 3 where x < 1. No line
    through the ridge's features draws a step; a tree's first split does."""
    rng = np.random.default_rng(seed)
    own = rng.uniform(0.0, 4.0, size=(n_bins, n_cells))
    columns = []
    for c in range(n_cells):
        x = own[:, c]
        columns += [3.0 * (x > 2.0) + 0.3 * x, x, 3.0 * (x < 1.0) + 0.3 * x]
    signal = np.column_stack(columns)
    return [signal[:n_bins // 2], signal[n_bins // 2:]]


def test_validation_prefers_trees_where_the_cells_own_assay_acts_through_a_step():
    layout = grid_layout(5, 3)
    chunks = stepped_chunks()
    inputs = np.arange(1, 15)  # (cell 0, assay 0) held out
    tensor = average_tensor(chunks, layout, inputs)
    validation = choose_blend(chunks, layout, inputs, ridge=1.0, limit=6, tensor=tensor, regressors=("ridge", "gbt"))
    assert set(validation.gains) == {"ridge", "gbt"}
    assert validation.regressor == "gbt" and validation.gains["gbt"] > validation.gains["ridge"]
    assert validation.gains["gbt"] == pytest.approx(max(row["min_gain"] for row in validation.table[:-1]))
    ridge_only = choose_blend(chunks, layout, inputs, ridge=1.0, limit=6, tensor=tensor)
    assert ridge_only.regressor == "ridge" and ridge_only.gains["ridge"] == pytest.approx(validation.gains["ridge"])
    trees = fit_refiner(chunks, layout, inputs, ridge=1.0, validation=validation, left_out=tensor)
    ridge = fit_refiner(chunks, layout, inputs, ridge=1.0, blend=1.0)
    assert trees.regressor == "gbt" and trees.refinable(0, 0) and trees.blend == validation.blend
    observed = np.concatenate([chunk[:, 0] for chunk in chunks])
    errors = {}
    for name, refiner in (("gbt", trees), ("ridge", ridge)):
        predicted = [refiner.regression(refiner.features(chunk), 0, np.array([0]), chunk[:, [3, 6, 9, 12]].mean(
            axis=1, keepdims=True))[0][:, 0] for chunk in chunks]
        normalized = np.concatenate([refiner.to_cell_scale(p, 0, 0) for p in predicted])
        errors[name] = np.mean((normalized - observed) ** 2)
    assert errors["gbt"] < 0.5 * errors["ridge"]  # the step; the ridge's line misses it (both read through the
    # cell scale of an unmeasured pair, which costs each the same)


def test_trees_stack_the_tensor_imputation_where_only_the_tensor_knows_the_cell():
    """Assay 2 carries a cell-specific part no other track of the cell has; the tensor's (left-out)
    imputation is that track, blurred. The trees read it as a feature; the ridge cannot."""
    layout, chunks, inputs, tensor = cell_specific_assay()
    trees = fit_refiner(chunks, layout, inputs, ridge=1.0, blend=1.0, regressor="gbt", left_out=tensor)
    ridge = fit_refiner(chunks, layout, inputs, ridge=1.0, blend=1.0)
    target = 14  # (cell 4, assay 2), an input, predicted from its blurred left-out tensor imputation
    truth = np.concatenate([chunk[:, target] for chunk in chunks])
    correlation = {}
    for name, refiner in (("gbt", trees), ("ridge", ridge)):
        predicted = np.concatenate([refiner.regression(refiner.features(chunk), 4, np.array([2]),
                                                       part[:, [target - 1]])[0][:, 0]
                                    for chunk, part in zip(chunks, tensor)])
        correlation[name] = np.corrcoef(predicted, truth)[0, 1]
    assert correlation["gbt"] > 0.95 and correlation["ridge"] < 0.8


def test_tree_refiner_applies_and_records_its_regressor_and_needs_the_tensor_to_fit():
    layout = grid_layout(5, 3)
    chunks = stepped_chunks(n_bins=2000)
    inputs = np.arange(1, 15)
    tensor = average_tensor(chunks, layout, inputs)
    with pytest.raises(ValueError, match="left-out"):
        fit_refiner(chunks, layout, inputs, ridge=1.0, regressor="gbt")
    with pytest.raises(ValueError, match="regressor 'forest'"):
        fit_refiner(chunks, layout, inputs, ridge=1.0, regressor="forest")
    refiner = fit_refiner(chunks, layout, inputs, ridge=1.0, blend=0.7, tensor=0.25, regressor="gbt", left_out=tensor)
    refinement = Refinement((refiner,), np.array([0 if refiner.refinable(*divmod(p, 3)) else -1 for p in range(15)]))
    block = np.full((chunks[0].shape[0], 1), 1.5)
    out = refinement.apply(chunks[0], block.copy(), np.array([0]))
    regression, average = refiner.regression(refiner.features(chunks[0]), 0, np.array([0]), block)
    expected = 0.75 * refiner.to_cell_scale(0.7 * regression[:, 0] + 0.3 * average[:, 0], 0, 0) + 0.25 * 1.5
    assert out[:, 0] == pytest.approx(expected)
    record = refinement.record()[0]
    assert record["regressor"] == "gbt" and record["regressors"] == {} and (record["blend"], record["tensor"]) == (0.7, 0.25)


def test_refine_settings_take_a_regressor_and_refuse_an_unknown_one():
    from pydantic import ValidationError

    from predictd_core.model.settings import RefineSettings

    assert RefineSettings().regressor == "ridge"
    assert RefineSettings(regressor="auto").regressor == "auto"
    with pytest.raises(ValidationError, match="regressor"):
        RefineSettings(regressor="forest")


def test_refiners_sharing_a_chunks_columns_find_each_columns_segments_once():
    layout = grid_layout(5, 3)
    chunks = planted_chunks()
    chunk = chunks[0]
    # two refiners over overlapping inputs, their references different, fitted on the same sample
    first, second = (fit_refiner(chunks, layout, inputs, ridge=1.0) for inputs in (np.arange(1, 15), np.arange(12)))
    segments: dict = {}
    for refiner in (first, second):
        assert np.array_equal(refiner.normalized(chunk, segments=segments), refiner.normalized(chunk))
    assert sorted(column for _, column in segments) == sorted({*range(1, 15), *range(12)})  # one entry a column
    # the stage shares them between its refiners: each refiner's own imputation, pair by pair (a batch's products
    # sum in another order)
    pairs = np.arange(15)
    refinement = Refinement((first, second), np.where(pairs < 12, 0, 1))
    tensor = np.zeros((chunk.shape[0], pairs.size))
    expected = tensor.copy()
    for p in pairs:
        refiner = first if p < 12 else second
        cell, assay = divmod(int(p), 3)
        expected[:, p] = refiner.predict(refiner.features(chunk), cell, np.array([assay]), tensor[:, [p]])[:, 0]
    assert refinement.apply(chunk, tensor.copy(), pairs) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_pairs_are_applied_in_batches_of_whole_cells():
    rng = np.random.default_rng(11)
    cells = rng.permutation(np.repeat(np.arange(9), [5, 1, 7, 3, 12, 2, 4, 6, 5]))
    columns = np.arange(cells.size) + 100
    batches = whole_cell_batches(columns, cells, size=8)
    assert sorted(np.concatenate(batches).tolist()) == columns.tolist()
    seen = set()
    for batch in batches:
        in_batch = set(cells[batch - 100].tolist())
        assert not in_batch & seen  # no cell cut between batches
        seen |= in_batch
        assert batch.size <= 8 or len(in_batch) == 1  # only a cell larger than a batch makes one alone
    assert [b.size for b in batches] == [6, 7, 3, 12, 6, 6, 5]  # cells of 5+1, 7, 3, 12, 2+4, 6, 5
    assert whole_cell_batches(columns[:0], cells[:0]) == []
