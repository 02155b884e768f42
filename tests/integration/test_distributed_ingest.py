"""Ingest on Spark's executors through bundles of binned tracks: the store the ingest processes write, value for
value; a bad track fails it before any store is written, and nothing is left behind."""

from __future__ import annotations

import os

import numpy as np
import pyBigWig
import pytest
import zarr

from predictd_core.engine.base import items_per_task
from predictd_core.engine.bundles import BundleWriter, read_floats
from predictd_core.engine.ingest import (ChunkGroupTask, TrackGroupTask, bin_track_group, ingest_on_tasks,
                                         write_chunk_group)
from predictd_core.errors import PredictdInputError
from predictd_core.simulate import simulate_compendium
from predictd_core.store.signal_store import create_store, ingest
from predictd_core.tracks.genome import GenomeBins, read_chrom_sizes
from predictd_core.tracks.table import Track, read_tracks_table

CHUNK_BINS = 7_001  # no divisor of the contigs: chunks straddle contigs


class InProcess:
    """A task runner whose tasks run here one after another (one slot: groups of several tracks and chunks)."""

    distributed, parallelism = False, 1

    def run_tasks(self, fn, items):
        return [fn(item) for item in items]


@pytest.fixture(scope="module")
def compendium(tmp_path_factory):
    """Nine simulated bigWigs over three contigs and one with gaps (intervals ending mid-bin, a contig without
    data), and the store the ingest processes write of them."""
    folder = tmp_path_factory.mktemp("ingest")
    simulated = simulate_compendium(folder / "sim", n_cells=3, n_assays=3, n_bins=30_000, contigs=3,
                                    signal_format="bigwig")
    sizes = read_chrom_sizes(simulated.chrom_sizes)
    gapped = folder / "gapped.bigWig"
    with pyBigWig.open(str(gapped), "w") as handle:
        handle.addHeader(list(sizes.items()))
        starts = np.arange(0, 200_000, 137)
        handle.addEntries(["chrS1"] * len(starts), starts.tolist(), ends=(starts + 61).tolist(),
                          values=np.linspace(0, 9, len(starts)).tolist())
        handle.addEntries(["chrS3"], [5_000], ends=[5_013], values=[2.5])
    tracks = [*read_tracks_table(simulated.tracks_tsv), Track("E004", "H3K4me3", str(gapped))]
    reference = ingest(tracks, sizes, 25, folder / "reference.zarr", chunk_bins=CHUNK_BINS, processes=2)
    return tracks, sizes, GenomeBins.build(sizes, 25), reference


def _same_store(path, reference) -> None:
    got, expected = zarr.open_group(str(path), mode="r"), zarr.open_group(reference.path, mode="r")
    assert dict(got.attrs) == dict(expected.attrs)
    for name in ("signal", "bin_contig", "bin_start", "bin_end"):
        assert got[name].chunks == expected[name].chunks
        np.testing.assert_array_equal(got[name][:], expected[name][:])  # NaN where NaN


@pytest.mark.spark
def test_spark_writes_the_store_the_ingest_processes_write(compendium, tmp_path, spark_session):
    from predictd_core.engine.spark import SparkTasks

    tracks, sizes, bins, reference = compendium
    heard = []
    store = ingest_on_tasks(SparkTasks("local[2]"), tracks, sizes, bins, tmp_path / "store.zarr", CHUNK_BINS,
                            lambda *event: heard.append(event))
    assert store.n_chunks == 5 and heard == [(5, 5)]
    assert np.isnan(store.read_chunk(0)[:, -1]).any() and np.isfinite(store.read_chunk(0)[:, -1]).any()
    _same_store(tmp_path / "store.zarr", reference)
    assert os.listdir(tmp_path) == ["store.zarr"]  # no scratch, no partial store


def test_tasks_of_several_tracks_and_chunks_write_the_same_store(compendium, tmp_path):
    tracks, sizes, bins, reference = compendium
    assert items_per_task(len(tracks), 1, 4) == 3 and items_per_task(5, 1, 10) == 2  # 4 groups of tracks, 3 of chunks
    ingest_on_tasks(InProcess(), tracks, sizes, bins, tmp_path / "store.zarr", CHUNK_BINS)
    _same_store(tmp_path / "store.zarr", reference)


def test_a_bad_track_fails_before_any_store_and_leaves_nothing(compendium, tmp_path):
    tracks, sizes, bins, _ = compendium
    bad = tmp_path / "bad.bigWig"
    with pyBigWig.open(str(bad), "w") as handle:
        handle.addHeader(list(sizes.items()))
        first = next(iter(sizes))
        handle.addEntries([first], [100], ends=[200], values=[-1.0])
    (tmp_path / "old.zarr").mkdir()  # a store there before is kept when the ingest fails
    with pytest.raises(PredictdInputError, match=rf"{bad}: values: negative signal"):
        ingest_on_tasks(InProcess(), [*tracks[:4], Track("E9", "DNase", str(bad)), *tracks[4:]], sizes, bins,
                        tmp_path / "old.zarr", CHUNK_BINS)
    assert sorted(os.listdir(tmp_path)) == ["bad.bigWig", "old.zarr"] and not os.listdir(tmp_path / "old.zarr")
    with pytest.raises(PredictdInputError, match=r"missing.bigWig"):
        ingest_on_tasks(InProcess(), [*tracks, Track("E9", "DNase", str(tmp_path / "missing.bigWig"))], sizes,
                        bins, tmp_path / "new.zarr", CHUNK_BINS)
    assert sorted(os.listdir(tmp_path)) == ["bad.bigWig", "old.zarr"]


def test_a_damaged_bundle_is_an_error_naming_it(compendium, tmp_path):
    tracks, sizes, bins, _ = compendium
    location, index = bin_track_group(TrackGroupTask(tuple(tracks[:2]), 0, sizes, bins, CHUNK_BINS, str(tmp_path)))
    assert len(index) == 2 * 5 + 1  # track-major: 2 tracks x 5 chunks, and the end
    root = create_store(str(tmp_path / "store.zarr"), tracks[:2], bins, CHUNK_BINS)
    task = ChunkGroupTask(str(tmp_path / "store.zarr"), bins, CHUNK_BINS, (1, 2), (location, location),
                          (index[1:4].copy(), index[6:9].copy()))
    assert write_chunk_group(task) == 2
    assert np.isfinite(root["signal"][CHUNK_BINS:3 * CHUNK_BINS]).any()
    data = bytearray(open(location, "rb").read())
    data[int(index[7]) + 10] ^= 0xFF  # the second track's chunk 2
    open(location, "wb").write(bytes(data))
    with pytest.raises(PredictdInputError, match=rf"{location}: chunk 2: damaged track bins"):
        write_chunk_group(task)


@pytest.mark.spark
def test_spark_ingests_tracks_on_s3_into_a_store_on_s3(compendium, s3_bucket_on_workers):
    from predictd_core.engine.spark import SparkTasks
    from predictd_core.store.signal_store import SignalStore

    tracks, sizes, bins, reference = compendium
    client, bucket = s3_bucket_on_workers
    remote = []
    for track in tracks:
        key = f"tracks/{os.path.basename(track.path)}"
        client.upload_file(track.path, bucket, key)
        remote.append(Track(track.cell_type, track.assay, f"s3://{bucket}/{key}"))
    store = ingest_on_tasks(SparkTasks("local[2]"), remote, sizes, bins, f"s3://{bucket}/runs/r1/store.zarr",
                            CHUNK_BINS)
    for chunk in range(store.n_chunks):
        np.testing.assert_array_equal(store.read_chunk(chunk), reference.read_chunk(chunk))
    assert [e.path for e in SignalStore.open(f"s3://{bucket}/runs/r1/store.zarr").experiments] == \
        [t.path for t in remote]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="runs/r1/").get("Contents", [])]
    assert keys and all(key.startswith("runs/r1/store.zarr/") for key in keys)  # no .parts left


def test_a_piece_of_floats_reads_back_and_one_of_another_length_is_an_error(tmp_path):
    with open(tmp_path / "x.bundle", "w+b") as file:
        bundle = BundleWriter(file, 0, 3, 1)
        bundle.add_floats(np.array([0.5, np.nan, 2.0]))
        index = bundle.close()
    piece = (tmp_path / "x.bundle").read_bytes()[int(index[0]):int(index[1])]
    np.testing.assert_array_equal(read_floats(piece, 3, "x.bundle", "chunk 0", "track bins"), [0.5, np.nan, 2.0])
    with pytest.raises(PredictdInputError, match=r"x.bundle: chunk 0: 3 values of track bins where 4 belong"):
        read_floats(piece, 4, "x.bundle", "chunk 0", "track bins")
