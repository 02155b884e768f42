"""The ALS solver against dense least-squares solves written independently here."""

import numpy as np
import pytest

from predictd_core.model.factors import CellAssayFactors
from predictd_core.solvers import als

N_CELLS, N_ASSAYS, K, N_BINS = 4, 3, 2, 60
CELL_OF = np.repeat(np.arange(N_CELLS), N_ASSAYS)
ASSAY_OF = np.tile(np.arange(N_ASSAYS), N_CELLS)
PENALTIES = als.ScaledPenalties(rc=0.01, ra=0.02, ri2=0.7, rbc=0.003, rba=0.001)
SHRINKAGES = {"mean": PENALTIES, "zero": als.ScaledPenalties(rc=0.01, ra=0.02, ri2=0.7, rbc=0.003, rba=0.001,
                                                             cell_shrinkage="zero")}


def random_factors(rng) -> CellAssayFactors:
    return CellAssayFactors(0.3, rng.normal(size=(N_CELLS, K)), rng.normal(size=(N_ASSAYS, K)),
                            rng.normal(size=N_CELLS), rng.normal(size=N_ASSAYS))


def dense_ridge(y, X, penalty, centre=None):
    """argmin |y - X x|^2 + sum_k penalty_k (x_k - centre_k)^2."""
    centre = np.zeros(X.shape[1]) if centre is None else centre
    return np.linalg.solve(X.T @ X + np.diag(penalty), X.T @ y + np.asarray(penalty) * centre)


def test_genome_step_matches_per_bin_ridge_with_holes():
    rng = np.random.default_rng(1)
    f = random_factors(rng)
    Y = rng.normal(size=(N_BINS, N_CELLS * N_ASSAYS))
    Y[rng.random(Y.shape) < 0.15] = np.nan  # holes inside observed tracks
    Y[5] = np.nan  # a bin with no data at all
    Z, offset = f.design(CELL_OF, ASSAY_OF)
    W, has_data = als.genome_step(Y, Z, offset, 0.7)
    for i in range(N_BINS):
        seen = ~np.isnan(Y[i])
        if not seen.any():
            assert not has_data[i] and np.all(W[i] == 0)
            continue
        X = np.hstack([Z[seen], np.ones((seen.sum(), 1))])
        expected = dense_ridge(Y[i, seen] - offset[seen], X, [0.7] * K + [0.0])
        np.testing.assert_allclose(W[i], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shrinkage", ["mean", "zero"])
def test_cell_and_assay_steps_match_dense_least_squares(shrinkage):
    rng = np.random.default_rng(0)
    f = random_factors(rng)
    Y = rng.normal(size=(N_BINS, N_CELLS * N_ASSAYS))
    columns = np.arange(N_CELLS * N_ASSAYS)
    inputs = als.SweepInputs(f, CELL_OF, ASSAY_OF, columns, np.array([], dtype=int), 0.7)
    updated = als.update_cell_assay(als.sweep_statistics(Y, inputs), inputs, SHRINKAGES[shrinkage], inner_iters=1)
    # cell rows shrink toward the mean cell row (or 0, PREDICTD's penalty)
    centre = f.C.mean(axis=0) if shrinkage == "mean" else np.zeros(K)

    Z, offset = f.design(CELL_OF, ASSAY_OF)
    W, _ = als.genome_step(Y, Z, offset, 0.7)
    G, b_i = W[:, :K], W[:, K]
    C, b_c = f.C.copy(), f.b_c.copy()
    for c in range(N_CELLS):  # stack every entry of the cell's experiments and solve directly
        js = np.flatnonzero(CELL_OF == c)
        X = np.vstack([np.hstack([G * f.A[ASSAY_OF[j]], np.ones((N_BINS, 1))]) for j in js])
        y = np.concatenate([Y[:, j] - f.mu - f.b_a[ASSAY_OF[j]] - b_i for j in js])
        x = dense_ridge(y, X, [PENALTIES.rc * X.shape[0]] * K + [PENALTIES.rbc * X.shape[0]], np.append(centre, 0))
        C[c], b_c[c] = x[:K], x[K]
    np.testing.assert_allclose(updated.C, C, atol=1e-10)
    np.testing.assert_allclose(updated.b_c, b_c, atol=1e-10)
    A, b_a = f.A.copy(), f.b_a.copy()
    for a in range(N_ASSAYS):  # the assay step uses the new cell rows
        js = np.flatnonzero(ASSAY_OF == a)
        X = np.vstack([np.hstack([G * C[CELL_OF[j]], np.ones((N_BINS, 1))]) for j in js])
        y = np.concatenate([Y[:, j] - f.mu - b_c[CELL_OF[j]] - b_i for j in js])
        x = dense_ridge(y, X, [PENALTIES.ra * X.shape[0]] * K + [PENALTIES.rba * X.shape[0]])
        A[a], b_a[a] = x[:K], x[K]
    np.testing.assert_allclose(updated.A, A, atol=1e-10)
    np.testing.assert_allclose(updated.b_a, b_a, atol=1e-10)


def direct_objective(Y, f, columns, penalties):
    centre = f.C.mean(axis=0) if penalties.cell_shrinkage == "mean" else 0.0
    Z, offset = f.design(CELL_OF[columns], ASSAY_OF[columns])
    W, has = als.genome_step(Y[:, columns], Z, offset, penalties.ri2)
    prediction = offset + W[:, -1:] + W[:, :-1] @ Z.T
    sse = np.nansum(np.square(Y[:, columns] - prediction))
    n = has.sum()
    n_cell = n * np.bincount(CELL_OF[columns], minlength=N_CELLS)
    n_assay = n * np.bincount(ASSAY_OF[columns], minlength=N_ASSAYS)
    return (sse + penalties.ri2 * np.square(W[has, :-1]).sum()
            + penalties.rc * n_cell @ np.square(f.C - centre).sum(1) + penalties.ra * n_assay @ np.square(f.A).sum(1)
            + penalties.rbc * n_cell @ np.square(f.b_c) + penalties.rba * n_assay @ np.square(f.b_a))


@pytest.mark.parametrize("shrinkage", ["mean", "zero"])
@pytest.mark.parametrize("hole_fraction", [0.0, 0.1])
def test_objective_is_exact_and_never_increases(hole_fraction, shrinkage):
    penalties = SHRINKAGES[shrinkage]
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(N_BINS, N_CELLS * N_ASSAYS))
    Y[rng.random(Y.shape) < hole_fraction] = np.nan
    columns = np.arange(N_CELLS * N_ASSAYS)
    f = random_factors(rng)
    values = []
    for _ in range(8):
        inputs = als.SweepInputs(f, CELL_OF, ASSAY_OF, columns, np.array([], dtype=int), penalties.ri2)
        stats = als.sweep_statistics(Y, inputs)
        values.append(als.objective(stats, inputs, penalties))
        assert values[-1] == pytest.approx(direct_objective(Y, f, columns, penalties), rel=1e-9)
        f = als.update_cell_assay(stats, inputs, penalties, inner_iters=2)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(values, values[1:]))
    assert values[-1] < 0.9 * values[0]


def test_statistics_add_over_chunks():
    rng = np.random.default_rng(4)
    Y = rng.normal(size=(N_BINS, N_CELLS * N_ASSAYS))
    inputs = als.SweepInputs(random_factors(rng), CELL_OF, ASSAY_OF, np.arange(9), np.array([9, 10, 11]), 0.7)
    whole = als.sweep_statistics(Y, inputs)
    parts = als.sweep_statistics(Y[:25], inputs) + als.sweep_statistics(Y[25:], inputs)
    np.testing.assert_allclose(parts.P, whole.P)
    np.testing.assert_allclose(parts.valid_sse, whole.valid_sse)
    assert parts.n == whole.n == N_BINS


def test_observed_zero_is_data_and_nan_is_missing():
    rng = np.random.default_rng(5)
    f = random_factors(rng)
    Z, offset = f.design(CELL_OF, ASSAY_OF)
    Y = rng.normal(size=(4, N_CELLS * N_ASSAYS))
    with_zero, with_nan = Y.copy(), Y.copy()
    with_zero[0, 3], with_nan[0, 3] = 0.0, np.nan
    W_zero, _ = als.genome_step(with_zero, Z, offset, 0.7)
    W_nan, _ = als.genome_step(with_nan, Z, offset, 0.7)
    assert not np.allclose(W_zero[0], W_nan[0])
    np.testing.assert_allclose(W_zero[1:], W_nan[1:])


def direct_statistics(Y, inputs):
    """Sweep statistics from their definitions, with whole-chunk masks and np.where."""
    f, tc, vc = inputs.factors, inputs.train_columns, inputs.valid_columns
    Zt, ot = f.design(inputs.cell_of[tc], inputs.assay_of[tc])
    Zv, ov = f.design(inputs.cell_of[vc], inputs.assay_of[vc])
    Yt = Y[:, tc].astype(np.float64)
    W, has = als.genome_step(Yt, Zt, ot, inputs.ridge)  # checked against per-bin solves above
    G, b_i = W[:, :-1], W[:, -1]
    predicted = ot + b_i[:, None] + G @ Zt.T
    seen = ~np.isnan(Yt)
    filled = np.where(seen, Yt, predicted)[has]
    valid_err = Y[:, vc] - (ov + b_i[:, None] + G @ Zv.T)
    Gh, bh = G[has], b_i[has]
    return {"n": has.sum(), "S": Gh.T @ Gh, "g": Gh.sum(axis=0), "h": Gh.T @ bh, "sb": bh.sum(), "P": Gh.T @ filled,
            "s": filled.sum(axis=0), "train_sse": np.nansum(np.square(Yt - predicted)), "train_count": seen.sum(),
            "valid_sse": np.nansum(np.square(valid_err), axis=0), "valid_count": (~np.isnan(valid_err)).sum(axis=0)}


BLOCKY_BINS = 1100  # more rows than one block of the solver's passes over a chunk, and a partial last block


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("holes", [False, True])
def test_sweep_statistics_match_their_definitions(holes, dtype):
    rng = np.random.default_rng(6)
    Y = rng.normal(1.0, 1.0, size=(BLOCKY_BINS, N_CELLS * N_ASSAYS))
    if holes:
        Y[rng.random(Y.shape) < 0.01] = np.nan  # scattered holes, in training and validation tracks
        Y[700:740, [1, 4, 10]] = np.nan  # a gap shared by some tracks
        Y[900:905] = np.nan  # bins with no data at all
    inputs = als.SweepInputs(random_factors(rng), CELL_OF, ASSAY_OF, np.array([0, 1, 2, 4, 5, 6, 8, 9, 11]),
                             np.array([3, 7, 10]), 0.7)
    stats = als.sweep_statistics(Y.astype(dtype), inputs)
    for name, expected in direct_statistics(Y.astype(dtype), inputs).items():
        np.testing.assert_allclose(getattr(stats, name), expected, rtol=1e-10, atol=1e-10, err_msg=name)


def test_complete_chunk_fast_path_matches_general_path():
    # A training experiment with no data anywhere sends every bin through the general path (one solve
    # per pattern of observed experiments, EM filling, masked residuals); on the other experiments its
    # statistics must be those of the complete chunk, which skips all of that.
    rng = np.random.default_rng(7)
    Y = rng.normal(1.0, 1.0, size=(BLOCKY_BINS, N_CELLS * N_ASSAYS))
    with_empty = np.hstack([Y, np.full((BLOCKY_BINS, 1), np.nan)])
    cell_of, assay_of = np.append(CELL_OF, 0), np.append(ASSAY_OF, 0)
    f, train, valid = random_factors(rng), np.arange(9), np.array([9, 10, 11])
    fast = als.sweep_statistics(Y, als.SweepInputs(f, CELL_OF, ASSAY_OF, train, valid, 0.7))
    general = als.sweep_statistics(with_empty, als.SweepInputs(f, cell_of, assay_of, np.append(train, 12), valid, 0.7))
    for name in ("n", "S", "g", "h", "sb", "train_sse", "train_count", "valid_sse", "valid_count"):
        np.testing.assert_allclose(getattr(general, name), getattr(fast, name), rtol=1e-10, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(general.P[:, :-1], fast.P, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(general.s[:-1], fast.s, rtol=1e-10, atol=1e-10)
