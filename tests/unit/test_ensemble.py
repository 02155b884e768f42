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
