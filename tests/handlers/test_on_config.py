"""on_config: a config version dropped under configs/ becomes one run, its config.yaml and one prepare job."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from handlers import on_config
from predictd_core.cloud.contract import Job, RunLayout, client_token
from predictd_core.cloud.runs import cloud_run_config, dump_config
from predictd_core.config import parse_config
from tests.handlers.conftest import ledger_of, BUCKET, PILOT_CONFIG, ROLE_ARN, TABLE, drop_config, upload_compendium


def ledger(cloud) -> Ledger:
    return ledger_of(cloud)


def expected_run_id(stem: str, key: str, version: str) -> str:
    return f"{stem}-{hashlib.sha256(f'{BUCKET}/{key}/{version}'.encode()).hexdigest()[:12]}"


def test_a_config_starts_one_run_with_its_config_and_prepare_job(cloud):
    upload_compendium(cloud, "data/pilot")
    event = drop_config(cloud)
    record = event["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    version = record["s3"]["object"]["versionId"]

    result = on_config.handler(event, None)

    run_id = expected_run_id("pilot", "configs/pilot.yaml", version)
    assert result == {"runs": [{"run_id": run_id, "state": "PREPARING", "created": True}]}
    summary = ledger(cloud).summary(run_id)
    assert summary["config"] == {"url": f"s3://{BUCKET}/configs/pilot.yaml", "version_id": version}
    assert summary["cv"] == {"n_test": 2, "n_valid": 2}
    assert [(job["job"], job["state"], job["attempts"]) for job in summary["jobs"]] == [
        ("prepare", "SUBMITTED", 1), ("test0-valid0", "PLANNED", 0), ("test0-valid1", "PLANNED", 0),
        ("test1-valid0", "PLANNED", 0), ("test1-valid1", "PLANNED", 0), ("finish", "PLANNED", 0)]

    config_url = f"s3://{BUCKET}/runs/{run_id}/config.yaml"
    [job_run] = cloud.job_runs()
    assert job_run["args"] == ["folds", config_url]
    assert job_run["entry_point"] == "local:///opt/predictd/entrypoint.py"
    assert job_run["role"] == ROLE_ARN  # the driver learns where a bad input's error goes (no other settings)
    assert job_run["spark_parameters"] == ("--conf spark.emr-serverless.driverEnv.PREDICTD_ERROR_URL="
                                           f"s3://{BUCKET}/runs/{run_id}/attempts/prepare/attempt-1/error.json")
    assert job_run["tags"]["predictd:run"] == run_id and job_run["tags"]["predictd:stage"] == "prepare"
    assert job_run["client_token"] == client_token(run_id, Job("prepare"), 1)
    assert summary["jobs"][0]["job_run_id"] == job_run["id"]

    written = yaml.safe_load(cloud.text(f"runs/{run_id}/config.yaml"))
    data = f"s3://{BUCKET}/data/pilot"
    assert (written["tracks"], written["chrom_sizes"]) == (f"{data}/tracks.tsv", f"{data}/chrom.sizes")
    assert written["evaluation"]["promoters"] == f"{data}/promoters.bed"
    assert written["evaluation"]["browser_regions"] == ["chr1:1000-2000"]
    assert written["output"] == f"s3://{BUCKET}/runs/{run_id}"
    assert written["store"] == f"s3://{BUCKET}/runs/{run_id}/store.zarr"
    assert written["engine"] == {"kind": "spark", "master": "spark-submit",
                                 "spark_conf": {"spark.executor.memory": "2g"}, "processes": None}
    assert written["holdout"] == ["E004:H3K27me3"] and written["model"]["rank"] == 4
    assert written["cv"]["n_test"] == 2 and written["cv"]["seed"] == 3


def test_the_run_config_reads_back_identically(cloud):
    """parse_config(dump_config(config)) is the config: the jobs see exactly what the handler validated."""
    upload_compendium(cloud, "data/pilot")
    run_id = on_config.handler(drop_config(cloud), None)["runs"][0]["run_id"]
    url = f"s3://{BUCKET}/runs/{run_id}/config.yaml"
    text = cloud.text(f"runs/{run_id}/config.yaml")

    read_back = parse_config(text, url)

    original = cloud_run_config(parse_config(PILOT_CONFIG, f"s3://{BUCKET}/configs/pilot.yaml"),
                                RunLayout(f"s3://{BUCKET}/", run_id))
    assert read_back.model_dump() == original.model_dump()
    assert read_back.digest() == original.digest()
    assert read_back.training_digest() == original.training_digest()
    assert dump_config(read_back) == text


def test_duplicate_events_start_one_run_and_one_job(cloud):
    upload_compendium(cloud, "data/pilot")
    event = drop_config(cloud)

    first = on_config.handler(event, None)
    again = on_config.handler(event, None)
    both = on_config.handler({"Records": event["Records"] * 2}, None)

    run_id = first["runs"][0]["run_id"]
    assert first["runs"][0]["created"] and not again["runs"][0]["created"]
    assert [run["run_id"] for run in both["runs"]] == [run_id, run_id]
    assert len(cloud.job_runs()) == 1
    assert [run["run_id"] for run in ledger(cloud).runs()] == [run_id]


def test_a_new_version_of_a_config_is_a_new_run(cloud):
    upload_compendium(cloud, "data/pilot")
    first = on_config.handler(drop_config(cloud), None)["runs"][0]["run_id"]
    second = on_config.handler(drop_config(cloud, text=PILOT_CONFIG + "bin_size: 50\n"), None)["runs"][0]["run_id"]

    assert first != second and first.startswith("pilot-") and second.startswith("pilot-")
    assert [run["args"][1] for run in cloud.job_runs()] == [f"s3://{BUCKET}/runs/{first}/config.yaml",
                                                            f"s3://{BUCKET}/runs/{second}/config.yaml"]


@pytest.mark.parametrize("text, field, message", [
    (PILOT_CONFIG.replace("n_test: 2", "n_test: 0"), "cv.n_test", "greater than or equal to 1"),
    (PILOT_CONFIG + "colour: blue\n", "colour", "Extra inputs are not permitted"),
    ("tracks: [unclosed\n", "yaml", "not valid YAML"),
    (PILOT_CONFIG.replace("../data/pilot/tracks.tsv", "/home/lab/tracks.tsv"), "tracks",
     "a cloud run reads its inputs from URLs"),
], ids=["out-of-range", "unknown-field", "bad-yaml", "local-path"])
def test_a_bad_config_fails_its_run_writes_the_error_and_starts_nothing(cloud, text, field, message):
    event = drop_config(cloud, "bad", text)

    result = on_config.handler(event, None)
    on_config.handler(event, None)  # re-delivered: no second notification

    [run] = result["runs"]
    assert run["state"] == "FAILED"
    error = json.loads(cloud.text("configs/bad.error.json"))
    assert error["file"] == f"s3://{BUCKET}/configs/bad.yaml" and error["field"] == field
    assert message in error["message"]
    assert error["version_id"] == event["Records"][0]["s3"]["object"]["versionId"]
    recorded = ledger(cloud).summary(run["run_id"])
    assert recorded["state"] == "FAILED" and field in recorded["message"] and message in recorded["message"]
    assert recorded["jobs"] == [] and cloud.job_runs() == []
    assert cloud.keys("runs/") == []
    [notice] = cloud.notifications()
    assert notice["state"] == "FAILED" and notice["run_id"] == run["run_id"] and message in notice["message"]
    assert cloud.s3_events() == []  # the error file does not trigger the config handler


def test_a_fixed_config_replaces_the_error_and_runs(cloud):
    upload_compendium(cloud, "data/pilot")
    on_config.handler(drop_config(cloud, "pilot", PILOT_CONFIG.replace("rank: 4", "rank: four")), None)
    assert json.loads(cloud.text("configs/pilot.error.json"))["field"] == "model.rank"

    [run] = on_config.handler(drop_config(cloud), None)["runs"]

    assert run["state"] == "PREPARING"
    assert "configs/pilot.error.json" not in cloud.keys("configs/")
    assert len(cloud.job_runs()) == 1


def test_yml_configs_start_runs_and_other_keys_are_ignored(cloud):
    upload_compendium(cloud, "data/pilot")
    [event] = cloud.put("configs/lab/pilot.yml", PILOT_CONFIG)
    [run] = on_config.handler(event, None)["runs"]
    assert run["run_id"].startswith("pilot-") and len(cloud.job_runs()) == 1

    record = event["Records"][0]
    other = {"Records": [{**record, "s3": {**record["s3"], "object": {**record["s3"]["object"], "key": "data/x.yaml"}}}]}
    assert on_config.handler(other, None) == {"runs": []}
