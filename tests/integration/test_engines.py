"""The Spark engine and the numpy engine give the same statistics, factors and imputations."""

import numpy as np
import pytest

from predictd_core.engine.local import LocalEngine
from predictd_core.engine.spark import SparkEngine
from predictd_core.train.estimator import Predictd
from predictd_core.model.factors import Layout, initial_factors
from predictd_core.model.settings import ModelSettings
from predictd_core.solvers import als
from predictd_core.store.signal_store import ingest
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table

pytestmark = pytest.mark.spark


@pytest.fixture
def chunked_store(tiny_compendium, tmp_path):
    folder, tracks_tsv, sizes, _ = tiny_compendium
    return ingest(read_tracks_table(tracks_tsv), read_chrom_sizes(sizes), 25, tmp_path / "s.zarr", chunk_bins=16)


def test_spark_fit_equals_numpy_fit(chunked_store, spark_session):
    layout = Layout.from_experiments(chunked_store.experiments)
    train, valid = np.array([0, 1, 2, 3, 5]), np.array([4])
    settings = ModelSettings(rank=2, max_iters=6, patience=10, seed=3)
    local_engine = LocalEngine(chunked_store)
    numpy_model = Predictd(settings).fit(local_engine, layout, train, valid)
    spark_engine = SparkEngine(chunked_store, master="local[2]")
    assert spark_engine.store.n_chunks == 4
    spark_model = Predictd(settings).fit(spark_engine, layout, train, valid)
    assert numpy_model.best_iteration_ == spark_model.best_iteration_
    assert len(numpy_model.history_) == len(spark_model.history_) == 6
    for key in ("objective", "train_mse", "valid_mse"):  # every sweep's factors, seen through its losses
        np.testing.assert_allclose([h[key] for h in spark_model.history_], [h[key] for h in numpy_model.history_],
                                   rtol=1e-9)
    np.testing.assert_allclose(spark_model.factors_.C, numpy_model.factors_.C, rtol=1e-7, atol=1e-10)
    # and the factors themselves, sweep by sweep, from each engine's own statistics
    factors_np = factors_sp = initial_factors(layout, 2, 3, *local_engine.map_reduce(als.column_moments, None), train)
    penalties = numpy_model.scaled_penalties()
    for _ in range(4):
        inputs_np = als.SweepInputs(factors_np, layout.cell_of, layout.assay_of, train, valid, 2.9)
        inputs_sp = als.SweepInputs(factors_sp, layout.cell_of, layout.assay_of, train, valid, 2.9)
        factors_np = als.update_cell_assay(local_engine.map_reduce(als.sweep_statistics, inputs_np), inputs_np,
                                           penalties, 3)
        factors_sp = als.update_cell_assay(spark_engine.map_reduce(als.sweep_statistics, inputs_sp), inputs_sp,
                                           penalties, 3)
        np.testing.assert_allclose(factors_sp.C, factors_np.C, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(factors_sp.A, factors_np.A, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(factors_sp.b_a, factors_np.b_a, rtol=1e-7, atol=1e-10)
    # imputation streams chunks back in genome order
    cells, assays = layout.all_pairs()

    def impute(Y, model):
        return model.predict_chunk(Y, np.arange(6), cells, assays)

    local = np.concatenate([v for _, v in LocalEngine(chunked_store).map_chunks(impute, numpy_model)])
    spark = list(spark_engine.map_chunks(impute, numpy_model))
    assert [chunk for chunk, _ in spark] == [0, 1, 2, 3]
    np.testing.assert_allclose(np.concatenate([v for _, v in spark]), local)
    spark_engine.close()


def test_numpy_engine_caches_for_sweeps_not_for_a_single_pass(chunked_store, monkeypatch):
    reads = []
    original = type(chunked_store).read_chunk
    monkeypatch.setattr(type(chunked_store), "read_chunk", lambda self, k: reads.append(k) or original(self, k))
    engine = LocalEngine(chunked_store)
    one_pass = [np.nansum(Y) for _, Y in engine.map_chunks(lambda Y, _: Y, None)]
    assert reads == [0, 1, 2, 3]  # imputation's pass reads each chunk, and keeps none (memory follows the chunk)
    total = engine.map_reduce(lambda Y, _: np.nansum(Y), None)
    engine.map_reduce(lambda Y, _: np.nansum(Y), None)
    assert reads == [0, 1, 2, 3] * 2  # the sweeps read once, then reuse the cache
    assert [np.nansum(Y) for _, Y in engine.map_chunks(lambda Y, _: Y, None)] == one_pass
    assert reads == [0, 1, 2, 3] * 2 and total == pytest.approx(sum(one_pass))
    with engine as same:
        assert same is engine
    engine.map_reduce(lambda Y, _: np.nansum(Y), None)
    assert reads == [0, 1, 2, 3] * 3  # leaving the block closed the engine: its cache is gone


def test_spark_nadam_fit_equals_numpy_fit(chunked_store, spark_session):
    """map_state on Spark (each task reads its chunk beside its state) gives the numpy engine's rounds."""
    layout = Layout.from_experiments(chunked_store.experiments)
    train, valid = np.array([0, 1, 2, 3, 5]), np.array([4])
    settings = ModelSettings(solver="nadam-sgd", rank=2, max_iters=4, patience=10, seed=3, batch_size=20)
    numpy_model = Predictd(settings).fit(LocalEngine(chunked_store), layout, train, valid)
    with SparkEngine(chunked_store, master="local[2]") as spark_engine:
        spark_model = Predictd(settings).fit(spark_engine, layout, train, valid)
    assert len(spark_model.history_) == len(numpy_model.history_) == 5  # the start, then 4 rounds
    np.testing.assert_allclose([h["valid_mse"] for h in spark_model.history_],
                               [h["valid_mse"] for h in numpy_model.history_], rtol=1e-9)
    np.testing.assert_allclose(spark_model.factors_.C, numpy_model.factors_.C, rtol=1e-7, atol=1e-10)
