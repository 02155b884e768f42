"""The run logic's scenarios, one table for both clouds: each test runs against AWS (S3 events, EventBridge
job events, moto) and Azure (Event Grid events, Batch task states read by the timer function, Azurite).

The engine is played: jobs are not executed here (tests/handlers/test_end_to_end.py and
tests/cloud/test_azure_end_to_end.py run real ones); a successful job writes the files the run logic
checks, then its end is reported as the cloud reports it.
"""

from __future__ import annotations

import json

import pytest

from predictd_core.cloud.contract import SCRATCH_TAG
from tests.cloud.deployments import write_outputs

CONFIG = """\
# the pilot tracks, cross-validated 2 x 2 (paths relative to this file)
tracks: ../data/pilot/tracks.tsv
chrom_sizes: ../data/pilot/chrom.sizes
model: {rank: 4, solver: als}
cv: {n_test: 2, n_valid: 2, seed: 3}
"""
ROWS = [("E003", "H3K4me3"), ("E003", "H3K27me3"), ("E004", "H3K4me3"), ("E004", "H3K27me3")]
FOLDS = ["test0-valid0", "test0-valid1", "test1-valid0", "test1-valid1"]


def upload_compendium(deployment) -> None:
    """The tracks table, placeholder bigWigs and chrom sizes under data/pilot/; their events are dropped
    (no config uses them yet)."""
    lines = ["cell_type\tassay\tpath", *(f"{c}\t{a}\t{c}.{a}.bigWig" for c, a in ROWS)]
    for cell, assay in ROWS:
        deployment.put(f"data/pilot/{cell}.{assay}.bigWig", f"signal of {cell} {assay}")
    deployment.put("data/pilot/tracks.tsv", "\n".join(lines) + "\n")
    deployment.put("data/pilot/chrom.sizes", "chr1\t5000\n")


def drop_config(deployment, text: str = CONFIG, name: str = "pilot") -> str:
    """Upload configs/NAME.yaml, deliver its event; returns the run id."""
    events = deployment.put(f"configs/{name}.yaml", text)
    assert len(events) == 1
    deployment.deliver(events)
    return deployment.ledger.runs()[-1]["run_id"]


def job(deployment, command: str, fold: str | None = None):
    """The latest started job running ``predictd COMMAND`` (of fold ``test{i}-valid{j}``)."""
    found = [job for job in deployment.jobs() if job.args[0] == command and (
        fold is None or f"attempts/{fold}/" in " ".join(job.args))]
    assert found, f"no {command} job {fold or ''} started"
    return found[-1]


def succeed(deployment, started) -> None:
    write_outputs(deployment.store, started)
    deployment.report(started, "SUCCESS")


def train(deployment) -> str:
    """A run of CONFIG whose prepare job succeeded: its fold jobs started. Returns the run id."""
    upload_compendium(deployment)
    run_id = drop_config(deployment)
    succeed(deployment, job(deployment, "folds"))
    return run_id


# ------------------------------------------------------------------------------------------- scenarios

def test_a_dropped_config_runs_prepare_folds_and_finish_to_success(deployment):
    run_id = train(deployment)
    assert [j.args[0] for j in deployment.jobs()] == ["folds", "train", "train", "train", "train"]
    assert deployment.ledger.run(run_id)["state"] == "TRAINING"
    for fold in FOLDS:
        succeed(deployment, job(deployment, "train", fold))
    finish = job(deployment, "cv")
    assert deployment.ledger.run(run_id)["state"] == "FINISHING"
    succeed(deployment, finish)

    run = deployment.ledger.run(run_id)
    assert run["state"] == "SUCCEEDED"
    root = deployment.store.root
    assert run["outputs"] == [f"{root}runs/{run_id}/{name}" for name in ("metrics.tsv", "report.html",
                                                                        "manifest.json")]
    summary = json.loads(deployment.store.read_current(f"runs/{run_id}/run.json")[1])
    assert summary["state"] == "SUCCEEDED" and [j["state"] for j in summary["jobs"]] == ["SUCCESS"] * 6
    for fold in FOLDS:  # promoted to models/, the attempt tagged as scratch, the copy not
        assert deployment.store.keys(f"runs/{run_id}/models/{fold}/") == [
            f"runs/{run_id}/models/{fold}/factors.npz", f"runs/{run_id}/models/{fold}/model.json"]
        assert dict([SCRATCH_TAG]).items() <= deployment.tags(
            f"runs/{run_id}/attempts/{fold}/attempt-1/model.json").items()
        assert SCRATCH_TAG[0] not in deployment.tags(f"runs/{run_id}/models/{fold}/model.json")
    [notice] = deployment.notifications()
    assert notice["run_id"] == run_id and notice["state"] == "SUCCEEDED"
    assert notice["status"].startswith(f"predictd status {run_id} --")
    assert len(deployment.jobs()) == 6  # nothing started twice
    assert deployment.engine_released(run_id)


def test_a_repeated_config_event_starts_one_run_and_one_prepare_job(deployment):
    upload_compendium(deployment)
    events = deployment.put("configs/pilot.yaml", CONFIG)
    for _ in range(10):
        deployment.deliver(events)
    assert len(deployment.ledger.runs()) == 1
    assert [j.args[0] for j in deployment.jobs()] == ["folds"]


def test_repeated_job_reports_start_nothing_twice(deployment):
    run_id = train(deployment)
    prepare = job(deployment, "folds")
    for _ in range(5):
        deployment.report(prepare, "SUCCESS")
    fold = job(deployment, "train", "test0-valid0")
    write_outputs(deployment.store, fold)
    for _ in range(5):
        deployment.report(fold, "SUCCESS")
    assert len(deployment.jobs()) == 5
    assert deployment.ledger.run(run_id)["state"] == "TRAINING"


def test_a_failing_fold_is_retried_into_its_own_folder_and_the_run_goes_on(deployment):
    run_id = train(deployment)
    first = job(deployment, "train", "test0-valid1")
    deployment.report(first, "FAILED", "the node was lost")
    second = job(deployment, "train", "test0-valid1")
    assert second.id != first.id
    assert second.args[second.args.index("--model-dir") + 1].endswith(f"runs/{run_id}/attempts/test0-valid1/attempt-2")
    for fold in FOLDS:
        succeed(deployment, job(deployment, "train", fold))
    succeed(deployment, job(deployment, "cv"))
    assert deployment.ledger.run(run_id)["state"] == "SUCCEEDED"
    assert [j["attempts"] for j in deployment.ledger.summary(run_id)["jobs"]] == [1, 1, 2, 1, 1, 1]


def test_a_fold_failing_past_its_limit_fails_the_run_and_starts_no_finish(deployment):
    run_id = train(deployment)
    for attempt in range(3):
        deployment.report(job(deployment, "train", "test1-valid0"), "FAILED", f"out of memory {attempt}")
    run = deployment.ledger.run(run_id)
    assert run["state"] == "FAILED" and run["message"].startswith("test1-valid0 failed 3 times; last: ")
    assert deployment.engine_released(run_id)
    for fold in FOLDS:  # the other folds end after the run failed: nothing more starts
        if fold != "test1-valid0":
            succeed(deployment, job(deployment, "train", fold))
    assert not [j for j in deployment.jobs() if j.args[0] == "cv"]
    [notice] = deployment.notifications()
    assert notice["state"] == "FAILED" and "test1-valid0 failed 3 times" in notice["message"]


def test_a_job_that_succeeds_without_its_model_counts_as_failed(deployment):
    run_id = train(deployment)
    deployment.report(job(deployment, "train", "test0-valid0"), "SUCCESS")  # nothing written
    [item] = [j for j in deployment.ledger.summary(run_id)["jobs"] if j["job"] == "test0-valid0"]
    assert item["attempts"] == 2 and item["history"][0]["state"] == "FAILED"
    assert "succeeded without writing" in item["history"][0]["state_details"]


def test_a_bad_config_writes_its_error_file_and_starts_nothing(deployment):
    upload_compendium(deployment)
    run_id = drop_config(deployment, CONFIG.replace("cv: {n_test: 2", "cv: {n_test: zero"), name="broken")
    error = json.loads(deployment.store.read_current("configs/broken.error.json")[1])
    assert error["field"] == "cv.n_test" and error["file"] == f"{deployment.store.root}configs/broken.yaml"
    assert deployment.ledger.run(run_id)["state"] == "FAILED" and deployment.jobs() == []
    [notice] = deployment.notifications()
    assert notice["state"] == "FAILED" and "cv.n_test" in notice["message"]
    drop_config(deployment, CONFIG, name="broken")  # a valid version removes the error file
    assert deployment.store.keys("configs/broken.error.json") == []


def test_replaced_tracks_reprocess_each_config_that_uses_them_once(deployment):
    upload_compendium(deployment)
    for name, text in (("pilot", CONFIG), ("other", CONFIG.replace("tracks.tsv", "other.tsv"))):
        run_id = drop_config(deployment, text, name=name)
        deployment.ledger.transition_run(run_id, "FAILED", ("PREPARING",), message="ended for the test")
    events = [deployment.put(f"data/pilot/{cell}.{assay}.bigWig", f"new signal {n}")[0]
              for n in range(25) for cell, assay in ROWS]  # 100 tracks replaced at once
    for event in events + events[:10]:  # some delivered twice
        deployment.deliver([event])
    deployment.tick()
    deployment.tick()
    reprocessing = [run for run in deployment.ledger.runs() if run["trigger"]["kind"] == "data"]
    assert len(reprocessing) == 1 and reprocessing[0]["config"]["url"].endswith("configs/pilot.yaml")
    assert sorted(reprocessing[0]["trigger"]["objects"]) == sorted(
        f"{deployment.store.root}data/pilot/{cell}.{assay}.bigWig" for cell, assay in ROWS)
    assert [j.args[0] for j in deployment.jobs()].count("folds") == 3


@pytest.mark.parametrize("nodes", [1, 3])
def test_cloud_nodes_reach_the_engine(deployment, nodes):
    upload_compendium(deployment)
    drop_config(deployment, CONFIG + f"cloud: {{nodes: {nodes}, stages: [prepare, finish]}}\n")
    prepare = job(deployment, "folds")
    if deployment.cloud == "azure":  # EMR Serverless sizes its executors itself
        assert prepare.nodes == nodes
        succeed(deployment, prepare)
        assert {j.nodes for j in deployment.jobs() if j.args[0] == "train"} == {1}


def test_concurrent_ledger_writers_have_one_winner_per_transition(deployment):
    """Twenty handlers racing: one moves the run, one claims each attempt; the others see it done."""
    from concurrent.futures import ThreadPoolExecutor

    from predictd_core.cloud.contract import Job, JobSpec, RunLayout

    ledger = deployment.ledger
    assert ledger.create_run("race-0123456789ab", "TRAINING", n_test=2, n_valid=2)
    spec = JobSpec.for_attempt(RunLayout(deployment.store.root, "race-0123456789ab"), Job("finish"), 1)
    with ThreadPoolExecutor(20) as pool:
        moved = list(pool.map(lambda _: ledger.transition_run("race-0123456789ab", "FINISHING", ("TRAINING",)),
                              range(20)))
        claims = list(pool.map(lambda _: ledger.claim_attempt(spec), range(20)))
        states = list(pool.map(lambda n: ledger.record_state("race-0123456789ab", Job("finish"), 1,
                                                             ["RUNNING", "SUCCESS"][n % 2], None)["state"], range(20)))
    assert moved.count(True) == 1 and ledger.run("race-0123456789ab")["state"] == "FINISHING"
    assert [owned for _, owned in claims].count(True) == 1  # one caller may start the attempt
    assert {item["client_token"] for item, _ in claims} == {spec.client_token}
    assert len(ledger.attempts("race-0123456789ab")) == 1
    assert ledger.attempts("race-0123456789ab")[0]["state"] == "SUCCESS"  # never moved back by a late RUNNING
    assert "SUCCESS" in states
