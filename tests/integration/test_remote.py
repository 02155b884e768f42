"""Remote inputs and stores on real servers bound to loopback.

* Tracks-table ``path`` as an ``http://`` URL, served by ``http.server`` from the tiny compendium folder.
  ``https://`` goes through the very same ``urllib`` branch of ``readers.fetch``; only TLS differs, which
  would need certificates, so plain http stands in for it here.
* Tracks-table ``path`` as an ``s3://`` URL, and the signal store itself on ``s3://`` (config field
  ``store``), against a moto S3 server. boto3, s3fs (``fetch``) and zarr (the store) all find the server
  through the standard ``AWS_ENDPOINT_URL`` variable, as they would find MinIO or any S3-compatible store.

No traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.server
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from predictd_core.config import load_config
from predictd_core.errors import PredictdInputError
from predictd_core.pipeline import open_store, run_ingest
from predictd_core.store.signal_store import SignalStore, ingest, read_signal_rows, write_store
from predictd_core.tracks.genome import GenomeBins, read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table
from tests.conftest import write_config
from tests.integration.conftest import keys

CHUNK_BINS = 16  # the tiny compendium has 40 + 21 bins: four chunks, the last one partial
NAMES = [f"{cell}.{assay}" for cell in ("C1", "C2", "C3") for assay in ("M1", "M2")]


# --------------------------------------------------------------------------------------------- helpers

def write_tracks(folder: Path, name: str, base_url: str, files: list[str] | None = None) -> Path:
    """A tracks TSV whose paths are ``base_url/<file>`` (default: the six tiny-compendium bigWigs)."""
    rows = ["cell_type\tassay\tpath"]
    for file in files or [f"{n}.bigWig" for n in NAMES]:
        cell, assay = file.split(".")[:2]
        rows.append(f"{cell}\t{assay}\t{base_url.rstrip('/')}/{file}")
    path = folder / name
    path.write_text("\n".join(rows) + "\n")
    return path


def local_store(folder: Path, chrom_sizes_path: Path) -> SignalStore:
    """The reference: the tiny compendium ingested from local paths into a local store."""
    return ingest(read_tracks_table(folder / "tracks.tsv"), read_chrom_sizes(chrom_sizes_path), 25,
                  folder / "local.zarr", chunk_bins=CHUNK_BINS)


def all_signal(store: SignalStore) -> np.ndarray:
    return np.concatenate([store.read_chunk(k) for k in range(store.n_chunks)])


def assert_same_store(remote: SignalStore, reference: SignalStore, truth: dict) -> None:
    """Same experiments (by name), bins and every chunk's values as the local-path store, and as the truth."""
    assert [e.name for e in remote.experiments] == [e.name for e in reference.experiments]
    assert remote.chunk_bins == reference.chunk_bins and remote.n_chunks == reference.n_chunks == 4
    assert remote.bins.contigs == reference.bins.contigs and remote.bins.bin_size == reference.bins.bin_size
    assert remote.bins.spans == reference.bins.spans
    for ours, theirs in zip(remote.bins.coordinates(0, remote.bins.n_bins),
                            reference.bins.coordinates(0, reference.bins.n_bins)):
        np.testing.assert_array_equal(ours, theirs)
    for chunk in range(reference.n_chunks):
        np.testing.assert_array_equal(remote.read_chunk(chunk), reference.read_chunk(chunk))
    expected = np.stack([np.arcsinh(np.concatenate([truth[e.name]["chrA"], truth[e.name]["chrB"]]))
                         for e in reference.experiments], axis=1)
    np.testing.assert_allclose(all_signal(remote), expected, rtol=1e-5)


# ------------------------------------------------------------------------------------------------ http

@pytest.fixture
def http_base(tiny_compendium):
    """``http://127.0.0.1:PORT`` serving the tiny compendium folder (a free port, a thread, shut down after)."""
    folder = tiny_compendium[0]

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_tracks_ingest_like_local_paths(tiny_compendium, http_base, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # a proxy in the environment must not see loopback
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder, _, chrom_sizes_path, truth = tiny_compendium
    reference = local_store(folder, chrom_sizes_path)
    tracks = read_tracks_table(write_tracks(folder, "tracks_http.tsv", http_base))
    assert tracks[0].path == f"{http_base}/C1.M1.bigWig"  # URLs are kept as they are, not resolved as files
    store = ingest(tracks, read_chrom_sizes(chrom_sizes_path), 25, folder / "http.zarr", chunk_bins=CHUNK_BINS)
    assert [e.path for e in store.experiments] == [f"{http_base}/{n}.bigWig" for n in NAMES]
    assert_same_store(store, reference, truth)
    assert not list(folder.glob(".http.zarr.*")), "the partial folder and download cache are removed"


def test_http_404_names_the_url_and_leaves_no_store(tiny_compendium, http_base, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder, _, chrom_sizes_path, _ = tiny_compendium
    table = write_tracks(folder, "tracks_404.tsv", http_base, ["C1.M1.bigWig", "C9.M1.bigWig"])
    missing = f"{http_base}/C9.M1.bigWig"
    with pytest.raises(PredictdInputError) as caught:
        ingest(read_tracks_table(table), read_chrom_sizes(chrom_sizes_path), 25, folder / "bad.zarr",
               chunk_bins=CHUNK_BINS)
    assert caught.value.source == missing and caught.value.field == "path"
    assert missing in str(caught.value) and "404" in str(caught.value)
    assert not (folder / "bad.zarr").exists()
    assert not list(folder.glob("*bad.zarr*")), "no partial store or download cache is left behind"


# -------------------------------------------------------------------------------------------------- s3

@pytest.fixture
def s3(moto_endpoint, monkeypatch, tmp_path):
    """Credentials and endpoint in the environment, a fresh bucket; returns (boto3 client, bucket name)."""
    import boto3
    import s3fs

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_endpoint,
                        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
                        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # cached filesystems keep the endpoint they were built with
    client = boto3.client("s3")
    bucket = f"predictd-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    s3fs.S3FileSystem.clear_instance_cache()


def upload_compendium(client, bucket: str, folder: Path) -> None:
    for name in NAMES:
        client.upload_file(str(folder / f"{name}.bigWig"), bucket, f"{name}.bigWig")


def test_s3_tracks_ingest_like_local_paths(tiny_compendium, s3):
    client, bucket = s3
    folder, _, chrom_sizes_path, truth = tiny_compendium
    upload_compendium(client, bucket, folder)
    reference = local_store(folder, chrom_sizes_path)
    tracks = read_tracks_table(write_tracks(folder, "tracks_s3.tsv", f"s3://{bucket}"))
    assert tracks[0].path == f"s3://{bucket}/C1.M1.bigWig"
    store = ingest(tracks, read_chrom_sizes(chrom_sizes_path), 25, folder / "s3-in.zarr", chunk_bins=CHUNK_BINS)
    assert [e.path for e in store.experiments] == [f"s3://{bucket}/{n}.bigWig" for n in NAMES]
    assert_same_store(store, reference, truth)


def test_s3_missing_object_names_the_url_and_writes_nothing(tiny_compendium, s3):
    client, bucket = s3
    folder, _, chrom_sizes_path, _ = tiny_compendium
    upload_compendium(client, bucket, folder)
    table = write_tracks(folder, "tracks_missing.tsv", f"s3://{bucket}", ["C1.M1.bigWig", "C9.M1.bigWig"])
    missing = f"s3://{bucket}/C9.M1.bigWig"
    with pytest.raises(PredictdInputError) as caught:  # and the store, on s3 too, is never started
        ingest(read_tracks_table(table), read_chrom_sizes(chrom_sizes_path), 25, f"s3://{bucket}/run/store.zarr",
               chunk_bins=CHUNK_BINS)
    assert caught.value.source == missing and caught.value.field == "path"
    assert keys(client, bucket, "run/") == []


def test_store_on_s3_reads_back_like_a_local_store(tiny_compendium, s3):
    client, bucket = s3
    folder, tracks_path, chrom_sizes_path, truth = tiny_compendium
    reference = local_store(folder, chrom_sizes_path)
    url = f"s3://{bucket}/run/store.zarr"
    written = ingest(read_tracks_table(tracks_path), read_chrom_sizes(chrom_sizes_path), 25, url,
                     chunk_bins=CHUNK_BINS)
    assert written.path == url
    stored = keys(client, bucket, "run/store.zarr/")
    assert "run/store.zarr/zarr.json" in stored and "run/store.zarr/signal/zarr.json" in stored
    assert not list(folder.glob("*.partial*"))
    store = SignalStore.open(url)
    assert store.experiments == reference.experiments  # the same local track paths were ingested
    assert_same_store(store, reference, truth)
    np.testing.assert_array_equal(read_signal_rows(url, 5, 40), all_signal(reference)[5:40])
    np.testing.assert_array_equal(read_signal_rows(url + "/", 0, 61), all_signal(reference))
    np.testing.assert_array_equal(store.read_columns([3])[:, 0], all_signal(reference)[:, 3])


def test_config_store_on_s3_with_s3_tracks(tiny_compendium, s3):
    """The run config path: ``store: s3://...`` and an s3 tracks table, through ``run_ingest``/``open_store``."""
    client, bucket = s3
    folder, _, chrom_sizes_path, truth = tiny_compendium
    upload_compendium(client, bucket, folder)
    write_tracks(folder, "tracks_s3.tsv", f"s3://{bucket}")
    url = f"s3://{bucket}/runs/a/store.zarr"
    config = load_config(write_config(folder, tracks="tracks_s3.tsv", store=url, chunk_bins=CHUNK_BINS,
                                      holdout=["C2:M1"]))
    assert config.store_path == url  # a remote store is not resolved against the config's folder
    run_ingest(config)
    assert_same_store(open_store(config), local_store(folder, chrom_sizes_path), truth)


def test_half_written_store_on_s3_is_refused(tiny_compendium, s3):
    client, bucket = s3
    folder, tracks_path, chrom_sizes_path, _ = tiny_compendium
    tracks = read_tracks_table(tracks_path)
    bins = GenomeBins.build(read_chrom_sizes(chrom_sizes_path), 25, None)
    url = f"s3://{bucket}/run/half.zarr"

    def dies_on_third_chunk(lo: int, hi: int) -> np.ndarray:
        if lo >= 2 * CHUNK_BINS:
            raise RuntimeError("worker lost")
        return np.ones((hi - lo, len(tracks)), dtype=np.float32)

    with pytest.raises(RuntimeError, match="worker lost"):
        write_store(url, tracks, bins, dies_on_third_chunk, CHUNK_BINS)
    assert "run/half.zarr/signal/c/0/0" in keys(client, bucket, "run/half.zarr/")  # chunks were written ...
    with pytest.raises(PredictdInputError) as caught:  # ... but never the final `complete`
        SignalStore.open(url)
    assert caught.value.source == url and caught.value.field == "store"
    assert "not a complete" in caught.value.message

    with pytest.raises(PredictdInputError) as caught:  # nothing at all at the URL
        SignalStore.open(f"s3://{bucket}/run/nothing.zarr")
    assert caught.value.field == "store"
