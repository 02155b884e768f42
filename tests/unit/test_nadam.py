"""Tests of the nadam-sgd solver: per-sample algebra, the NAdam step, the round, and whole fits."""

from __future__ import annotations

import math
import pickle
from functools import reduce
from operator import add

import numpy as np
import pyBigWig
import pytest

from predictd_core.engine.local import LocalEngine
from predictd_core.train.estimator import Predictd
from predictd_core.model.factors import CellAssayFactors, Layout, initial_factors
from predictd_core.model.settings import ModelSettings, Penalties
from predictd_core.train.split import choose_validation
from predictd_core.solvers import als, nadam
from predictd_core.store.signal_store import ingest
from predictd_core.tracks.table import Track

D = 1.0 - 1e-6  # PREDICTD's decay of beta1 and lr


class FakeEngine:
    """The engine seam over in-memory chunks, LocalEngine's semantics; payloads and states go through pickle."""

    def __init__(self, chunks: list[np.ndarray]) -> None:
        self.chunks = chunks
        self._state: dict = {}
        self.calls: list[tuple[object, object]] = []

    def map_reduce(self, fn, payload):
        fn, payload = pickle.loads(pickle.dumps((fn, payload)))
        return reduce(add, (fn(chunk, payload) for chunk in self.chunks))

    def map_state(self, fn, payload):
        fn, payload = pickle.loads(pickle.dumps((fn, payload)))  # as Spark would ship them
        self.calls.append((fn, payload))
        outputs = [fn(k, chunk, self._state.get(k), payload) for k, chunk in enumerate(self.chunks)]
        self._state = {k: pickle.loads(pickle.dumps(state)) for k, (state, _) in enumerate(outputs)}
        return reduce(add, (result for _, result in outputs))

    def reset_state(self, states=None):
        self._state = dict(states or {})

    def collect_state(self):
        return dict(self._state)


def simulate(seed: int = 0, n_bins: int = 1200, n_cells: int = 5, n_assays: int = 4, rank: int = 2,
             noise: float = 0.05) -> tuple[np.ndarray, Layout]:
    """A low-rank compendium on the arcsinh scale, 16 of the 20 (cell, assay) pairs observed."""
    rng = np.random.default_rng(seed)
    C, A = rng.normal(size=(n_cells, rank)), rng.normal(size=(n_assays, rank))
    G = rng.normal(size=(n_bins, rank))
    cells, assays = np.repeat(np.arange(n_cells), n_assays), np.tile(np.arange(n_assays), n_cells)
    keep = np.ones(cells.size, dtype=bool)
    keep[[3, 6, 13, 17]] = False
    cells, assays = cells[keep], assays[keep]
    Y = (2.0 + 0.3 * cells + 0.2 * assays + G @ (C[cells] * A[assays]).T
         + noise * rng.normal(size=(n_bins, cells.size)))
    layout = Layout(tuple(f"cell{i}" for i in range(n_cells)), tuple(f"assay{j}" for j in range(n_assays)),
                    cells, assays)
    return Y.astype(np.float32), layout


def start_for(engine, layout: Layout, train: np.ndarray, rank: int, seed: int) -> CellAssayFactors:
    moments = engine.map_reduce(als.column_moments, None)
    return initial_factors(layout, rank, seed, moments[0], moments[1], train)


# --------------------------------------------------------------------------------------------------
# 1. Per-sample gradient against central finite differences
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_gradient_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    K = 4
    rows = rng.normal(size=(3, K + 1))  # [C_c, b_c], [A_a, b_a], [G_i, b_i]
    reg = rng.uniform(0.1, 2.0, size=(3, K + 1))
    y, mu = 1.7, 0.4
    err, grad = nadam.sample_gradient(y, mu, rows, reg)

    assert err == pytest.approx(mu + rows[:, K].sum() + np.sum(rows[0, :K] * rows[1, :K] * rows[2, :K]) - y)
    h = 1e-6
    numeric = np.empty_like(rows)
    for index in np.ndindex(rows.shape):
        up, down = rows.copy(), rows.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (nadam.sample_loss(y, mu, up, reg) - nadam.sample_loss(y, mu, down, reg)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    # PREDICTD's form, no factor 2: dC = err * (A o G) + rc C, db = err + rb b.
    np.testing.assert_allclose(grad[0, :K], err * rows[1, :K] * rows[2, :K] + reg[0, :K] * rows[0, :K])
    np.testing.assert_allclose(grad[:, K], err + reg[:, K] * rows[:, K])


def test_sample_gradient_does_not_modify_rows():
    rows = np.arange(12, dtype=float).reshape(3, 4) / 10
    before = rows.copy()
    nadam.sample_gradient(1.0, 0.0, rows, np.ones((3, 4)))
    np.testing.assert_array_equal(rows, before)


# --------------------------------------------------------------------------------------------------
# 2. The NAdam step against hand-computed values
# --------------------------------------------------------------------------------------------------

def _reference_step(theta, g, m, v, t, prod_before, lr, b1, b2, eps):
    """The reference's formulas written out with a running product prod_(j<=t) beta1_j."""
    b1_t, b1_next = b1 * D ** (t - 1), b1 * D ** t
    prod_t = prod_before * b1_t
    g_hat = g / (1 - prod_t)
    m = b1_t * m + (1 - b1_t) * g
    m_hat = m / (1 - prod_t * b1_next)
    v = b2 * v + (1 - b2) * g * g
    v_hat = v / (1 - b2 ** t)
    m_bar = (1 - b1_t) * g_hat + b1_next * m_hat
    return theta - lr * D ** (t - 1) * m_bar / (math.sqrt(v_hat) + eps), m, v, prod_t


def test_nadam_update_first_two_steps_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    # t = 1, g = 0.2: m = 0.02, v = 4e-5, g_hat = 2, m_hat = 0.02 / 0.19, v_hat = 0.04
    # -> theta = 0.5 - 0.01 (0.1 * 2 + 0.9 * 0.02 / 0.19) / 0.2 = 0.4852632 (up to the 1e-6 decay)
    theta1, m1, v1 = nadam.nadam_update(np.array(0.5), np.array(0.2), np.array(0.0), np.array(0.0), 1,
                                        lr, b1, b2, eps)
    assert float(m1) == pytest.approx(0.02)
    assert float(v1) == pytest.approx(4e-5)
    assert float(theta1) == pytest.approx(0.5 - 0.01 * (0.2 + 0.9 * 0.02 / 0.19) / 0.2, abs=1e-6)
    assert float(theta1) == pytest.approx(0.4852631835622193, rel=1e-12)
    # t = 2, g = -0.1: m = 0.9 * 0.02 - 0.01 = 0.008, v = 4.996e-5, g_hat = -0.1 / 0.19,
    # m_hat = 0.008 / (1 - 0.729), v_hat = 4.996e-5 / 0.001999
    theta2, m2, v2 = nadam.nadam_update(theta1, np.array(-0.1), m1, v1, 2, lr, b1, b2, eps)
    by_hand = float(theta1) - 0.01 * (0.1 * (-0.1 / 0.19) + 0.9 * 0.008 / 0.271) / math.sqrt(4.996e-5 / 0.001999)
    assert float(m2) == pytest.approx(0.008, abs=1e-6)
    assert float(m2) == pytest.approx(0.9 * D * 0.02 + (1 - 0.9 * D) * -0.1, rel=1e-12)  # beta1_2 = 0.9 d
    assert float(v2) == pytest.approx(4.996e-5)
    assert float(theta2) == pytest.approx(by_hand, abs=1e-6)
    assert float(theta2) == pytest.approx(0.486911873293565, rel=1e-12)


def test_nadam_update_rows_use_their_own_counters():
    rng = np.random.default_rng(3)
    theta, grad = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    m, v = rng.normal(size=(3, 5)) * 0.1, rng.uniform(0.01, 0.1, size=(3, 5))
    t = np.array([1, 7, 250])
    lr, b1, b2, eps = 0.005, 0.6, 0.999, 1e-8
    new_theta, new_m, new_v = nadam.nadam_update(theta, grad, m, v, t[:, None], lr, b1, b2, eps)
    for r in range(3):
        prod_before = math.prod(b1 * D ** (j - 1) for j in range(1, int(t[r])))
        for k in range(5):
            expected = _reference_step(theta[r, k], grad[r, k], m[r, k], v[r, k], int(t[r]), prod_before,
                                       lr, b1, b2, eps)
            assert new_theta[r, k] == pytest.approx(expected[0], rel=1e-10, abs=1e-12)
            assert new_m[r, k] == pytest.approx(expected[1], rel=1e-10, abs=1e-12)
            assert new_v[r, k] == pytest.approx(expected[2], rel=1e-10, abs=1e-12)


def _one_bin_inputs(batch_size: int, y: float = 1.3):
    """One bin, three experiments of which only one training entry is observed: every step samples it."""
    rng = np.random.default_rng(5)
    K = 3
    factors = CellAssayFactors(0.5, rng.normal(size=(2, K)), rng.normal(size=(2, K)), np.array([0.1, -0.2]),
                               np.array([0.3, 0.05]))
    Y = np.array([[np.nan, y, 0.7]], dtype=np.float32)  # column 2 is validation, never sampled
    cell_of, assay_of = np.array([0, 1, 1]), np.array([1, 0, 1])
    reg = nadam.penalty_rows(Penalties(rc=3.0, ra=2.0, ri=5.0, rbc=0.1, rba=0.2, rbi=0.3), K, 2, 2, 10)
    inputs = nadam.RoundInputs(nadam.SharedState.start(factors), factors.mu, nadam.NadamHyper(0.01, 0.9, 0.999, 1e-8),
                               reg, batch_size, 7, 1, cell_of, assay_of, np.array([0, 1]), 2.9)
    W = rng.normal(size=(1, K + 1))
    state = nadam.ChunkState(W, np.zeros_like(W), np.zeros_like(W), np.zeros(1, np.int64))
    return inputs, state, factors


def test_sgd_round_applies_sample_gradient_and_nadam_update():
    inputs, state, f = _one_bin_inputs(batch_size=2)
    new_state, result = nadam.sgd_round(0, np.array([[np.nan, 1.3, 0.7]], dtype=np.float32), state, inputs)

    # Expected: two steps on entry (bin 0, cell 1, assay 0), rows updated together from pre-step values.
    rows = np.vstack([inputs.shared.cells[1], inputs.shared.assays[0], state.W[0]])
    m, v = np.zeros_like(rows), np.zeros_like(rows)
    y = float(np.float32(1.3))  # the store is float32
    for t in (1, 2):
        _, grad = nadam.sample_gradient(y, f.mu, rows, inputs.reg)
        rows, m, v = nadam.nadam_update(rows, grad, m, v, t, 0.01, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(result.cells[1], rows[0], rtol=1e-12)
    np.testing.assert_allclose(result.assays[0], rows[1], rtol=1e-12)
    np.testing.assert_allclose(new_state.W[0], rows[2], rtol=1e-12)
    np.testing.assert_allclose(new_state.m[0], m[2], rtol=1e-12)
    # Untouched rows keep their values; counters count the steps.
    np.testing.assert_array_equal(result.cells[0], inputs.shared.cells[0])
    np.testing.assert_array_equal(result.assays[1], inputs.shared.assays[1])
    assert new_state.t.tolist() == [2]
    assert result.cell_dt.tolist() == [0, 2] and result.assay_dt.tolist() == [2, 0]
    assert (result.chunks, result.steps) == (1, 2)
    # The incoming state is not modified (snapshots keep references to it).
    assert state.t.tolist() == [0] and not state.m.any()


def test_observed_zero_is_data_and_nan_is_skipped():
    inputs, state, _ = _one_bin_inputs(batch_size=3, y=0.0)
    _, result = nadam.sgd_round(0, np.array([[np.nan, 0.0, 0.7]], dtype=np.float32), state, inputs)
    assert result.steps == 3  # the observed 0 was sampled; the NaN entry never was
    assert np.isfinite(result.cells).all()
    _, empty = nadam.sgd_round(0, np.array([[np.nan, np.nan, 0.7]], dtype=np.float32), state, inputs)
    assert (empty.chunks, empty.steps) == (0, 0)


def test_round_averages_chunks_plainly():
    Y, layout = simulate(n_bins=200)
    train, _ = choose_validation(layout, np.arange(Y.shape[1]), 0.125, 1)
    engine = FakeEngine([Y[:100], Y[100:]])
    start = start_for(engine, layout, train, 3, 1)
    shared = nadam.SharedState.start(start)
    reg = nadam.penalty_rows(Penalties(), 3, 5, 4, 200)
    inputs = nadam.RoundInputs(shared, start.mu, nadam.NadamHyper(0.01, 0.9, 0.999, 1e-8), reg, 50, 3, 1,
                               layout.cell_of, layout.assay_of, train, 2.9)
    averaged = engine.map_state(nadam.sgd_round, inputs).averaged(shared)
    parts = [nadam.sgd_round(k, chunk, None, inputs)[1] for k, chunk in enumerate(engine.chunks)]
    np.testing.assert_allclose(averaged.cells, (parts[0].cells + parts[1].cells) / 2)
    np.testing.assert_allclose(averaged.assay_v, (parts[0].assay_v + parts[1].assay_v) / 2)
    np.testing.assert_array_equal(averaged.cell_t, np.rint((parts[0].cell_dt + parts[1].cell_dt) / 2))


# --------------------------------------------------------------------------------------------------
# 3. Fits lower the training and validation MSE (fake engine, then the real store + LocalEngine)
# --------------------------------------------------------------------------------------------------

def test_fit_lowers_training_and_validation_mse():
    Y, layout = simulate()
    train, valid = choose_validation(layout, np.arange(Y.shape[1]), 0.125, 1)
    engine = FakeEngine([Y[i:i + 300] for i in range(0, Y.shape[0], 300)])
    settings = ModelSettings(rank=3, solver="nadam-sgd", learning_rate=0.02, batch_size=1000, max_iters=8)
    start = start_for(engine, layout, train, 3, settings.seed)
    rows = []
    factors, history, best = nadam.fit_nadam(engine, start, layout, train, valid, settings, Y.shape[0], rows.append)

    assert rows == history
    assert [r["iteration"] for r in history] == list(range(len(history)))
    assert all(set(r) == {"iteration", "objective", "train_mse", "valid_mse", "seconds"} for r in history)
    first, chosen = history[0], history[best]
    assert chosen["train_mse"] < 0.3 * first["train_mse"]
    assert chosen["valid_mse"] < 0.5 * first["valid_mse"]
    assert chosen["objective"] < first["objective"]
    assert chosen["valid_mse"] == min(r["valid_mse"] for r in history)
    assert factors.mu == start.mu and factors.C.shape == start.C.shape


def _write_bigwigs(folder, Y: np.ndarray, layout: Layout, contig: str, bin_size: int) -> list[Track]:
    tracks = []
    for column in range(Y.shape[1]):
        path = folder / f"track{column}.bw"
        values = np.sinh(np.clip(Y[:, column].astype(np.float64), 0.0, None))
        first = 40 if column == 0 else 0  # a hole: track 0 has no data over its first 40 bins
        with pyBigWig.open(str(path), "w") as writer:
            writer.addHeader([(contig, Y.shape[0] * bin_size)], maxZooms=0)
            writer.addEntries(contig, first * bin_size, values=values[first:].tolist(), span=bin_size, step=bin_size)
        tracks.append(Track(layout.cells[layout.cell_of[column]], layout.assays[layout.assay_of[column]], str(path)))
    return tracks


def test_fit_on_a_real_store_with_local_engine(tmp_path):
    Y, layout = simulate(seed=4, n_bins=800)
    tracks = _write_bigwigs(tmp_path, Y, layout, "chr1", 25)
    store = ingest(tracks, {"chr1": 800 * 25}, 25, tmp_path / "store", chunk_bins=200)
    assert store.n_chunks == 4
    assert np.isnan(store.read_chunk(0)[:40, 0]).all()  # the hole is NaN, not 0
    engine = LocalEngine(store)
    layout = Layout.from_experiments(store.experiments)
    train, valid = choose_validation(layout, np.arange(store.n_experiments), 0.125, 1)
    settings = ModelSettings(rank=3, solver="nadam-sgd", learning_rate=0.02, batch_size=800, max_iters=6)

    model = Predictd(settings).fit(engine, layout, train, valid)  # the estimator's nadam-sgd path

    history = model.history_
    assert model.best_iteration_ > 0
    assert history[model.best_iteration_]["train_mse"] < 0.5 * history[0]["train_mse"]
    assert history[model.best_iteration_]["valid_mse"] < history[0]["valid_mse"]
    # The engine is left holding the best snapshot's genome rows: scoring the returned factors with
    # them reproduces the best history row.
    inputs = nadam.EvalInputs(model.factors_, layout.cell_of, layout.assay_of, train, valid, 2.9,
                              np.zeros(settings.rank + 1))
    stats = engine.map_state(nadam.evaluate_chunk, inputs)
    assert stats.valid_sse / stats.valid_count == pytest.approx(history[model.best_iteration_]["valid_mse"])


# --------------------------------------------------------------------------------------------------
# Stopping, reverting and determinism
# --------------------------------------------------------------------------------------------------

def test_plateau_reverts_to_best_and_halves_the_learning_rate():
    Y, layout = simulate(n_bins=400)
    train, valid = choose_validation(layout, np.arange(Y.shape[1]), 0.125, 1)
    engine = FakeEngine([Y[:200], Y[200:]])
    settings = ModelSettings(rank=3, solver="nadam-sgd", learning_rate=0.5, batch_size=200, max_iters=12,
                             patience=1, lrate_search_num=2, tol=0.0)
    start = start_for(engine, layout, train, 3, settings.seed)
    _, history, best = nadam.fit_nadam(engine, start, layout, train, valid, settings, Y.shape[0], None)

    rounds = [payload for fn, payload in engine.calls if fn is nadam.sgd_round]
    lrs = [p.hyper.lr for p in rounds]
    beta1s = sorted({p.hyper.beta1 for p in rounds}, reverse=True)
    assert lrs[0] == 0.5 and min(lrs) < 0.5, "a plateau should have halved the learning rate"
    assert set(lrs) <= {0.5, 0.25, 0.125}
    assert beta1s == pytest.approx([0.9, 0.8, 0.6][:len(beta1s)])
    # The round after the first halving restarts from the best snapshot so far.
    k = lrs.index(0.25)
    best_before = min(range(k + 1), key=lambda i: (history[i]["valid_mse"], i))
    np.testing.assert_array_equal(rounds[k].shared.cells, rounds[best_before].shared.cells)
    # Two halvings used up, then the next plateau stops the fit (or max_iters does).
    assert len(rounds) == settings.max_iters or lrs.count(0.125) >= 1
    assert history[best]["valid_mse"] == min(r["valid_mse"] for r in history)


def test_stops_after_patience_without_learning_rate_search():
    Y, layout = simulate(n_bins=400)
    train, valid = choose_validation(layout, np.arange(Y.shape[1]), 0.125, 1)
    engine = FakeEngine([Y[:200], Y[200:]])
    settings = ModelSettings(rank=3, solver="nadam-sgd", learning_rate=0.5, batch_size=200, max_iters=30,
                             patience=2, lrate_search_num=0)
    start = start_for(engine, layout, train, 3, settings.seed)
    _, history, best = nadam.fit_nadam(engine, start, layout, train, valid, settings, Y.shape[0], None)
    assert len(history) - 1 < settings.max_iters
    assert len(history) - 1 - best == settings.patience


def _small_fit(seed: int):
    Y, layout = simulate(n_bins=400)
    train, valid = choose_validation(layout, np.arange(Y.shape[1]), 0.125, 1)
    engine = FakeEngine([Y[:200], Y[200:]])
    start = start_for(engine, layout, train, 3, 123)  # the same start whatever the SGD seed
    settings = ModelSettings(rank=3, solver="nadam-sgd", learning_rate=0.02, batch_size=300, max_iters=3,
                             seed=seed)
    return nadam.fit_nadam(engine, start, layout, train, valid, settings, Y.shape[0], None)


def test_same_seed_same_factors():
    first, history_1, _ = _small_fit(seed=11)
    second, history_2, _ = _small_fit(seed=11)
    for name in ("C", "A", "b_c", "b_a"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert [r["valid_mse"] for r in history_1] == [r["valid_mse"] for r in history_2]
    other, _, _ = _small_fit(seed=12)
    assert not np.array_equal(first.C, other.C), "the seed should drive the sampling"


def test_retried_chunk_task_gives_the_same_answer():
    inputs, state, _ = _one_bin_inputs(batch_size=5)
    Y = np.array([[0.4, 1.3, 0.7]], dtype=np.float32)
    first = nadam.sgd_round(3, Y, state, inputs)
    again = nadam.sgd_round(3, Y, state, inputs)
    np.testing.assert_array_equal(first[0].W, again[0].W)
    np.testing.assert_array_equal(first[1].cells, again[1].cells)
