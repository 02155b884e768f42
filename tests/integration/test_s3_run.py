"""A cross-validated run on S3, driven exactly as the cloud jobs drive it (see notes/cloud-contract.md).

Against a moto S3 server on 127.0.0.1: the real Roadmap pilot tracks, a chrom sizes file, a regions BED and
a promoters BED are uploaded under ``data/pilot/``, a config under ``configs/`` names them by relative
paths, and the run's outputs and store go to ``s3://BUCKET/runs/RUN_ID``. Then, through
``predictd_core.cli.main.main(argv)``:

* ``folds CONFIG_URL`` (the prepare job: ingests the store, deals folds.json);
* ``train CONFIG_URL --test-fold i --valid-fold j --model-dir .../attempts/test{i}-valid{j}/attempt-1`` for
  every model, each attempt then copied to ``models/`` server-side, as the job-state handler does;
* ``cv CONFIG_URL`` (the finish job: finds every model trained, ensembles, imputes, evaluates, reports).

Everything is read back from the bucket and compared with ``predictd cv`` of the same settings run on local
files (tests/integration/pilot_cv_reference.py: the reference test_azure_run.py compares with too). The numpy engine keeps it fast; the Spark path under spark-submit is tested in tests/containers/.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import yaml

from predictd_core.cli.main import main
from predictd_core.io import is_file, read_bytes, staged_folder, write_atomic
from predictd_core.train.estimator import Predictd
from tests.integration.conftest import keys
from tests.integration.pilot_cv_reference import (MODELS, N_TEST, N_VALID, PROMOTERS, REGIONS, SETTINGS, intervals,
                                                 tsv)

RUN_ID = "pilot-0123456789ab"


@pytest.fixture(scope="module")
def client(moto_endpoint):
    """boto3 S3 client; boto3, s3fs and zarr all reach the moto server through AWS_ENDPOINT_URL."""
    import boto3
    import s3fs

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_endpoint,
                            "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            patch.delenv(name, raising=False)
        s3fs.S3FileSystem.clear_instance_cache()  # a cached filesystem keeps the endpoint it was built with
        yield boto3.client("s3")
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def bucket(client, pilot_dir) -> str:
    """A bucket holding the pilot under data/pilot/ and the run config under configs/."""
    name = f"predictd-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    for path in sorted(pilot_dir.iterdir()):
        if path.suffix in (".bigWig", ".tsv", ".sizes"):
            client.upload_file(str(path), name, f"data/pilot/{path.name}")
    client.put_object(Bucket=name, Key="data/pilot/regions.bed", Body=REGIONS.encode())
    client.put_object(Bucket=name, Key="data/pilot/promoters.bed", Body=PROMOTERS.encode())
    output = f"s3://{name}/runs/{RUN_ID}"
    config = {"tracks": "../data/pilot/tracks.tsv", "chrom_sizes": "../data/pilot/chrom.sizes",
              "regions": "../data/pilot/regions.bed", "evaluation": {"promoters": "../data/pilot/promoters.bed"},
              **SETTINGS, "output": output, "store": f"{output}/store.zarr"}
    client.put_object(Bucket=name, Key="configs/pilot.yaml", Body=yaml.safe_dump(config).encode())
    return name


def _run(argv: list[str]) -> int:
    return main([str(arg) for arg in argv])


def _copy_folder(client, bucket: str, source: str, target: str) -> None:
    """The job-state handler's server-side copy of a succeeded attempt; model.json last, so a reader that
    finds model.json finds the whole model."""
    for name in ("factors.npz", "model.json"):
        client.copy_object(Bucket=bucket, Key=f"{target}/{name}",
                           CopySource={"Bucket": bucket, "Key": f"{source}/{name}"})


def _objects(client, bucket: str, prefix: str) -> dict[str, str]:
    """Key -> ETag of every object under ``prefix``."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture(scope="module")
def cloud_run(client, bucket):
    """The three job kinds in order; returns the run prefix and the models' ETags from before ``cv``."""
    config = f"s3://{bucket}/configs/pilot.yaml"
    run = f"runs/{RUN_ID}"
    assert _run(["folds", config]) == 0
    for i, j in MODELS:
        attempt = f"{run}/attempts/test{i}-valid{j}/attempt-1"
        assert _run(["train", config, "--test-fold", i, "--valid-fold", j, "--model-dir",
                     f"s3://{bucket}/{attempt}"]) == 0
        _copy_folder(client, bucket, attempt, f"{run}/models/test{i}-valid{j}")
    trained = _objects(client, bucket, f"{run}/models/")  # model.json holds sweep timings: a refit changes its ETag
    assert _run(["cv", config]) == 0
    return run, trained


def _get(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


# ------------------------------------------------------------------------------------------------- tests


def test_prepare_job_writes_the_store_and_the_folds_of_a_local_run(client, bucket, cloud_run, local_run):
    run, _ = cloud_run
    folds = json.loads(_get(client, bucket, f"{run}/folds.json"))
    assert folds == json.loads((local_run / "folds.json").read_text())
    assert (folds["n_test"], folds["n_valid"], len(folds["experiments"])) == (N_TEST, N_VALID, 25)
    store = json.loads(_get(client, bucket, f"{run}/store.zarr/zarr.json"))
    assert store["attributes"]["complete"] is True
    assert store["attributes"]["spans"] == [[0, 0, 1_500_000], [0, 7_000_000, 7_500_000]]
    assert {e["path"] for e in store["attributes"]["experiments"]} == {
        f"s3://{bucket}/data/pilot/{e.split(':')[0]}.{e.split(':')[1]}.bigWig" for e in folds["experiments"]}


def test_fold_jobs_write_their_attempt_and_cv_reuses_the_copied_models(client, bucket, cloud_run, local_run):
    run, trained = cloud_run
    attempts = _objects(client, bucket, f"{run}/attempts/")
    assert set(attempts) == {f"{run}/attempts/test{i}-valid{j}/attempt-1/{name}"
                             for i, j in MODELS for name in ("factors.npz", "model.json")}
    assert _objects(client, bucket, f"{run}/models/") == trained  # cv trained nothing again
    for i, j in MODELS:
        ours = Predictd.load(f"s3://{bucket}/{run}/models/test{i}-valid{j}")
        theirs = Predictd.load(local_run / "models" / f"test{i}-valid{j}")
        for name in ("C", "A", "b_c", "b_a"):
            np.testing.assert_allclose(getattr(ours.factors_, name), getattr(theirs.factors_, name), rtol=1e-6,
                                       atol=1e-8, err_msg=f"test{i}-valid{j}.{name}")
        for row, reference in zip(ours.history_, theirs.history_, strict=True):  # the same sweeps, timings aside
            assert row["valid_mse"] == pytest.approx(reference["valid_mse"], rel=1e-6)


def test_imputed_and_spread_tracks_on_s3_equal_the_local_run(client, bucket, cloud_run, local_run, tmp_path):
    run, _ = cloud_run
    for folder in ("imputed", "spread"):
        names = sorted(p.name for p in (local_run / folder).iterdir())
        assert len(names) == 25
        assert sorted(k.rsplit("/", 1)[1] for k in keys(client, bucket, f"{run}/{folder}/")) == names
        for name in names:
            download = tmp_path / f"{folder}-{name}"
            client.download_file(bucket, f"{run}/{folder}/{name}", str(download))
            ours, theirs = intervals(download), intervals(local_run / folder / name)
            assert ours.keys() == theirs.keys() == {"pilotA"}
            assert ours["pilotA"].shape == theirs["pilotA"].shape == (80_000, 3)
            np.testing.assert_allclose(ours["pilotA"], theirs["pilotA"], rtol=1e-6, atol=1e-7, err_msg=name)


def test_metrics_report_and_manifest_are_on_s3(client, bucket, cloud_run, local_run):
    run, _ = cloud_run
    ours, theirs = tsv(_get(client, bucket, f"{run}/metrics.tsv")), tsv((local_run / "metrics.tsv").read_bytes())
    assert len(ours) == 25
    assert [(r["cell_type"], r["assay"]) for r in ours] == [(r["cell_type"], r["assay"]) for r in theirs]
    for column in ("MSEglobal", "MSEprom", "baseline_MSEglobal", "GWcorr"):  # MSEprom: the promoters BED on S3
        np.testing.assert_allclose([float(r[column]) for r in ours], [float(r[column]) for r in theirs], rtol=1e-5)
    report = _get(client, bucket, f"{run}/report.html").decode()
    assert f"predictd: {RUN_ID}" in report and "MSEprom" in report

    manifest = json.loads(_get(client, bucket, f"{run}/manifest.json"))
    local_manifest = json.loads((local_run / "manifest.json").read_text())
    assert manifest["outputs"] == local_manifest["outputs"] and len(manifest["outputs"]) == 25 * 2 + 5
    assert manifest["store"] == f"s3://{bucket}/{run}/store.zarr"
    assert [m["name"] for m in manifest["models"]] == [f"test{i}-valid{j}" for i, j in MODELS]
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{run}/", MaxKeys=1000)["Contents"]
    modified = {o["Key"]: o["LastModified"] for o in listed}
    for relative in manifest["outputs"]:
        assert modified[f"{run}/{relative}"] <= modified[f"{run}/manifest.json"], relative  # the manifest came last


def test_the_run_prefix_holds_only_complete_outputs(client, bucket, cloud_run):
    """No temporary or partial names: every object is a store object or a named output."""
    run, _ = cloud_run
    manifest = json.loads(_get(client, bucket, f"{run}/manifest.json"))
    named = {f"{run}/{relative}" for relative in manifest["outputs"]} | {f"{run}/folds.json", f"{run}/manifest.json"}
    for key in _objects(client, bucket, f"{run}/"):
        assert (key in named or key.startswith((f"{run}/store.zarr/", f"{run}/attempts/", f"{run}/models/"))), key


def test_a_failing_fold_job_writes_nothing_and_removes_nothing(client, bucket, cloud_run, capsys):
    run, _ = cloud_run
    before = _objects(client, bucket, f"{run}/")
    capsys.readouterr()
    code = _run(["train", f"s3://{bucket}/configs/pilot.yaml", "--test-fold", 9, "--valid-fold", 0,
                 "--model-dir", f"s3://{bucket}/{run}/attempts/test9-valid0/attempt-1"])
    assert code == 2 and "outside 5 test x 2 validation folds" in capsys.readouterr().err
    assert _objects(client, bucket, f"{run}/") == before


def test_missing_tracks_table_on_s3_exits_2_naming_the_url_and_writes_nothing(client, bucket, capsys):
    output = f"s3://{bucket}/runs/bad-0123456789ab"
    config = {"tracks": "../data/missing/tracks.tsv", "chrom_sizes": "../data/pilot/chrom.sizes", **SETTINGS,
              "output": output, "store": f"{output}/store.zarr"}
    client.put_object(Bucket=bucket, Key="configs/bad.yaml", Body=yaml.safe_dump(config).encode())
    capsys.readouterr()
    for command in ("folds", "cv"):
        assert _run([command, f"s3://{bucket}/configs/bad.yaml"]) == 2
        error = capsys.readouterr().err
        assert f"s3://{bucket}/data/missing/tracks.tsv: tracks: tracks table not found" in error, error
    assert keys(client, bucket, "runs/bad-0123456789ab/") == []


def test_staged_folder_on_s3_publishes_whole_objects_only_when_the_block_succeeds(client, bucket):
    prefix = f"s3://{bucket}/scratch/staged"
    with pytest.raises(RuntimeError, match="disk full"):
        with staged_folder(prefix) as work:
            (work / "a.bigWig").write_bytes(b"complete")
            (work / "b.bigWig").write_bytes(b"half")
            raise RuntimeError("disk full")
    assert keys(client, bucket, "scratch/") == []  # nothing of a failed block is uploaded
    assert not work.exists()  # and the local staging folder is gone
    with staged_folder(prefix) as work:
        (work / "a.bigWig").write_bytes(b"one")
        (work / "b.bigWig").write_bytes(b"two")
    assert read_bytes(f"{prefix}/a.bigWig") == b"one" and read_bytes(f"{prefix}/b.bigWig") == b"two"
    write_atomic(f"{prefix}/a.bigWig", b"three")
    assert is_file(f"{prefix}/a.bigWig") and not is_file(f"{prefix}/c.bigWig")
    assert read_bytes(f"{prefix}/a.bigWig") == b"three"
    with pytest.raises(FileNotFoundError):
        read_bytes(f"{prefix}/c.bigWig")
