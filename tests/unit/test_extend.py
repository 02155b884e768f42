"""Extending a fitted model: new cell types and assays are fitted, everything it knew is kept exactly."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from predictd_core.engine.local import LocalEngine
from predictd_core.errors import PredictdInputError
from predictd_core.model.estimator import Predictd
from predictd_core.model.extend import extend_model, extended_start
from predictd_core.model.factors import Layout
from predictd_core.model.settings import ModelSettings
from predictd_core.solvers import als

N_CELLS, N_ASSAYS, RANK, N_BINS = 8, 6, 3, 3000
SETTINGS = ModelSettings(rank=RANK, max_iters=40)  # PREDICTD's penalties


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


@pytest.fixture(scope="module")
def planted():
    """Noiseless truth (bins, cells, assays) of a planted rank-3 model, and noisy observations of it."""
    rng = np.random.default_rng(105)
    C = rng.normal(0, 1, (N_CELLS, RANK))
    A = rng.normal(0, 1, (N_ASSAYS, RANK))
    G = rng.gamma(0.6, 0.5, (N_BINS, RANK))
    b_i = rng.gamma(1.0, 0.3, N_BINS)
    truth = np.maximum(2.0 + b_i[:, None, None] + 0.5 * np.einsum("ck,ak,ik->ica", C, A, G), 0.0)
    return truth, np.maximum(truth + rng.normal(0, 0.1, truth.shape), 0.0).astype(np.float32)


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


def old_fit(observed: np.ndarray, pairs: list[tuple[int, int]], valid: list[str]):
    store, layout, names = compendium(observed, pairs)
    valid_columns = columns_of(names, valid)
    train_columns = np.setdiff1d(np.arange(len(names)), valid_columns)
    return Predictd(SETTINGS).fit(LocalEngine(store), layout, train_columns, valid_columns), names


OLD_VALID = ["E0:M1", "E2:M3", "E4:M5", "E5:M0", "E6:M2", "E1:M4"]


@pytest.fixture(scope="module")
def new_cell(planted):
    """Fitted on cells E0-E6, then E7 arrives with every assay but M0 (held out, scored against the truth).

    The extended store's columns are shuffled, so its cell types and assays come in another order.
    """
    truth, observed = planted
    old_pairs = [(c, a) for c in range(N_CELLS - 1) for a in range(N_ASSAYS)]
    model, _ = old_fit(observed, old_pairs, OLD_VALID)
    new_pairs = [(N_CELLS - 1, a) for a in range(1, N_ASSAYS)]
    order = np.random.default_rng(5).permutation(len(old_pairs) + len(new_pairs))
    store, layout, names = compendium(observed, [(old_pairs + new_pairs)[k] for k in order])
    valid = columns_of(names, OLD_VALID + ["E7:M5"])
    train = np.setdiff1d(np.arange(len(names)), valid)
    return SimpleNamespace(model=model, store=store, layout=layout, names=names, train=train, valid=valid,
                           target=("E7", "M0", truth[:, N_CELLS - 1, 0]))


@pytest.fixture(scope="module")
def new_cell_extended(new_cell):
    before = snapshot(new_cell.model)
    extended = extend_model(new_cell.model, LocalEngine(new_cell.store), new_cell.layout, new_cell.train,
                            new_cell.valid)
    assert_same_snapshot(before, snapshot(new_cell.model))  # the input model is untouched
    return extended


def test_a_new_cell_type_is_imputed_about_as_well_as_by_a_full_refit(new_cell, new_cell_extended):
    s = new_cell
    inputs = np.union1d(s.train, s.valid)
    refit = Predictd(SETTINGS).fit(LocalEngine(s.store), s.layout, s.train, s.valid)
    start, new_cells, new_assays = extended_start(s.model, s.layout)
    assert [s.layout.cells[c] for c in new_cells] == ["E7"] and new_assays.size == 0
    extended_mse = imputation_mse(new_cell_extended.factors_, s.store, s.layout, inputs, *s.target)
    refit_mse = imputation_mse(refit.factors_, s.store, s.layout, inputs, *s.target)
    start_mse = imputation_mse(start, s.store, s.layout, inputs, *s.target)
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


def test_extend_history_is_appended_and_its_objective_never_increases(new_cell, new_cell_extended):
    extended, model = new_cell_extended, new_cell.model
    history = extended.history_
    assert history[:len(model.history_)] == model.history_
    rows = history[len(model.history_):]
    assert rows and all(row["stage"] == "extend" for row in rows)
    assert [row["iteration"] for row in rows] == list(range(1, len(rows) + 1))
    assert objective_never_increases(rows)
    best = rows[extended.best_iteration_ - 1]["valid_mse"]
    assert best <= min(row["valid_mse"] for row in rows) * (1 + SETTINGS.tol)


def objective_never_increases(rows: list[dict]) -> bool:
    objective = [row["objective"] for row in rows]
    return objective[-1] < 0.9 * objective[0] and all(b <= a * (1 + 1e-13) for a, b in zip(objective, objective[1:]))


def test_the_objective_never_increases_near_convergence(new_cell):
    """40 sweeps, past where validation stops. The new cell has fewer training experiments than the
    others: with the plain mean of the cell rows as the shrinkage centre (not J's minimiser over the
    centre then), J rose here by up to 1e-8 of itself."""
    model = copy.copy(new_cell.model)
    model.settings = SETTINGS.model_copy(update={"patience": 40})
    extended = extend_model(model, LocalEngine(new_cell.store), new_cell.layout, new_cell.train, new_cell.valid)
    rows = extended.history_[len(model.history_):]
    assert len(rows) == 40 and objective_never_increases(rows)


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


def test_a_new_assay_for_existing_cells_is_imputed_about_as_well_as_by_a_full_refit(planted):
    """Fitted on assays M0-M4, then M5 arrives for every cell but E7 (held out)."""
    truth, observed = planted
    old_pairs = [(c, a) for c in range(N_CELLS) for a in range(N_ASSAYS - 1)]
    old_valid = ["E0:M1", "E2:M3", "E4:M0", "E7:M2", "E6:M4"]
    model, _ = old_fit(observed, old_pairs, old_valid)
    store, layout, names = compendium(observed, old_pairs + [(c, N_ASSAYS - 1) for c in range(N_CELLS - 1)])
    valid = columns_of(names, old_valid + ["E3:M5"])
    train = np.setdiff1d(np.arange(len(names)), valid)
    before = snapshot(model)
    extended = extend_model(model, LocalEngine(store), layout, train, valid)
    assert_same_snapshot(before, snapshot(model))
    assert_old_rows_kept(model, extended)
    refit = Predictd(SETTINGS).fit(LocalEngine(store), layout, train, valid)
    inputs, target = np.union1d(train, valid), ("E7", "M5", truth[:, N_CELLS - 1, N_ASSAYS - 1])
    start, _, new_assays = extended_start(model, layout)
    assert [layout.assays[a] for a in new_assays] == ["M5"]
    extended_mse = imputation_mse(extended.factors_, store, layout, inputs, *target)
    refit_mse = imputation_mse(refit.factors_, store, layout, inputs, *target)
    start_mse = imputation_mse(start, store, layout, inputs, *target)
    assert extended_mse < 1.15 * refit_mse
    assert extended_mse < 0.2 * start_mse
    assert objective_never_increases([row for row in extended.history_ if row.get("stage") == "extend"])


def test_without_new_cell_types_or_assays_nothing_is_fitted(new_cell, planted):
    """New tracks of known cell types and assays only (here: the old ones, reordered) change no factor."""
    s = new_cell
    pairs = [(c, a) for a in range(N_ASSAYS) for c in range(N_CELLS - 1)]
    store, layout, names = compendium(planted[1], pairs)
    valid = columns_of(names, OLD_VALID)
    train = np.setdiff1d(np.arange(len(names)), valid)
    calls = []
    engine = LocalEngine(store)
    engine.map_reduce = lambda fn, payload: calls.append(fn)  # no pass over the data is needed
    extended = extend_model(s.model, engine, layout, train, valid)
    assert calls == []
    assert_old_rows_kept(s.model, extended)
    assert extended.history_ == s.model.history_ and extended.best_iteration_ == s.model.best_iteration_
    assert np.array_equal(extended.train_columns_, train)


def test_a_store_without_a_known_cell_type_is_an_input_error(new_cell, planted):
    store, layout, names = compendium(planted[1], [(c, a) for c in range(1, N_CELLS) for a in range(N_ASSAYS)])
    with pytest.raises(PredictdInputError, match="E0") as caught:
        extend_model(new_cell.model, LocalEngine(store), layout, np.arange(len(names)), np.array([], dtype=int))
    assert caught.value.field == "cells"
