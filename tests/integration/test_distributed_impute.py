"""Imputation on Spark's executors through chunk bundles of bigWig parts: the numpy engine's tracks, bin for bin."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from predictd_core.config import RunConfig
from predictd_core.engine.local import LocalEngine
from predictd_core.engine.spark import SparkEngine
from predictd_core.errors import PredictdInputError
from predictd_core.engine.bundles import read_ahead, read_bundle_index, scratch_folder
from predictd_core.impute.distributed import group_tracks, write_bundle, write_tracks_distributed
from predictd_core.impute.job import ImputeJob, write_imputed_tracks
from predictd_core.impute.outputs import track_names
from predictd_core.impute.write_tracks import write_track_part
from predictd_core.io import read_range
from predictd_core.store.signal_store import SignalStore, write_store
from predictd_core.tracks.genome import GenomeBins
from predictd_core.tracks.table import Track
from tests.integration.test_parallel_impute import store_with_a_broken_chunk, two_member_run

pytestmark = pytest.mark.spark

BIN = 25
# Three contigs, two of them ending in a narrow bin; 35,002 bins in chunks of 5,555 (7 chunks, the last of 1,672
# bins): chunks are no multiple of the 40-bin (1 kb) zoom window, and chunks straddle contigs.
CONTIGS = {"chr1": BIN * 20_000 + 7, "chr2": BIN * 9_000, "chr3": BIN * 6_000 + 13}
CHUNK_BINS = 5_555
CELLS, ASSAYS = ("E001", "E002", "E003", "E004"), ("H3K4me3", "H3K27ac", "DNase")
MISSING = {("E001", "DNase"), ("E003", "H3K4me3"), ("E004", "H3K27ac")}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SignalStore:
    """A store of 9 observed experiments of a 4 x 3 grid, with a few bins without data."""
    folder = tmp_path_factory.mktemp("distributed")
    bins = GenomeBins.build(CONTIGS, BIN)
    tracks = [Track(cell, assay, f"{cell}.{assay}.bigWig") for cell in CELLS for assay in ASSAYS
              if (cell, assay) not in MISSING]
    rng = np.random.default_rng(5)
    signal = rng.gamma(0.6, 2.0, (bins.n_bins, len(tracks))).astype(np.float32)
    signal[rng.random(signal.shape) < 0.01] = np.nan
    write_store(str(folder / "store.zarr"), tracks, bins, lambda lo, hi: signal[lo:hi], CHUNK_BINS)
    return SignalStore.open(folder / "store.zarr")


@pytest.fixture(scope="module")
def job(store) -> ImputeJob:
    """Two members (the second imputes a third of the pairs), with the spread, for all pairs but the first: 22
    tracks, so the assembly tasks' groups of 3 (local[2]) straddle imputed/ and spread/."""
    ensemble = two_member_run(store).ensemble
    return ImputeJob(ensemble, True, np.arange(1, ensemble.n_pairs))


def _config(store: SignalStore, output) -> RunConfig:
    return RunConfig(tracks="tracks.tsv", chrom_sizes="chrom.sizes", store=store.path, output=str(output),
                     chunk_bins=CHUNK_BINS, engine={"kind": "numpy", "processes": 1})


def _intervals(path) -> dict:
    with pyBigWig.open(str(path)) as handle:
        return {name: handle.intervals(name) for name in handle.chroms()}


def _zoom_means(path) -> np.ndarray:
    """Means over 7 windows of each contig from the zoom levels (not the data)."""
    with pyBigWig.open(str(path)) as handle:
        return np.array([handle.stats(name, type="mean", nBins=7, exact=False) for name in CONTIGS], float)


def test_spark_writes_the_numpy_engines_tracks_bin_for_bin(store, job, tmp_path, spark_session):
    heard = {"numpy": [], "spark": []}
    write_imputed_tracks(_config(store, tmp_path / "numpy"), store, job, LocalEngine(store),
                         lambda *event: heard["numpy"].append(event))
    engine = SparkEngine(store, master="local[2]")
    assert engine.distributed and engine.parallelism == 2 and group_tracks(22, 2) == 3
    write_imputed_tracks(_config(store, tmp_path / "spark"), store, job, engine,
                         lambda *event: heard["spark"].append(event))
    engine.close()
    assert heard["spark"] == heard["numpy"] == [("impute", k, 7) for k in range(1, 8)]
    assert sorted(path.name for path in (tmp_path / "spark").iterdir()) == ["imputed", "spread"]  # no .parts
    names = track_names(job.ensemble.layout, job.pairs)
    assert len(names) == 11
    for folder in ("imputed", "spread"):
        assert sorted(path.name for path in (tmp_path / "spark" / folder).iterdir()) == sorted(names)
        for name in names:
            expected, got = tmp_path / "numpy" / folder / name, tmp_path / "spark" / folder / name
            expected_intervals = _intervals(expected)
            assert _intervals(got) == expected_intervals  # every bin: start, end and value
            assert sum(len(found) for found in expected_intervals.values()) == store.bins.n_bins
            assert expected_intervals["chr1"][-1][:2] == (BIN * 20_000, BIN * 20_000 + 7)  # the narrow last bin
            np.testing.assert_allclose(_zoom_means(got), _zoom_means(expected), rtol=1e-6)


def test_a_failing_chunk_publishes_nothing_and_leaves_no_scratch(store, job, tmp_path, spark_session):
    bad = store_with_a_broken_chunk(store, tmp_path, 5)  # bins 27,775-33,329
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("a run's other output")
    engine = SparkEngine(bad, master="local[2]", cache_bytes=0)
    with pytest.raises(Exception, match="decompression"):  # the executor's error, with its Python traceback
        write_imputed_tracks(_config(bad, output), bad, job, engine, lambda *event: None)
    engine.close()
    assert [path.name for path in output.iterdir()] == ["keep.txt"]  # no imputed/, spread/, staging or .parts


def test_an_input_error_of_a_task_reaches_the_caller_as_raised(store, tmp_path, spark_session):
    def bad_last_chunk(signal: np.ndarray, payload: str) -> np.ndarray:
        if signal.shape[0] < CHUNK_BINS:
            raise PredictdInputError("tracks.tsv", payload, "values out of range in the last chunk")
        return np.nan_to_num(signal[:, :2])

    engine = SparkEngine(store, master="local[2]", cache_bytes=0)
    with pytest.raises(PredictdInputError) as raised, scratch_folder(tmp_path) as scratch:
        write_tracks_distributed(engine, bad_last_chunk, "E002:H3K4me3", [tmp_path / "a.bigWig", tmp_path / "b.bigWig"],
                                 [False, False], scratch)
    engine.close()
    assert (raised.value.source, raised.value.field) == ("tracks.tsv", "E002:H3K4me3")
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no track, no scratch


def test_a_bundles_byte_range_holds_the_parts_written_one_by_one(store, tmp_path):
    bins, (lo, hi) = store.bins, store.chunk_bounds(3)  # bins 16,665-22,220: chr1's narrow end, chr2's start
    rng = np.random.default_rng(2)
    values = [rng.normal(0.5, 1, (hi - lo, 4)).astype(np.float32), rng.gamma(1, 1, (hi - lo, 3)).astype(np.float32)]
    scales = [True] * 4 + [False] * 3
    with open(tmp_path / "chunk.bundle", "w+b") as file:
        file.write(b"x" * 5)  # a bundle need not start a file: offsets are from its first byte
        offsets = write_bundle(file, bins, lo, hi, values, scales)
        assert file.tell() == 5 + int(offsets[-1])
    data = (tmp_path / "chunk.bundle").read_bytes()[5:]
    assert read_bundle_index(data, "chunk.bundle")[:2] == (lo, hi)
    np.testing.assert_array_equal(read_bundle_index(data, "chunk.bundle")[2], offsets)
    (tmp_path / "bundle").write_bytes(data)
    columns = np.hstack(values)
    first, last = 2, 6  # tracks 2-5: across the two blocks
    group = read_range(tmp_path / "bundle", int(offsets[first]), int(offsets[last]))
    for track in range(first, last):
        write_track_part(tmp_path / f"part{track}", bins, lo, hi, columns[:, track], from_arcsinh=scales[track])
        part = group[offsets[track] - offsets[first]:offsets[track + 1] - offsets[first]]
        assert part == (tmp_path / f"part{track}").read_bytes()
    ranges = [(tmp_path / "bundle", int(offsets[k]), int(offsets[k + 1])) for k in range(len(scales))]
    assert list(read_ahead(ranges, 2)) == [data[start:end] for _, start, end in ranges]  # in order, 2 at a time
    damaged = bytearray(data)
    damaged[40] ^= 1  # a byte of the index
    with pytest.raises(PredictdInputError, match=r"chunk.bundle: index: damaged"):
        read_bundle_index(bytes(damaged), "chunk.bundle")
    with pytest.raises(PredictdInputError, match=r"bundle: bytes .*only"):
        read_range(tmp_path / "bundle", int(offsets[-2]), int(offsets[-1]) + 10)


@pytest.fixture(scope="module")
def small_job(store, job, tmp_path_factory) -> tuple[ImputeJob, Path]:
    """Three pairs of ``job``, and the folder of their tracks written by the numpy engine."""
    small = ImputeJob(job.ensemble, True, np.array([0, 5, 11]))
    output = tmp_path_factory.mktemp("small")
    write_imputed_tracks(_config(store, output), store, small, LocalEngine(store), lambda *event: None)
    return small, output


def _impute_remote(store, small_job, tmp_path, url: str, listing) -> None:
    """Impute ``small_job``'s pairs on Spark to ``url`` and compare every object there (``listing()``: name ->
    bytes, the names relative to ``url``) with the numpy engine's local tracks: nothing else is left (no
    .parts/)."""
    small, local = small_job
    engine = SparkEngine(store, master="local[2]")
    write_imputed_tracks(_config(store, url), store, small, engine, lambda *event: None)
    engine.close()
    objects = listing()
    names = track_names(small.ensemble.layout, small.pairs)
    assert sorted(objects) == sorted(f"{folder}/{name}" for folder in ("imputed", "spread") for name in names)
    for key, data in objects.items():
        got = tmp_path / "got.bigWig"
        got.write_bytes(data)
        assert _intervals(got) == _intervals(local / key)


def test_tracks_imputed_on_spark_to_s3_are_the_local_runs(store, small_job, tmp_path, s3_bucket_on_workers):
    client, bucket = s3_bucket_on_workers

    def listing() -> dict[str, bytes]:
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        return {key.removeprefix("runs/r1/"): client.get_object(Bucket=bucket, Key=key)["Body"].read()
                for key in keys}

    _impute_remote(store, small_job, tmp_path, f"s3://{bucket}/runs/r1", listing)


def test_tracks_imputed_on_spark_to_blob_storage_are_the_local_runs(store, small_job, tmp_path, azurite_env,
                                                                     worker_env):
    from tests.azure_support import create_containers

    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "NO_PROXY", "no_proxy"):
        worker_env(name, os.environ[name])
    folder = f"distributed-{uuid.uuid4().hex[:8]}"
    container = create_containers(azurite_env, ("runs",)).get_container_client("runs")

    def listing() -> dict[str, bytes]:
        return {blob.name.removeprefix(f"{folder}/"): container.download_blob(blob.name).readall()
                for blob in container.list_blobs(name_starts_with=f"{folder}/")}

    _impute_remote(store, small_job, tmp_path, f"az://runs/{folder}", listing)
