"""Extending a fitted model: new cell types and assays are fitted, everything it knew is kept exactly."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from predictd_core.engine.local import LocalEngine
from predictd_core.errors import PredictdInputError
from predictd_core.train.estimator import Predictd
from predictd_core.train.extend import extend_model, extended_start
from predictd_core.model.factors import Layout
from predictd_core.model.settings import ModelSettings
from predictd_core.solvers import als

N_CELLS, N_ASSAYS, RANK, N_BINS = 8, 6, 3, 3000
SETTINGS = ModelSettings(rank=RANK, max_iters=40)  # PREDICTD's penalties
# every penalty on, so the reference solves below check each one's scale and centre
PENALISED = ModelSettings(rank=RANK, max_iters=40, rc=3.66, ra=0.4, rbc=0.02, rba=0.03)


class ArrayStore:
    """What the engine and the estimator read from a store (chunks, bin count), held in memory."""

    def __init__(self, Y: np.ndarray, chunk_bins: int = 1000) -> None:
        self.Y, self.chunk_bins = Y, chunk_bins
        self.bins = SimpleNamespace(n_bins=Y.shape[0])

    @property
    def n_chunks(self) -> int:
        return -(-self.Y.shape[0] // self.chunk_bins)

    def read_chunk(self, chunk: int) -> np.ndarray:
        return self.Y[chunk * self.chunk_bins:(chunk + 1) * self.chunk_bins]

    def n_bins_of(self, chunks) -> int:
        return sum(self.read_chunk(k).shape[0] for k in chunks)


class CountingEngine:
    """A local engine that counts passes and sends every function and payload through pickle, as Spark does."""

    def __init__(self, store: ArrayStore) -> None:
        self.engine, self.store, self.passes = LocalEngine(store), store, 0
        self.chunks, self.n_bins = self.engine.chunks, self.engine.n_bins

    def map_reduce(self, fn, payload):
        self.passes += 1
        return self.engine.map_reduce(pickle.loads(pickle.dumps(fn)), pickle.loads(pickle.dumps(payload)))


def plant(seed: int):
    """Noiseless truth (bins, cells, assays) of a planted rank-3 model, and noisy observations of it."""
    rng = np.random.default_rng(seed)
    C = rng.normal(0, 1, (N_CELLS, RANK))
    A = rng.normal(0, 1, (N_ASSAYS, RANK))
    G = rng.gamma(0.6, 0.5, (N_BINS, RANK))
    b_i = rng.gamma(1.0, 0.3, N_BINS)
    truth = np.maximum(2.0 + b_i[:, None, None] + 0.5 * np.einsum("ck,ak,ik->ica", C, A, G), 0.0)
    return truth, np.maximum(truth + rng.normal(0, 0.1, truth.shape), 0.0).astype(np.float32)


@pytest.fixture(scope="module")
def planted():
    return plant(105)


def compendium(observed: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[ArrayStore, Layout, list[str]]:
    """A store of the given (cell, assay) pairs, in that column order; names ``E<c>:M<a>``."""
    names = [(f"E{c}", f"M{a}") for c, a in pairs]
    cells = tuple(dict.fromkeys(c for c, _ in names))
    assays = tuple(dict.fromkeys(a for _, a in names))
    layout = Layout(cells, assays, np.array([cells.index(c) for c, _ in names], dtype=np.int64),
                    np.array([assays.index(a) for _, a in names], dtype=np.int64))
    Y = np.stack([observed[:, c, a] for c, a in pairs], axis=1)
    return ArrayStore(Y), layout, [f"{c}:{a}" for c, a in names]


def columns_of(names: list[str], wanted: list[str]) -> np.ndarray:
    return np.sort([names.index(name) for name in wanted])


def imputation_mse(factors, store: ArrayStore, layout: Layout, inputs: np.ndarray, cell: str, assay: str,
                   target: np.ndarray) -> float:
    """MSE against the truth of a pair imputed from the ``inputs`` columns (the ridge of ``SETTINGS``)."""
    predicted = als.predict(store.Y[:, inputs].astype(np.float64), factors, layout.cell_of[inputs],
                            layout.assay_of[inputs], np.array([layout.cells.index(cell)]),
                            np.array([layout.assays.index(assay)]), SETTINGS.penalties.ri2)
    return float(np.mean((predicted[:, 0] - target) ** 2))


def snapshot(model: Predictd) -> tuple:
    f = model.factors_
    return (f.mu, f.C.copy(), f.A.copy(), f.b_c.copy(), f.b_a.copy(), len(model.history_), model.layout_.cells,
            model.layout_.assays, model.train_columns_.copy())


def assert_same_snapshot(before: tuple, after: tuple) -> None:
    assert before[0] == after[0] and before[5:8] == after[5:8]
    for x, y in zip(before[1:5] + before[8:], after[1:5] + after[8:]):
        assert np.array_equal(x, y)


def assert_old_rows_kept(old: Predictd, new: Predictd) -> None:
    """mu and every row and bias the old model has, bit for bit, matched by name."""
    f, g = old.factors_, new.factors_
    assert g.mu == f.mu
    for names, new_names, X, Y, b, d in ((old.layout_.cells, new.layout_.cells, f.C, g.C, f.b_c, g.b_c),
                                         (old.layout_.assays, new.layout_.assays, f.A, g.A, f.b_a, g.b_a)):
        rows = [new_names.index(name) for name in names]
        assert np.array_equal(Y[rows], X) and np.array_equal(d[rows], b)


def old_fit(observed: np.ndarray, pairs: list[tuple[int, int]], valid: list[str], settings=SETTINGS):
    store, layout, names = compendium(observed, pairs)
    valid_columns = columns_of(names, valid)
    train_columns = np.setdiff1d(np.arange(len(names)), valid_columns)
    return Predictd(settings).fit(LocalEngine(store), layout, train_columns, valid_columns), names


OLD_VALID = ["E0:M1", "E2:M3", "E4:M5", "E5:M0", "E6:M2", "E1:M4"]


def new_cell_case(observed: np.ndarray, settings=SETTINGS) -> SimpleNamespace:
    """Fitted on cells E0-E6, then E7 arrives with every assay but M0 (held out), E7:M5 to validate.

    The extended store's columns are shuffled, so its cell types and assays come in another order.
    """
    old_pairs = [(c, a) for c in range(N_CELLS - 1) for a in range(N_ASSAYS)]
    model, _ = old_fit(observed, old_pairs, OLD_VALID, settings)
    new_pairs = [(N_CELLS - 1, a) for a in range(1, N_ASSAYS)]
    order = np.random.default_rng(5).permutation(len(old_pairs) + len(new_pairs))
    store, layout, names = compendium(observed, [(old_pairs + new_pairs)[k] for k in order])
    valid = columns_of(names, OLD_VALID + ["E7:M5"])
    return SimpleNamespace(model=model, store=store, layout=layout, names=names, valid=valid,
                           train=np.setdiff1d(np.arange(len(names)), valid), target=("E7", "M0", N_CELLS - 1, 0))


def new_assay_case(observed: np.ndarray, settings=SETTINGS) -> SimpleNamespace:
    """Fitted on assays M0-M4, then M5 arrives for every cell but E7 (held out), E3:M5 to validate."""
    old_pairs = [(c, a) for c in range(N_CELLS) for a in range(N_ASSAYS - 1)]
    old_valid = ["E0:M1", "E2:M3", "E4:M0", "E7:M2", "E6:M4"]
    model, _ = old_fit(observed, old_pairs, old_valid, settings)
    store, layout, names = compendium(observed, old_pairs + [(c, N_ASSAYS - 1) for c in range(N_CELLS - 1)])
    valid = columns_of(names, old_valid + ["E3:M5"])
    return SimpleNamespace(model=model, store=store, layout=layout, names=names, valid=valid,
                           train=np.setdiff1d(np.arange(len(names)), valid),
                           target=("E7", "M5", N_CELLS - 1, N_ASSAYS - 1))


def both_new_case(observed: np.ndarray, settings=SETTINGS) -> SimpleNamespace:
    """Fitted on E0-E6 x M0-M4, then E7 (every assay, M5 too) and M5 (every cell) arrive together."""
    old_pairs = [(c, a) for c in range(N_CELLS - 1) for a in range(N_ASSAYS - 1)]
    old_valid = ["E0:M1", "E2:M3", "E4:M0", "E5:M2", "E6:M4"]
    model, _ = old_fit(observed, old_pairs, old_valid, settings)
    new_pairs = [(N_CELLS - 1, a) for a in range(N_ASSAYS)] + [(c, N_ASSAYS - 1) for c in range(N_CELLS - 1)]
    store, layout, names = compendium(observed, old_pairs + new_pairs)
    valid = columns_of(names, old_valid + ["E7:M2", "E3:M5"])
    return SimpleNamespace(model=model, store=store, layout=layout, names=names, valid=valid,
                           train=np.setdiff1d(np.arange(len(names)), valid), target=None)


CASES = {"cell": new_cell_case, "assay": new_assay_case, "both": both_new_case}


def with_holes(observed: np.ndarray) -> np.ndarray:
    """Observations with holes: scattered, a run in every track of E7 and of M5, and bins where only E7's
    tracks (or only M5's) have data, which no old track can place in G."""
    rng = np.random.default_rng(11)
    holey = observed.copy()
    holey[rng.random(holey.shape) < 0.1] = np.nan
    holey[400:700, N_CELLS - 1, :] = np.nan
    holey[900:1100, :, N_ASSAYS - 1] = np.nan
    holey[2000:2025, :N_CELLS - 1, :] = np.nan
    holey[2025:2050, :, :N_ASSAYS - 1] = np.nan
    return holey


# ------------------------------------------------------------------------- an independent dense reference


def reference_genome(case) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """[G, b_i] and bins with data from the known training columns (old cell and old assay), whole store;
    then the new training and validation columns."""
    start, new_cells, new_assays = extended_start(case.model, case.layout)
    is_new = np.isin(case.layout.cell_of, new_cells) | np.isin(case.layout.assay_of, new_assays)
    known = case.train[~is_new[case.train]]
    Z, offset = start.design(case.layout.cell_of[known], case.layout.assay_of[known])
    W, has_data = als.genome_step(case.store.Y[:, known], Z, offset, case.model.ridge_)
    return W, has_data, case.train[is_new[case.train]], case.valid[is_new[case.valid]]


def reference_penalties(case) -> als.ScaledPenalties:
    """The settings' penalties over rank x the extended layout's cell types or assays, as a refit uses them."""
    p = case.model.settings.penalties
    return als.ScaledPenalties(rc=p.rc / (RANK * len(case.layout.cells)), ra=p.ra / (RANK * len(case.layout.assays)),
                               ri2=p.ri2, rbc=p.rbc, rba=p.rba)


def reference_centre(model: Predictd) -> np.ndarray:
    """The old cell rows' mean, weighted by their training experiments."""
    weights = np.bincount(model.layout_.cell_of[model.train_columns_], minlength=len(model.layout_.cells))
    return weights @ model.factors_.C / weights.sum()


def design_rows(case, W, has_data, column, factors, row_of_cell: bool):
    """Observed bins (with data) of one column: design rows [G_i * u, 1] for the cell row (u = A_a) or the
    assay row (u = C_c), and the target y - b_i - mu - the other side's bias."""
    f, c, a = factors, case.layout.cell_of[column], case.layout.assay_of[column]
    seen = has_data & ~np.isnan(case.store.Y[:, column])
    u, other_bias = (f.A[a], f.b_a[a]) if row_of_cell else (f.C[c], f.b_c[c])
    design = np.hstack([W[seen, :-1] * u, np.ones((seen.sum(), 1))])
    return design, case.store.Y[seen, column].astype(np.float64) - W[seen, -1] - f.mu - other_bias


def reference_row(case, W, has_data, columns, factors, row_of_cell: bool, lam: float, lam_bias: float,
                  centre: np.ndarray) -> np.ndarray:
    """[X_r; b_r] by lstsq on the stacked design rows of ``columns`` and sqrt-penalty rows."""
    rows = [design_rows(case, W, has_data, j, factors, row_of_cell) for j in columns]
    N = sum(len(target) for _, target in rows)
    scale = np.sqrt(N * np.r_[np.full(RANK, lam), lam_bias])
    design = np.vstack([d for d, _ in rows] + [np.diag(scale)])
    target = np.concatenate([t for _, t in rows] + [scale * np.r_[centre, 0.0]])
    return np.linalg.lstsq(design, target, rcond=None)[0]


def reference_mse(case, W, has_data, columns, factors) -> float:
    errors = []
    for j in columns:
        design, target = design_rows(case, W, has_data, j, factors, True)
        c = case.layout.cell_of[j]
        errors.append(target - design @ np.r_[factors.C[c], factors.b_c[c]])
    return float(np.mean(np.concatenate(errors) ** 2))


@pytest.fixture(scope="module", params=[(kind, holes) for kind in CASES for holes in (False, True)],
                ids=lambda p: f"{p[0]}{'-holes' if p[1] else ''}")
def solved(request, planted):
    """Each case fitted with every penalty on, extended through an engine that counts passes."""
    kind, holes = request.param
    case = CASES[kind](with_holes(planted[1]) if holes else planted[1], PENALISED)
    engine = CountingEngine(case.store)
    extended = extend_model(case.model, engine, case.layout, case.train, case.valid)
    return SimpleNamespace(kind=kind, case=case, extended=extended, passes=engine.passes)


def test_new_rows_match_a_dense_least_squares_given_g_from_the_old_experiments(solved):
    """Each new row is the lstsq answer with the other side fixed; with a new cell and a new assay together
    that is the joint optimum's stationarity (each block optimal given the other)."""
    case, f = solved.case, solved.extended.factors_
    W, has_data, new_train, _ = reference_genome(case)
    penalties, centre = reference_penalties(case), reference_centre(case.model)
    _, new_cells, new_assays = extended_start(case.model, case.layout)
    assert (new_cells.size, new_assays.size) == {"cell": (1, 0), "assay": (0, 1), "both": (1, 1)}[solved.kind]
    for c in new_cells:
        columns = new_train[case.layout.cell_of[new_train] == c]
        expected = reference_row(case, W, has_data, columns, f, True, penalties.rc, penalties.rbc, centre)
        np.testing.assert_allclose(np.r_[f.C[c], f.b_c[c]], expected, rtol=1e-8, atol=1e-10)
    for a in new_assays:
        columns = new_train[case.layout.assay_of[new_train] == a]
        expected = reference_row(case, W, has_data, columns, f, False, penalties.ra, penalties.rba, np.zeros(RANK))
        np.testing.assert_allclose(np.r_[f.A[a], f.b_a[a]], expected, rtol=1e-8, atol=1e-10)


def test_extending_reads_the_data_once(solved):
    assert solved.passes == 1


def test_extend_appends_one_history_row_scored_on_the_new_columns(solved):
    case, extended, model = solved.case, solved.extended, solved.case.model
    assert extended.history_[:-1] == model.history_ and extended.best_iteration_ == model.best_iteration_
    row = extended.history_[-1]
    assert set(row) == {"iteration", "stage", "objective", "train_mse", "valid_mse", "seconds"}
    assert (row["iteration"], row["stage"]) == (1, "extend")
    W, has_data, new_train, new_valid = reference_genome(case)
    f = extended.factors_
    assert row["train_mse"] == pytest.approx(reference_mse(case, W, has_data, new_train, f), rel=1e-9)
    assert row["valid_mse"] == pytest.approx(reference_mse(case, W, has_data, new_valid, f), rel=1e-9)
    # objective: the new columns' squared errors and the new rows' penalties
    penalties, centre = reference_penalties(case), reference_centre(model)
    _, new_cells, new_assays = extended_start(model, case.layout)
    entries = {j: np.sum(has_data & ~np.isnan(case.store.Y[:, j])) for j in new_train}
    penalty = sum(sum(entries[j] for j in new_train if case.layout.cell_of[j] == c)
                  * (penalties.rc * np.sum((f.C[c] - centre) ** 2) + penalties.rbc * f.b_c[c] ** 2) for c in new_cells)
    penalty += sum(sum(entries[j] for j in new_train if case.layout.assay_of[j] == a)
                   * (penalties.ra * np.sum(f.A[a] ** 2) + penalties.rba * f.b_a[a] ** 2) for a in new_assays)
    sse = row["train_mse"] * sum(entries.values())
    assert row["objective"] == pytest.approx(sse + penalty, rel=1e-9)


# ----------------------------------------------------------------------------- accuracy on planted data


@pytest.fixture(scope="module")
def new_cell(planted):
    return new_cell_case(planted[1])


@pytest.fixture(scope="module")
def new_cell_extended(new_cell):
    before = snapshot(new_cell.model)
    extended = extend_model(new_cell.model, LocalEngine(new_cell.store), new_cell.layout, new_cell.train,
                            new_cell.valid)
    assert_same_snapshot(before, snapshot(new_cell.model))  # the input model is untouched
    return extended


def held_out_mses(case, extended: Predictd, truth: np.ndarray) -> tuple[float, float, float]:
    """MSE against the truth of the held-out pair: extended, full refit on the extended store, mean start."""
    cell, assay, c, a = case.target
    inputs = np.union1d(case.train, case.valid)
    refit = Predictd(SETTINGS).fit(LocalEngine(case.store), case.layout, case.train, case.valid)
    start, _, _ = extended_start(case.model, case.layout)
    return tuple(imputation_mse(f, case.store, case.layout, inputs, cell, assay, truth[:, c, a])
                 for f in (extended.factors_, refit.factors_, start))


def test_a_new_cell_type_is_imputed_about_as_well_as_by_a_full_refit(new_cell, new_cell_extended, planted):
    extended_mse, refit_mse, start_mse = held_out_mses(new_cell, new_cell_extended, planted[0])
    assert extended_mse < 1.15 * refit_mse
    assert extended_mse < 0.2 * start_mse


def test_a_new_assay_for_existing_cells_is_imputed_about_as_well_as_by_a_full_refit(planted):
    case = new_assay_case(planted[1])
    before = snapshot(case.model)
    extended = extend_model(case.model, LocalEngine(case.store), case.layout, case.train, case.valid)
    assert_same_snapshot(before, snapshot(case.model))
    assert_old_rows_kept(case.model, extended)
    extended_mse, refit_mse, start_mse = held_out_mses(case, extended, planted[0])
    assert extended_mse < 1.15 * refit_mse
    assert extended_mse < 0.2 * start_mse


def test_extending_keeps_every_old_row_and_fits_only_the_new_ones(new_cell, new_cell_extended):
    extended, model = new_cell_extended, new_cell.model
    assert_old_rows_kept(model, extended)
    e7 = new_cell.layout.cells.index("E7")
    start, _, _ = extended_start(model, new_cell.layout)
    assert not np.allclose(extended.factors_.C[e7], start.C[e7])  # the new row moved from the mean cell
    assert extended.layout_ is new_cell.layout
    assert np.array_equal(extended.train_columns_, new_cell.train)
    assert np.array_equal(extended.valid_columns_, new_cell.valid)
    assert (extended.rank_, extended.ridge_, extended.settings) == (model.rank_, model.ridge_, model.settings)
    assert extended.n_bins_ == N_BINS


def test_the_extended_store_order_does_not_matter(new_cell, new_cell_extended, planted):
    """The same extension with the store in grid order: the same factors, matched by name."""
    s = new_cell
    store, layout, names = compendium(planted[1], [(c, a) for c in range(N_CELLS) for a in range(N_ASSAYS)
                                                   if (c, a) != (N_CELLS - 1, 0)])
    assert layout.cells != s.layout.cells and layout.assays != s.layout.assays
    valid = columns_of(names, [s.names[k] for k in s.valid])
    train = columns_of(names, [s.names[k] for k in s.train])
    other = extend_model(s.model, LocalEngine(store), layout, train, valid)
    cells = [layout.cells.index(name) for name in s.layout.cells]
    assays = [layout.assays.index(name) for name in s.layout.assays]
    f, g = new_cell_extended.factors_, other.factors_
    np.testing.assert_allclose(g.C[cells], f.C, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(g.b_c[cells], f.b_c, rtol=1e-8, atol=1e-10)
    assert np.array_equal(g.A[assays], f.A) and np.array_equal(g.b_a[assays], f.b_a)  # all old: copied


def test_without_new_cell_types_or_assays_nothing_is_fitted(new_cell, planted):
    """New tracks of known cell types and assays only (here: the old ones, reordered) change no factor."""
    s = new_cell
    pairs = [(c, a) for a in range(N_ASSAYS) for c in range(N_CELLS - 1)]
    store, layout, names = compendium(planted[1], pairs)
    valid = columns_of(names, OLD_VALID)
    train = np.setdiff1d(np.arange(len(names)), valid)
    engine = CountingEngine(store)
    extended = extend_model(s.model, engine, layout, train, valid)
    assert engine.passes == 0
    assert_old_rows_kept(s.model, extended)
    assert extended.history_ == s.model.history_ and extended.best_iteration_ == s.model.best_iteration_
    assert np.array_equal(extended.train_columns_, train)


def test_a_store_without_a_known_cell_type_is_an_input_error(new_cell, planted):
    store, layout, names = compendium(planted[1], [(c, a) for c in range(1, N_CELLS) for a in range(N_ASSAYS)])
    with pytest.raises(PredictdInputError, match="E0") as caught:
        extend_model(new_cell.model, LocalEngine(store), layout, np.arange(len(names)), np.array([], dtype=int))
    assert caught.value.field == "cells"
