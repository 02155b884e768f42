"""A cross-validated run on Azure Blob storage (Azurite), driven exactly as the cloud jobs drive it.

The Azure twin of test_s3_run.py: against an Azurite on 127.0.0.1 (tests/azure_support.py), the real Roadmap
pilot tracks, a chrom sizes file, a regions BED and a promoters BED are uploaded to ``az://data/pilot/``, a
config ``az://configs/pilot.yaml`` names them by relative paths (``../data/pilot/tracks.tsv``: the account is
the root, the containers its folders), and the run's outputs and store go to ``az://runs/RUN_ID``. Then,
through ``predictd_core.cli.main.main(argv)``:

* ``folds CONFIG_URL`` (the prepare job);
* ``train CONFIG_URL --test-fold i --valid-fold j --model-dir az://runs/RUN_ID/attempts/test{i}-valid{j}/attempt-1``
  for every model, each attempt then copied to ``models/`` server-side by the Blob store adapter
  (``handlers.azure.store.BlobStore.copy``), as the job-state handler does;
* ``cv CONFIG_URL`` (the finish job).

Everything is read back from Azurite and compared with ``predictd cv`` of the same settings on local files: the
reference run test_s3_run.py compares with too (tests/integration/pilot_cv_reference.py), run once per session.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from azure.core.credentials import AzureNamedKeyCredential

from handlers.azure.store import BlobStore
from predictd_core.cli.main import main
from predictd_core.train.estimator import Predictd
from tests.azure_support import azurite_environment, create_containers
from tests.integration.pilot_cv_reference import (MODELS, N_TEST, N_VALID, PROMOTERS, REGIONS, SETTINGS, intervals,
                                                 tsv)

RUN_ID = "pilot-a2b3c4d5e6f7"
RUN = f"runs/{RUN_ID}"
CONFIG = "az://configs/pilot.yaml"


@pytest.fixture(scope="module")
def service(azurite):
    """The account's BlobServiceClient; adlfs (predictd_core.io, zarr) reaches Azurite through the
    environment for the whole module."""
    with azurite_environment(azurite):
        yield create_containers(azurite)


@pytest.fixture(scope="module")
def store(azurite, service) -> BlobStore:
    return BlobStore(azurite.account, azurite.blob_endpoint, AzureNamedKeyCredential(azurite.account, azurite.key))


@pytest.fixture(scope="module")
def uploaded(store, pilot_dir) -> None:
    """The pilot under data/pilot/ and the run config under configs/ (relative paths climb into ``data``)."""
    for path in sorted(pilot_dir.iterdir()):
        if path.suffix in (".bigWig", ".tsv", ".sizes"):
            store.put(f"data/pilot/{path.name}", path.read_bytes(), "application/octet-stream")
    store.put("data/pilot/regions.bed", REGIONS.encode(), "text/plain")
    store.put("data/pilot/promoters.bed", PROMOTERS.encode(), "text/plain")
    output = f"az://{RUN}"
    config = {"tracks": "../data/pilot/tracks.tsv", "chrom_sizes": "../data/pilot/chrom.sizes",
              "regions": "../data/pilot/regions.bed", "evaluation": {"promoters": "../data/pilot/promoters.bed"},
              **SETTINGS, "output": output, "store": f"{output}/store.zarr"}
    store.put("configs/pilot.yaml", yaml.safe_dump(config).encode(), "application/yaml")


def _run(argv: list) -> int:
    return main([str(arg) for arg in argv])


def _etags(service, prefix: str) -> dict[str, str]:
    """Key -> ETag of every blob under the contract key ``prefix`` (``runs/RUN/...``)."""
    container, _, name = prefix.partition("/")
    return {f"{container}/{blob.name}": blob.etag
            for blob in service.get_container_client(container).list_blobs(name_starts_with=name)}


def _get(store: BlobStore, key: str) -> bytes:
    found = store.read_current(key)
    assert found is not None, f"az://{key} is missing"
    return found[1]


@pytest.fixture(scope="module")
def cloud_run(service, store, uploaded):
    """The three job kinds in order; returns the models' ETags from before ``cv``."""
    assert _run(["folds", CONFIG]) == 0
    for i, j in MODELS:
        attempt = f"{RUN}/attempts/test{i}-valid{j}/attempt-1"
        assert _run(["train", CONFIG, "--test-fold", i, "--valid-fold", j, "--model-dir", f"az://{attempt}"]) == 0
        for name in ("factors.npz", "model.json"):  # model.json last: it marks a whole model
            store.copy(f"{attempt}/{name}", f"{RUN}/models/test{i}-valid{j}/{name}")
    trained = _etags(service, f"{RUN}/models/")
    assert _run(["cv", CONFIG]) == 0
    return trained


# ------------------------------------------------------------------------------------------------- tests


def test_prepare_job_reads_data_across_containers_and_writes_store_and_folds(store, cloud_run, local_run):
    folds = json.loads(_get(store, f"{RUN}/folds.json"))
    assert folds == json.loads((local_run / "folds.json").read_text())
    assert (folds["n_test"], folds["n_valid"], len(folds["experiments"])) == (N_TEST, N_VALID, 25)
    attributes = json.loads(_get(store, f"{RUN}/store.zarr/zarr.json"))["attributes"]
    assert attributes["complete"] is True
    assert attributes["spans"] == [[0, 0, 1_500_000], [0, 7_000_000, 7_500_000]]
    assert {e["path"] for e in attributes["experiments"]} == {  # ../data/... from az://configs reached az://data
        f"az://data/pilot/{e.split(':')[0]}.{e.split(':')[1]}.bigWig" for e in folds["experiments"]}
    assert store.keys(f"{RUN}/store.zarr/signal/")  # the chunks are blobs of the runs container


def test_fold_jobs_write_their_attempts_and_cv_reuses_the_copied_models(service, store, cloud_run, local_run):
    attempts = store.keys(f"{RUN}/attempts/")
    assert attempts == sorted(f"{RUN}/attempts/test{i}-valid{j}/attempt-1/{name}"
                              for i, j in MODELS for name in ("factors.npz", "model.json"))
    assert _etags(service, f"{RUN}/models/") == cloud_run  # cv trained nothing again
    for i, j in MODELS:
        ours = Predictd.load(f"az://{RUN}/models/test{i}-valid{j}")
        theirs = Predictd.load(local_run / "models" / f"test{i}-valid{j}")
        for name in ("C", "A", "b_c", "b_a"):
            np.testing.assert_allclose(getattr(ours.factors_, name), getattr(theirs.factors_, name), rtol=1e-6,
                                       atol=1e-8, err_msg=f"test{i}-valid{j}.{name}")


def test_imputed_and_spread_tracks_in_blob_storage_equal_the_local_run(store, cloud_run, local_run, tmp_path):
    for folder in ("imputed", "spread"):
        names = sorted(p.name for p in (local_run / folder).iterdir())
        assert len(names) == 25
        assert [k.rsplit("/", 1)[1] for k in store.keys(f"{RUN}/{folder}/")] == names
        for name in names:
            download = tmp_path / f"{folder}-{name}"
            download.write_bytes(_get(store, f"{RUN}/{folder}/{name}"))
            ours, theirs = intervals(download), intervals(local_run / folder / name)
            assert ours.keys() == theirs.keys() == {"pilotA"}
            assert ours["pilotA"].shape == theirs["pilotA"].shape == (80_000, 3)
            np.testing.assert_allclose(ours["pilotA"], theirs["pilotA"], rtol=1e-6, atol=1e-7, err_msg=name)


def test_metrics_report_and_manifest_are_in_blob_storage(service, store, cloud_run, local_run):
    ours, theirs = tsv(_get(store, f"{RUN}/metrics.tsv")), tsv((local_run / "metrics.tsv").read_bytes())
    assert len(ours) == 25
    assert [(r["cell_type"], r["assay"]) for r in ours] == [(r["cell_type"], r["assay"]) for r in theirs]
    for column in ("MSEglobal", "MSEprom", "baseline_MSEglobal", "GWcorr"):  # MSEprom: the promoters BED blob
        np.testing.assert_allclose([float(r[column]) for r in ours], [float(r[column]) for r in theirs], rtol=1e-5)
    report = _get(store, f"{RUN}/report.html").decode()
    assert f"predictd: {RUN_ID}" in report and "MSEprom" in report

    manifest = json.loads(_get(store, f"{RUN}/manifest.json"))
    assert manifest["outputs"] == json.loads((local_run / "manifest.json").read_text())["outputs"]
    assert len(manifest["outputs"]) == 25 * 2 + 5  # imputed, spread, metrics (2), report, summary, refinement
    assert manifest["store"] == f"az://{RUN}/store.zarr"
    assert [m["name"] for m in manifest["models"]] == [f"test{i}-valid{j}" for i, j in MODELS]
    container = service.get_container_client("runs")
    modified = {f"runs/{b.name}": b.last_modified for b in container.list_blobs(name_starts_with=f"{RUN_ID}/")}
    for relative in manifest["outputs"]:
        assert modified[f"{RUN}/{relative}"] <= modified[f"{RUN}/manifest.json"], relative  # the manifest came last


def test_the_run_prefix_holds_only_complete_outputs(store, cloud_run):
    """No temporary or partial names: every blob is a store object or a named output."""
    manifest = json.loads(_get(store, f"{RUN}/manifest.json"))
    named = {f"{RUN}/{relative}" for relative in manifest["outputs"]} | {f"{RUN}/folds.json", f"{RUN}/manifest.json"}
    for key in store.keys(f"{RUN}/"):
        assert key in named or key.startswith((f"{RUN}/store.zarr/", f"{RUN}/attempts/", f"{RUN}/models/")), key


def test_a_failing_fold_job_writes_nothing_and_removes_nothing(service, cloud_run, capsys):
    before = _etags(service, f"{RUN}/")
    capsys.readouterr()
    code = _run(["train", CONFIG, "--test-fold", 9, "--valid-fold", 0,
                 "--model-dir", f"az://{RUN}/attempts/test9-valid0/attempt-1"])
    assert code == 2 and "outside 5 test x 2 validation folds" in capsys.readouterr().err
    assert _etags(service, f"{RUN}/") == before


def test_missing_tracks_table_in_blob_storage_exits_2_naming_the_url_and_writes_nothing(store, uploaded, capsys):
    output = "az://runs/bad-a2b3c4d5e6f7"
    config = {"tracks": "../data/missing/tracks.tsv", "chrom_sizes": "../data/pilot/chrom.sizes", **SETTINGS,
              "output": output, "store": f"{output}/store.zarr"}
    store.put("configs/bad.yaml", yaml.safe_dump(config).encode(), "application/yaml")
    capsys.readouterr()
    for command in ("folds", "cv"):
        assert _run([command, "az://configs/bad.yaml"]) == 2
        error = capsys.readouterr().err
        assert "az://data/missing/tracks.tsv: tracks: tracks table not found" in error, error
    assert store.keys("runs/bad-a2b3c4d5e6f7/") == []
