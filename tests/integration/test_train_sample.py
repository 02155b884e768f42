"""Training on a sample of the genome (``model.train_bins``): whole chunks spread evenly, the same model as one
fitted on a store that holds only those chunks, on either engine; imputation still covers every bin."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from predictd_core.cli.main import main
from predictd_core.config import load_config
from predictd_core.engine.local import LocalEngine
from predictd_core.model.factors import Layout
from predictd_core.model.settings import TRAIN_BINS, ModelSettings
from predictd_core.pipeline import run_impute, single_model_run
from predictd_core.store.signal_store import SignalStore, ingest
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table
from predictd_core.train.estimator import Predictd
from predictd_core.train.sample import training_chunks
from tests.conftest import write_config

TRAIN, VALID = np.array([0, 1, 2, 3, 5]), np.array([4])
SETTINGS = ModelSettings(rank=2, max_iters=6, patience=10, seed=3)


@pytest.fixture
def chunked_store(tiny_compendium, tmp_path):
    """61 bins in chunks of 16, 16, 16 and 13."""
    folder, tracks_tsv, sizes, _ = tiny_compendium
    return ingest(read_tracks_table(tracks_tsv), read_chrom_sizes(sizes), 25, tmp_path / "s.zarr", chunk_bins=16)


class ChunksOnly:
    """A store holding only some chunks of another, as if the genome were those chunks end to end."""

    def __init__(self, store: SignalStore, chunks) -> None:
        self.blocks = [store.read_chunk(k) for k in chunks]
        self.chunk_bins = store.chunk_bins
        self.bins = SimpleNamespace(n_bins=sum(block.shape[0] for block in self.blocks))

    @property
    def n_chunks(self) -> int:
        return len(self.blocks)

    def read_chunk(self, chunk: int) -> np.ndarray:
        return self.blocks[chunk]

    def n_bins_of(self, chunks) -> int:
        return sum(self.blocks[k].shape[0] for k in chunks)


def test_spread_chunks_are_whole_chunks_evenly_over_the_genome(chunked_store):
    assert chunked_store.spread_chunks(10_000) == (0, 1, 2, 3)  # a store no larger than the budget: every chunk
    assert chunked_store.spread_chunks(61) == (0, 1, 2, 3)
    assert chunked_store.spread_chunks(32) == (0, 3)  # two chunks' worth: the first and the last
    assert chunked_store.spread_chunks(5) == (0,)  # less than a chunk: one
    assert chunked_store.n_bins_of((0, 3)) == 16 + 13


def test_a_model_on_a_sample_is_the_model_of_a_store_of_that_sample(chunked_store):
    layout = Layout.from_experiments(chunked_store.experiments)
    sampled = LocalEngine(chunked_store, chunks=chunked_store.spread_chunks(32))
    assert (sampled.chunks, sampled.n_bins) == ((0, 3), 29)
    model = Predictd(SETTINGS).fit(sampled, layout, TRAIN, VALID)
    reference = Predictd(SETTINGS).fit(LocalEngine(ChunksOnly(chunked_store, (0, 3))), layout, TRAIN, VALID)
    assert model.n_bins_ == reference.n_bins_ == 29
    for key in ("objective", "train_mse", "valid_mse"):
        assert [h[key] for h in model.history_] == [h[key] for h in reference.history_]
    np.testing.assert_array_equal(model.factors_.C, reference.factors_.C)
    np.testing.assert_array_equal(model.factors_.A, reference.factors_.A)
    np.testing.assert_array_equal(model.factors_.b_c, reference.factors_.b_c)
    assert model.factors_.mu == reference.factors_.mu
    whole = Predictd(SETTINGS).fit(LocalEngine(chunked_store), layout, TRAIN, VALID)
    assert whole.n_bins_ == 61 and not np.allclose(whole.factors_.b_c, model.factors_.b_c)  # the sample mattered


@pytest.mark.spark
def test_spark_trains_on_the_same_sample(chunked_store, spark_session):
    from predictd_core.engine.spark import SparkEngine

    layout = Layout.from_experiments(chunked_store.experiments)
    numpy_model = Predictd(SETTINGS).fit(LocalEngine(chunked_store, chunks=(0, 3)), layout, TRAIN, VALID)
    engine = SparkEngine(chunked_store, master="local[2]", chunks=(3, 0))
    assert (engine.chunks, engine.n_bins) == ((0, 3), 29)
    spark_model = Predictd(SETTINGS).fit(engine, layout, TRAIN, VALID)
    engine.close()
    np.testing.assert_allclose([h["valid_mse"] for h in spark_model.history_],
                               [h["valid_mse"] for h in numpy_model.history_], rtol=1e-9)
    np.testing.assert_allclose(spark_model.factors_.C, numpy_model.factors_.C, rtol=1e-7, atol=1e-10)


def test_chunks_outside_the_store_are_refused(chunked_store):
    with pytest.raises(ValueError, match="subset of the store's 4"):
        LocalEngine(chunked_store, chunks=(0, 4))
    with pytest.raises(ValueError, match="non-empty"):
        LocalEngine(chunked_store, chunks=())


def test_train_command_samples_and_imputation_covers_every_bin(tiny_compendium, chunked_store, tmp_path):
    folder = tiny_compendium[0]
    path = write_config(folder, store=str(chunked_store.path), chunk_bins=16,
                        model={"solver": "als", "rank": 2, "max_iters": 4, "train_bins": 32})
    assert main(["train", str(path)]) == 0
    description = json.loads((folder / "out" / "model" / "model.json").read_text())
    assert description["n_bins"] == 29  # chunks 0 and 3
    config = load_config(path)
    assert training_chunks(config, chunked_store) == (0, 3)
    model = Predictd.load(folder / "out" / "model")
    with pytest.raises(ValueError, match="maps 2 of the store's 4 chunks"):
        run_impute(config, chunked_store, single_model_run(config, chunked_store, model),
                   LocalEngine(chunked_store, chunks=(0, 3)))
    assert main(["impute", str(path)]) == 0
    imputed = sorted((folder / "out" / "imputed").glob("*.bigWig"))
    assert len(imputed) == 6
    import pyBigWig

    handle = pyBigWig.open(str(imputed[0]))
    assert np.isfinite(handle.values("chrA", 0, 1000, numpy=True)).all()  # bins no chunk of the sample held
    assert np.isfinite(handle.values("chrB", 0, 510, numpy=True)).all()
    handle.close()


def test_the_default_is_predictds_training_set():
    assert ModelSettings().train_bins == TRAIN_BINS == 20 * 65_536
