"""Ensemble imputation against per-model predictions averaged by hand."""

import numpy as np
import pytest

from predictd_core.impute.ensemble import Ensemble, EnsembleMember, ensemble_chunk, left_out_chunk
from predictd_core.model.factors import CellAssayFactors, Layout


def _factors(rng, n_cells, n_assays, rank):
    return CellAssayFactors(float(rng.normal()), rng.normal(size=(n_cells, rank)), rng.normal(size=(n_assays, rank)),
                            rng.normal(size=n_cells), rng.normal(size=n_assays))


def _ridge_prediction(Y, f, cells, assays, ridge, out_cells, out_assays):
    """Independent reference: per bin, ridge on [z, 1] over the non-NaN inputs (bias unpenalised)."""
    K = f.C.shape[1]
    out = np.empty((Y.shape[0], out_cells.size))
    for i, y in enumerate(Y):
        seen = ~np.isnan(y)
        X = np.column_stack([f.C[cells[seen]] * f.A[assays[seen]], np.ones(seen.sum())])
        offset = f.mu + f.b_c[cells[seen]] + f.b_a[assays[seen]]
        penalty = np.diag([ridge] * K + [0.0])
        w = np.linalg.solve(X.T @ X + penalty, X.T @ (y[seen] - offset))
        out[i] = f.mu + f.b_c[out_cells] + f.b_a[out_assays] + w[K] + (f.C[out_cells] * f.A[out_assays]) @ w[:K]
    return out


@pytest.fixture
def grid():
    rng = np.random.default_rng(3)
    layout = Layout(("c0", "c1", "c2"), ("a0", "a1"), np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 0]))
    Y = rng.normal(size=(40, 5))
    Y[3, 1] = np.nan  # a hole: that bin's solve uses the other inputs
    members = (EnsembleMember("m0", _factors(rng, 3, 2, 2), np.array([0, 1, 2, 3])),
               EnsembleMember("m1", _factors(rng, 3, 2, 2), np.array([1, 2, 3, 4])),
               EnsembleMember("m2", _factors(rng, 3, 2, 2), np.array([0, 2, 4])))
    # pairs cell-major: (c0,a0) (c0,a1) (c1,a0) (c1,a1) (c2,a0) (c2,a1)
    weights = np.array([[1, 1, 0, 1, 1, 1],
                        [0, 1, 1, 1, 0, 1],
                        [0, 0, 1, 1, 1, 1]], dtype=bool)
    return layout, Y, Ensemble(layout, 0.7, members, weights)


def test_each_pair_is_the_mean_of_its_members_and_the_spread_their_std(grid):
    layout, Y, ensemble = grid
    cells, assays = layout.all_pairs()
    per_member = [_ridge_prediction(Y[:, m.input_columns], m.factors, layout.cell_of[m.input_columns],
                                    layout.assay_of[m.input_columns], 0.7, cells, assays)
                  for m in ensemble.members]
    mean, spread = ensemble_chunk(Y, ensemble, with_spread=True)
    for pair in range(6):
        used = [p[:, pair] for p, w in zip(per_member, ensemble.weights[:, pair]) if w]
        np.testing.assert_allclose(mean[:, pair], np.mean(used, axis=0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(spread[:, pair], np.std(used, axis=0), rtol=1e-6, atol=1e-7)
    assert np.all(spread[:, 0] == 0)  # one member: no spread
    assert ensemble_chunk(Y, ensemble)[1] is None


def test_a_subset_of_pairs_is_those_columns_of_the_whole_grid(grid):
    _, Y, ensemble = grid
    pairs = np.array([5, 0, 3])  # any order: the output follows it
    mean, spread = ensemble_chunk(Y, ensemble, with_spread=True)
    sub_mean, sub_spread = ensemble_chunk(Y, ensemble, with_spread=True, pairs=pairs)
    np.testing.assert_allclose(sub_mean, mean[:, pairs], rtol=1e-12)
    np.testing.assert_allclose(sub_spread, spread[:, pairs], rtol=1e-12, atol=1e-12)


def test_members_of_follow_the_weights(grid):
    _, _, ensemble = grid
    assert [m.name for m in ensemble.members_of(1, 0)] == ["m1", "m2"]
    assert [m.name for m in ensemble.members_of(0, 0)] == ["m0"]
    assert ensemble.seen_columns(1, 0).tolist() == [0, 1, 2, 3, 4]  # m1's and m2's inputs, once each
    assert ensemble.seen_columns(0, 0).tolist() == [0, 1, 2, 3]


def test_a_pair_without_members_or_misshaped_weights_is_refused(grid):
    layout, _, ensemble = grid
    weights = ensemble.weights.copy()
    weights[:, 0] = False
    with pytest.raises(ValueError, match="at least one"):
        Ensemble(layout, 0.7, ensemble.members, weights)
    with pytest.raises(ValueError, match="weights must be"):
        Ensemble(layout, 0.7, ensemble.members, weights[:, :4])


def test_a_first_member_covering_every_pair_is_averaged_like_the_others(grid):
    layout, Y, ensemble = grid
    everyone = Ensemble(layout, 0.7, ensemble.members, np.ones((3, 6), dtype=bool))
    alone = Ensemble(layout, 0.7, ensemble.members[:1], np.ones((1, 6), dtype=bool))
    per_member = [ensemble_chunk(Y, Ensemble(layout, 0.7, (m,), np.ones((1, 6), dtype=bool)))[0]
                  for m in ensemble.members]
    mean, spread = ensemble_chunk(Y, everyone, with_spread=True)
    np.testing.assert_allclose(mean, np.mean(per_member, axis=0), rtol=1e-12)
    np.testing.assert_allclose(spread, np.std(per_member, axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ensemble_chunk(Y, alone)[0], per_member[0], rtol=1e-12)


def test_left_out_imputation_refits_every_bin_without_the_column(grid):
    """Each column as the members would impute it unmeasured: per bin, the ridge refitted without it (the
    independent reference), averaged over the chosen members; a member that never had it predicts as usual."""
    layout, Y, ensemble = grid
    Y = Y.copy()
    Y[5, [0, 1, 3, 4]] = np.nan  # bin 5 observes column 2 alone: without it, that bin has no data
    members = np.array([True, True, False])
    columns = np.array([0, 2, 4])
    left_out = left_out_chunk(Y, ensemble, members, columns)
    for j, column in enumerate(columns):
        expected = []
        for member in np.array(ensemble.members)[members]:
            inputs = member.input_columns[member.input_columns != column]
            f = member.factors
            reference = np.full(Y.shape[0], f.mu + f.b_c[layout.cell_of[column]] + f.b_a[layout.assay_of[column]])
            solvable = ~np.isnan(Y[:, inputs]).all(axis=1)  # bin 5 without column 2 has nothing: the offsets alone
            reference[solvable] = _ridge_prediction(Y[np.ix_(solvable, inputs)], f, layout.cell_of[inputs],
                                                    layout.assay_of[inputs], 0.7, layout.cell_of[[column]],
                                                    layout.assay_of[[column]])[:, 0]
            expected.append(reference)
        np.testing.assert_allclose(left_out[:, j], np.mean(expected, axis=0), rtol=1e-9, atol=1e-9)
    # in-sample the members fit their own inputs better than out of sample
    in_sample = ensemble_chunk(Y, ensemble, pairs=np.array([0, 2, 4]))[0]
    observed = np.nan_to_num(Y[:, columns])
    assert np.mean((in_sample - observed) ** 2) < np.mean((left_out - observed) ** 2)


def _per_bin_prediction(y, f, cells, assays, ridge, out_cells, out_assays):
    """Independent reference for one bin: ridge on [z, 1] over its non-NaN inputs (bias unpenalised), solved
    with numpy.linalg.solve; a bin with none of them has G = 0 and b_i = 0, so only the offsets."""
    K = f.C.shape[1]
    seen = ~np.isnan(y)
    w = np.zeros(K + 1)
    if seen.any():
        X = np.column_stack([f.C[cells[seen]] * f.A[assays[seen]], np.ones(seen.sum())])
        offset = f.mu + f.b_c[cells[seen]] + f.b_a[assays[seen]]
        w = np.linalg.solve(X.T @ X + np.diag([ridge] * K + [0.0]), X.T @ (y[seen] - offset))
    return f.mu + f.b_c[out_cells] + f.b_a[out_assays] + w[K] + (f.C[out_cells] * f.A[out_assays]) @ w[:K]


@pytest.fixture
def holey_grid():
    """4 cells x 3 assays, 9 experiments; 4 rank-3 members with different inputs and pairs; column 8 (a holdout
    target) seen by no member; holes of many patterns, some crossing the 16-row blocks the test sets."""
    rng = np.random.default_rng(11)
    cell_of = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3])
    assay_of = np.array([0, 1, 2, 0, 2, 1, 2, 0, 1])
    layout = Layout(("c0", "c1", "c2", "c3"), ("a0", "a1", "a2"), cell_of, assay_of)
    factors = [CellAssayFactors(1.2, rng.normal(0, 0.6, (4, 3)), rng.normal(0, 0.6, (3, 3)), rng.normal(0, 0.2, 4),
                                rng.normal(0, 0.2, 3)) for _ in range(4)]
    truth = factors[0]
    G = rng.gamma(0.5, 1.0, (70, 3))
    Y = truth.mu + truth.b_c[cell_of] + truth.b_a[assay_of] + G @ (truth.C[cell_of] * truth.A[assay_of]).T
    Y += rng.normal(0, 0.2, Y.shape)
    Y[3, 1] = np.nan  # seen by m0 and m1 only
    Y[5, :8] = np.nan  # no input at all: the offsets alone
    Y[7, 8] = np.nan  # only the column no member sees: a complete bin
    Y[14:19, [0, 2]] = np.nan  # one pattern across a block boundary
    Y[30, [2, 3, 4, 5, 6]] = np.nan  # m2 keeps nothing of its inputs
    Y[31, 6] = np.nan
    Y[40:43, 8] = np.nan
    Y[41, 0] = np.nan
    members = (EnsembleMember("m0", factors[0], np.array([0, 1, 2, 3, 4, 5, 6, 7])),
               EnsembleMember("m1", factors[1], np.array([0, 1, 3, 5, 7])),
               EnsembleMember("m2", factors[2], np.array([2, 4, 6])),
               EnsembleMember("m3", factors[3], np.array([7, 0, 5, 3])))  # unsorted inputs
    weights = rng.random((4, 12)) < 0.6
    weights[0, ~weights.any(axis=0)] = True
    return layout, Y, Ensemble(layout, 0.7, members, weights)


@pytest.mark.parametrize("composed", [False, True], ids=["stacked", "composed"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_mean_and_spread_are_per_bin_ridge_solves_averaged(holey_grid, monkeypatch, composed, dtype):
    """Both ways of imputing a chunk (the members' solutions stacked, or composed with their outputs), in the
    chunk's precision, against per-bin numpy.linalg.solve: holes of every kind, members with different (and
    unsorted) inputs, masked weights, a subset of pairs in any order, several blocks of rows."""
    from predictd_core.impute import ensemble as module
    monkeypatch.setattr(module, "_composing_is_cheaper", lambda *_: composed)
    monkeypatch.setattr(module, "ROW_BLOCK", 16)
    monkeypatch.setattr(module, "SPREAD_ROWS", 8)
    layout, Y, ensemble = holey_grid
    pairs = np.array([11, 0, 4, 7, 2, 9])
    cells, assays = layout.all_pairs()
    per_member = np.array([[_per_bin_prediction(y[m.input_columns], m.factors, layout.cell_of[m.input_columns],
                                                layout.assay_of[m.input_columns], 0.7, cells[pairs], assays[pairs])
                            for y in Y] for m in ensemble.members])  # (members, bins, pairs)
    used = ensemble.weights[:, pairs]
    counts = used.sum(axis=0)
    expected_mean = np.einsum("mbp,mp->bp", per_member, used) / counts
    expected_spread = np.sqrt(np.einsum("mbp,mp->bp", np.square(per_member - expected_mean), used) / counts)

    mean, spread = ensemble_chunk(Y.astype(dtype), ensemble, with_spread=True, pairs=pairs)
    assert mean.dtype == dtype and spread.dtype == dtype and mean.shape == (70, 6)
    scale = np.abs(expected_mean).max()
    tolerance = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(mean, expected_mean, rtol=tolerance, atol=tolerance * scale)
    np.testing.assert_allclose(spread, expected_spread, rtol=10 * tolerance, atol=10 * tolerance * scale)
    assert np.all(spread[:, counts == 1] == 0)
    assert not np.isnan(mean).any()
    np.testing.assert_array_equal(ensemble_chunk(Y.astype(dtype), ensemble, pairs=pairs)[0], mean)


def test_a_float32_chunk_is_imputed_as_the_float64_one_to_float32_precision(holey_grid):
    """The store's float32 chunks run in float32; their mean and spread agree with the float64 chunk's."""
    _, Y, ensemble = holey_grid
    mean64, spread64 = ensemble_chunk(Y, ensemble, with_spread=True)
    mean32, spread32 = ensemble_chunk(Y.astype(np.float32), ensemble, with_spread=True)
    assert mean64.dtype == np.float64 and mean32.dtype == np.float32
    scale = np.abs(mean64).max()
    # the float32 chunk's own rounding (relative 6e-8 per value) passes through the ridge: 1e-5 is ample
    np.testing.assert_allclose(mean32, mean64, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(spread32, spread64, atol=1e-5 * scale)


def test_bins_missing_only_other_members_inputs_are_complete_for_a_pair_of_one_member(holey_grid):
    """A pair of one member is that member's prediction alone: bins that miss every input of the other members
    (all of them here) are solved from this member's inputs as if nothing were missing."""
    layout, Y, ensemble = holey_grid
    pair = int(np.flatnonzero(ensemble.weights.sum(axis=0) == 1)[0])
    member = ensemble.members[int(np.flatnonzero(ensemble.weights[:, pair])[0])]
    poisoned = Y.copy()
    others = np.setdiff1d(np.arange(9), member.input_columns)
    poisoned[:, others] = np.nan
    mean, spread = ensemble_chunk(poisoned, ensemble, with_spread=True, pairs=np.array([pair]))
    cells, assays = layout.all_pairs()
    columns = member.input_columns
    expected = [_per_bin_prediction(y[columns], member.factors, layout.cell_of[columns], layout.assay_of[columns],
                                    0.7, cells[[pair]], assays[[pair]])[0] for y in Y]
    np.testing.assert_allclose(mean[:, 0], expected, rtol=1e-9, atol=1e-9)
    assert np.all(spread == 0)


def test_unseen_only_averages_the_members_whose_factors_never_saw_the_column(grid):
    """As an unmeasured pair is imputed: a column counts only the members that did not train on it (here m0
    trained on 0, 1 and 3 and validated on 2; m1 trained on all it took in, 1-4); NaN where every chosen
    member trained on it."""
    layout, Y, ensemble = grid
    m0, m1, m2 = ensemble.members
    ensemble = Ensemble(layout, 0.7, (EnsembleMember("m0", m0.factors, m0.input_columns, np.array([0, 1, 3])),
                                      EnsembleMember("m1", m1.factors, m1.input_columns), m2), ensemble.weights)
    members, columns = np.array([True, True, False]), np.array([0, 2, 3, 4])
    every = [left_out_chunk(Y, Ensemble(layout, 0.7, (member,), np.ones((1, 6), dtype=bool)), np.array([True]),
                            columns) for member in ensemble.members[:2]]
    unseen = left_out_chunk(Y, ensemble, members, columns, unseen_only=True)
    np.testing.assert_allclose(unseen[:, 0], every[1][:, 0], rtol=1e-12)  # never one of m1's inputs
    np.testing.assert_allclose(unseen[:, 1], every[0][:, 1], rtol=1e-12)  # m0's validation track
    assert np.isnan(unseen[:, 2]).all()  # both trained on column 3
    np.testing.assert_allclose(unseen[:, 3], every[0][:, 3], rtol=1e-12)  # never one of m0's inputs
    np.testing.assert_allclose(left_out_chunk(Y, ensemble, members, columns), (every[0] + every[1]) / 2, rtol=1e-12)
