"""``predictd_core.io`` and the zarr signal store on ``az://`` / ``abfs://`` URLs, against Azurite.

The account is the root of an ``az://`` URL and its containers are top-level folders, so a config in
``configs`` reaches tracks in ``data`` by ``../data/...``; writes are whole blobs; a staged folder publishes
nothing when its block fails; the signal store's zarr chunks live in Blob storage.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from predictd_core.config import load_config
from predictd_core.errors import PredictdInputError
from predictd_core.io import (is_file, join_location, parent_location, read_bytes, read_text, relative_location,
                              resolve_location, staged_folder, storage_options, write_atomic)
from predictd_core.store.signal_store import SignalStore, ingest
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table
from tests.azure_support import create_containers

ABFS_HOST = "devstoreaccount1.dfs.core.windows.net"


@pytest.fixture
def service(azurite_env):
    return create_containers(azurite_env)


@pytest.fixture
def run_url() -> str:
    """A run folder of this test alone (the session's tests share one account)."""
    return f"az://runs/io-{uuid.uuid4().hex[:10]}"


def _blobs(service, url: str) -> list[str]:
    """The blob names of the runs container under the folder ``url`` (``az://runs/X``)."""
    return sorted(b.name for b in service.get_container_client("runs").list_blobs(
        name_starts_with=url.removeprefix("az://runs/") + "/"))


# --------------------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize("location, folder", [
    ("az://configs/pilot.yaml", "az://configs"),
    ("az://data/pilot/tracks.tsv", "az://data/pilot"),
    ("az://configs", "az://"),
    ("abfs://configs/sub/pilot.yaml", "abfs://configs/sub"),
    (f"abfs://configs@{ABFS_HOST}/pilot.yaml", f"abfs://configs@{ABFS_HOST}/"),
    ("s3://bucket/configs/pilot.yaml", "s3://bucket/configs"),
])
def test_parent_location_of_azure_urls_is_rooted_at_the_account(location, folder):
    assert parent_location(location) == folder


@pytest.mark.parametrize("base, value, resolved", [
    ("az://configs", "../data/pilot/tracks.tsv", "az://data/pilot/tracks.tsv"),  # the contract's layout
    ("az://configs", "pilot.bed", "az://configs/pilot.bed"),
    ("az://data/pilot", "E003.H3K4me3.bigWig", "az://data/pilot/E003.H3K4me3.bigWig"),
    ("az://data/pilot", "../../runs/r1/x", "az://runs/r1/x"),
    ("az://configs", "../../../../data/t.tsv", "az://data/t.tsv"),  # never above the account
    ("abfs://configs", "../data/t.tsv", "abfs://data/t.tsv"),
    (f"abfs://configs@{ABFS_HOST}/", "../data/t.tsv", f"abfs://configs@{ABFS_HOST}/data/t.tsv"),  # the container
    ("az://configs", "s3://other/t.tsv", "s3://other/t.tsv"),
    ("az://configs", "az://data/t.tsv", "az://data/t.tsv"),
    ("s3://bucket/configs", "../data/t.tsv", "s3://bucket/data/t.tsv"),
])
def test_relative_paths_climb_from_one_container_into_another(base, value, resolved):
    assert resolve_location(base, value) == resolved


def test_joins_and_relative_locations_keep_the_container():
    assert join_location("az://runs/r1", "imputed", "a.bigWig") == "az://runs/r1/imputed/a.bigWig"
    assert relative_location("az://runs/r1/imputed/a.bigWig", "az://runs/r1") == "imputed/a.bigWig"
    assert join_location("az://", "runs", "r1/") == "az://runs/r1"  # the account root: containers below it
    assert relative_location("az://runs/r1/x", "az://") == "runs/r1/x"
    assert join_location("s3://bucket/", "runs") == "s3://bucket/runs"
    assert relative_location("s3://bucket/runs/x", "s3://bucket/") == "runs/x"
    with pytest.raises(ValueError, match="az://runs/r10/x is not inside az://runs/r1"):
        relative_location("az://runs/r10/x", "az://runs/r1")


def test_storage_options_come_from_the_environment():
    assert storage_options("s3://bucket/key") is None and storage_options("/tmp/x") is None
    assert storage_options("az://data/x", {"AZURE_STORAGE_CONNECTION_STRING": "C", "AZURE_STORAGE_ACCOUNT_NAME": "a"}
                           ) == {"use_listings_cache": False, "connection_string": "C"}
    managed = storage_options("az://data/x", {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_CLIENT_ID": "id"})
    assert managed == {"use_listings_cache": False, "anon": False, "account_name": "acct"}  # DefaultAzureCredential
    assert storage_options(f"abfs://data@{ABFS_HOST}/x", {}) == {"use_listings_cache": False, "anon": False}
    with pytest.raises(PredictdInputError, match="az://data/x: AZURE_STORAGE_ACCOUNT_NAME: no storage account"):
        storage_options("az://data/x", {})


def test_without_a_connection_string_the_account_signs_in_with_default_azure_credential(monkeypatch):
    """What a Batch node does: the account from the environment, the managed identity (AZURE_CLIENT_ID)
    through azure-identity; no key. Built offline (no request is made until the first read)."""
    from tests.azure_support import clear_adlfs_cache
    from predictd_core.io import filesystem

    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
                 "AZURE_STORAGE_CLIENT_ID", "AZURE_STORAGE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "predictdstore")
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
    monkeypatch.setenv("AZURE_STORAGE_ANON", "true")  # ignored: a deployment never reads anonymously
    clear_adlfs_cache()
    try:
        fs, path = filesystem("az://data/pilot/tracks.tsv")
        assert path == "data/pilot/tracks.tsv" and fs.anon is False
        assert fs.account_url == "https://predictdstore.blob.core.windows.net"
        assert type(fs.credential).__name__ == "DefaultAzureCredential" and fs.account_key is None
    finally:
        clear_adlfs_cache()
    with pytest.raises(PredictdInputError, match="AZURE_STORAGE_CLIENT_ID: set without AZURE_STORAGE_CLIENT_SECRET"):
        storage_options("az://data/x", {"AZURE_STORAGE_ACCOUNT_NAME": "a", "AZURE_STORAGE_CLIENT_ID": "id"})


def test_an_azure_url_without_an_account_is_an_error_naming_it(monkeypatch):
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(PredictdInputError, match="az://configs/x.yaml: config: cannot read: .*AZURE_STORAGE_ACCOUNT"):
        read_text("az://configs/x.yaml", "config", "config file not found")


# ------------------------------------------------------------------------------------------- Azurite


def test_whole_blobs_are_written_read_and_found(service, run_url):
    url = f"{run_url}/metrics.tsv"
    assert not is_file(url)
    write_atomic(url, b"a\tb\n")
    assert is_file(url) and read_bytes(url) == b"a\tb\n"
    write_atomic(url, b"c\n")
    assert read_bytes(url) == b"c\n"
    assert _blobs(service, run_url) == [f"{run_url.removeprefix('az://runs/')}/metrics.tsv"]  # no temporary names
    assert not is_file(run_url)  # a folder is not a file
    with pytest.raises(FileNotFoundError):
        read_bytes(f"{run_url}/missing.tsv")
    with pytest.raises(PredictdInputError, match=f"{run_url}/missing.tsv: tracks: tracks table not found"):
        read_text(f"{run_url}/missing.tsv", "tracks", "tracks table not found")


def test_the_same_blob_under_each_url_form(service, run_url):
    write_atomic(f"{run_url}/x.txt", b"one blob")
    path = run_url.removeprefix("az://")
    assert read_bytes(f"abfs://{path}/x.txt") == b"one blob"
    assert read_bytes(f"abfs://runs@{ABFS_HOST}/{path.removeprefix('runs/')}/x.txt") == b"one blob"


def test_a_blob_written_by_another_client_is_found_at_once(service, run_url):
    """Listings are not cached: a model copied by the handlers (another client) is seen by the next is_file."""
    assert not is_file(f"{run_url}/models/m/model.json")
    assert not is_file(f"{run_url}/models/m/factors.npz")
    name = f"{run_url.removeprefix('az://runs/')}/models/m/model.json"
    service.get_blob_client("runs", name).upload_blob(b"{}")
    assert is_file(f"{run_url}/models/m/model.json")


def test_a_staged_folder_publishes_whole_blobs_only_when_the_block_succeeds(service, run_url):
    target = f"{run_url}/imputed"
    with pytest.raises(RuntimeError, match="disk full"):
        with staged_folder(target) as work:
            (work / "a.bigWig").write_bytes(b"complete")
            (work / "b.bigWig").write_bytes(b"half")
            raise RuntimeError("disk full")
    assert _blobs(service, run_url) == []  # nothing of a failed block is uploaded
    assert not work.exists()  # and the local staging folder is gone
    with staged_folder(target) as work:
        (work / "a.bigWig").write_bytes(b"one")
        (work / "b.bigWig").write_bytes(b"two")
    assert read_bytes(f"{target}/a.bigWig") == b"one" and read_bytes(f"{target}/b.bigWig") == b"two"
    assert not work.exists()


def test_a_config_in_configs_reads_tracks_in_data(service, tiny_compendium):
    """The contract's layout end to end for the readers: config -> tracks table -> bigWig URLs, chrom sizes."""
    folder, tracks_tsv, sizes, _ = tiny_compendium
    data = f"az://data/io-{uuid.uuid4().hex[:10]}"
    for path in sorted(folder.iterdir()):
        write_atomic(f"{data}/{path.name}", path.read_bytes())
    name = data.removeprefix("az://data/")
    config_url = f"az://configs/{name}.yaml"
    config = {"tracks": f"../data/{name}/tracks.tsv", "chrom_sizes": f"../data/{name}/chrom.sizes", "bin_size": 25,
              "output": f"../runs/{name}", "engine": {"kind": "numpy"}}
    write_atomic(config_url, yaml.safe_dump(config).encode())
    config = load_config(config_url)
    assert (config.tracks, config.chrom_sizes) == (f"{data}/tracks.tsv", f"{data}/chrom.sizes")
    assert config.output == f"az://runs/{name}"
    tracks = read_tracks_table(config.tracks)
    assert [t.path for t in tracks][:2] == [f"{data}/C1.M1.bigWig", f"{data}/C1.M2.bigWig"]
    assert read_chrom_sizes(config.chrom_sizes) == {"chrA": 1000, "chrB": 510}


@pytest.mark.parametrize("processes", [1, 2])
def test_the_signal_store_lives_in_blob_storage(service, run_url, tiny_compendium, processes):
    """zarr 3 through adlfs: ingest to az://, open, read chunks; equal to a local store (and in worker
    processes, which open the store themselves)."""
    folder, tracks_tsv, sizes, _ = tiny_compendium
    tracks, chrom_sizes = read_tracks_table(tracks_tsv), read_chrom_sizes(sizes)
    remote = ingest(tracks, chrom_sizes, 25, f"{run_url}/store.zarr", chunk_bins=16, processes=processes)
    local = ingest(tracks, chrom_sizes, 25, folder / "store.zarr", chunk_bins=16)
    opened = SignalStore.open(f"{run_url}/store.zarr")
    assert opened.n_chunks == local.n_chunks == 4 and opened.experiments == local.experiments
    for chunk in range(local.n_chunks):
        np.testing.assert_array_equal(opened.read_chunk(chunk), local.read_chunk(chunk))
    np.testing.assert_array_equal(remote.read_columns([0, 5]), local.read_columns([0, 5]))
    assert f"{run_url.removeprefix('az://runs/')}/store.zarr/zarr.json" in _blobs(service, run_url)
    assert not [name for name in _blobs(service, run_url) if ".partial" in name or ".tmp" in name]


def test_an_incomplete_store_in_blob_storage_is_an_error_naming_it(service, run_url):
    write_atomic(f"{run_url}/store.zarr/zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(PredictdInputError, match=f"{run_url}/store.zarr: store: not a complete predictd signal store"):
        SignalStore.open(f"{run_url}/store.zarr")
    with pytest.raises(PredictdInputError, match=f"{run_url}/nothing.zarr: store: not a predictd signal store"):
        SignalStore.open(f"{run_url}/nothing.zarr")


def test_local_paths_are_untouched(tmp_path: Path):
    assert resolve_location(str(tmp_path), "a/../b.tsv") == str(tmp_path / "b.tsv")
    write_atomic(tmp_path / "x" / "y.txt", b"local")
    assert read_bytes(tmp_path / "x" / "y.txt") == b"local" and is_file(tmp_path / "x" / "y.txt")
