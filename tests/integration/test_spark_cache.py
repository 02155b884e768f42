"""The Spark engine's decoded-chunk cache: hit from the second sweep, never stale, within its budget."""

import os
from pathlib import Path

import numpy as np
import pytest

from predictd_core.engine.local import LocalEngine
from predictd_core.engine.chunk_cache import CHUNK_CACHE_CONF, parse_bytes
from predictd_core.engine.spark import SparkEngine
from predictd_core.errors import PredictdInputError
from predictd_core.store.signal_store import SignalStore, ingest, write_store
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table

pytestmark = pytest.mark.spark


@pytest.fixture
def chunked_store(tiny_compendium, tmp_path):
    folder, tracks_tsv, sizes, _ = tiny_compendium
    return ingest(read_tracks_table(tracks_tsv), read_chrom_sizes(sizes), 25, tmp_path / "s.zarr", chunk_bins=16)


def _signal_sum(Y, _payload):
    return float(np.nansum(Y, dtype=np.float64))


def _cache_files(session) -> list[Path]:
    """The executor's cache files, found from a task (the folder Spark gives its Python workers)."""
    local = session.sparkContext.parallelize([0], 1).map(lambda _: os.environ["SPARK_LOCAL_DIRS"]).collect()[0]
    return sorted((Path(local.split(",")[0]) / "predictd-chunks").glob("*.npy"))


def test_second_sweep_reads_every_chunk_from_the_cache(chunked_store, spark_session):
    expected = LocalEngine(chunked_store, cache=False).map_reduce(_signal_sum, None)
    engine = SparkEngine(chunked_store, master="local[2]", cache_bytes=2**30)
    assert engine.map_reduce(_signal_sum, None) == pytest.approx(expected, rel=1e-12)
    assert (engine.cache_hits, engine.cache_misses) == (0, 4)
    assert engine.map_reduce(_signal_sum, None) == pytest.approx(expected, rel=1e-12)
    assert (engine.cache_hits, engine.cache_misses) == (4, 4)
    # imputation's single pass is served by the cache too
    assert sum(value for _, value in engine.map_chunks(_signal_sum, None)) == pytest.approx(expected, rel=1e-12)
    assert (engine.cache_hits, engine.cache_misses) == (8, 4)
    engine.close()


def test_a_store_rewritten_at_the_same_path_is_read_afresh(chunked_store, spark_session):
    first = SparkEngine(chunked_store, master="local[2]", cache_bytes=2**30)
    old = first.map_reduce(_signal_sum, None)
    first.map_reduce(_signal_sum, None)
    assert first.cache_hits == 4
    first.close()
    doubled = [chunked_store.read_chunk(k) for k in range(chunked_store.n_chunks)]
    write_store(chunked_store.path, list(chunked_store.experiments), chunked_store.bins,
                lambda lo, hi: np.sinh(np.concatenate(doubled)[lo:hi]) * 2, chunked_store.chunk_bins)
    rewritten = SignalStore.open(chunked_store.path)
    expected = LocalEngine(rewritten, cache=False).map_reduce(_signal_sum, None)
    assert expected > old * 1.05  # the rewrite changed the signal
    second = SparkEngine(rewritten, master="local[2]", cache_bytes=2**30)
    assert second.map_reduce(_signal_sum, None) == pytest.approx(expected, rel=1e-12)
    assert (second.cache_hits, second.cache_misses) == (0, 4)
    second.close()


def test_the_budget_bounds_the_cache(chunked_store, spark_session):
    expected = LocalEngine(chunked_store, cache=False).map_reduce(_signal_sum, None)
    chunk_bytes = chunked_store.read_chunk(0).nbytes
    budget = chunk_bytes + 4096 + 600  # a new chunk's reservation (its size and a header's) and one small file
    engine = SparkEngine(chunked_store, master="local[2]", cache_bytes=budget)
    for _ in range(2):
        assert engine.map_reduce(_signal_sum, None) == pytest.approx(expected, rel=1e-12)
        files = _cache_files(spark_session)
        assert 1 <= len(files) <= 2 and sum(f.stat().st_size for f in files) <= budget
    engine.close()
    roomy = SparkEngine(chunked_store, master="local[2]", conf={CHUNK_CACHE_CONF: "1m"})
    roomy.map_reduce(_signal_sum, None)
    assert roomy.cache_bytes == 2**20 and len(_cache_files(spark_session)) >= 4  # every chunk kept when it fits
    off = SparkEngine(chunked_store, master="local[2]", cache_bytes=0)
    off.map_reduce(_signal_sum, None)
    off.map_reduce(_signal_sum, None)
    assert (off.cache_hits, off.cache_misses) == (0, 8)


def test_cache_budget_sizes():
    assert [parse_bytes(text) for text in ("0", "4096", "512m", "8g", "1T")] == [0, 4096, 512 * 2**20, 8 * 2**30,
                                                                                   2**40]
    with pytest.raises(PredictdInputError, match="spark.predictd.chunkCacheBytes"):
        parse_bytes("lots")
