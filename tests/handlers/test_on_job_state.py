"""on_job_state: EMR state-change events move a run through prepare, fold attempts and finish."""

from __future__ import annotations

import json

import pytest

from handlers import on_job_state
from tests.handlers.conftest import ledger_of, BUCKET, FOLDS, TABLE, deliver, fold_run


def ledger(cloud) -> Ledger:
    return ledger_of(cloud)


def test_prepare_success_starts_every_fold_job_once(cloud, training):
    config_url = f"s3://{BUCKET}/runs/{training}/config.yaml"
    attempts = f"s3://{BUCKET}/runs/{training}/attempts"
    deliver(cloud, cloud.job_run("folds"), "SUCCESS")  # re-delivered

    folds = [run for run in cloud.job_runs() if run["args"][0] == "train"]
    assert [run["args"] for run in folds] == [
        ["train", config_url, "--test-fold", str(i), "--valid-fold", str(j),
         "--model-dir", f"{attempts}/test{i}-valid{j}/attempt-1"] for i, j in FOLDS]
    assert {run["tags"]["predictd:stage"] for run in folds} == {"fold"}
    assert len({run["client_token"] for run in folds}) == 4
    assert ledger(cloud).run(training)["state"] == "TRAINING"


def test_progress_is_recorded_and_late_events_do_not_move_an_attempt_back(cloud, training):
    job_run = fold_run(cloud, 0, 0)
    for state in ("PENDING", "SCHEDULED", "RUNNING"):
        assert deliver(cloud, job_run, state)["action"] == "recorded"
    assert deliver(cloud, job_run, "SUCCESS")["action"].startswith("model promoted")
    late = deliver(cloud, job_run, "RUNNING")
    assert late == {"run_id": training, "job": "test0-valid0", "attempt": 1, "state": "SUCCESS", "action": "recorded"}
    [job] = [job for job in ledger(cloud).summary(training)["jobs"] if job["job"] == "test0-valid0"]
    assert job["state"] == "SUCCESS" and job["attempts"] == 1


def tags(cloud, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in cloud.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]}


def test_a_failed_fold_is_retried_in_its_own_prefix_then_its_model_is_promoted(cloud, training):
    first = fold_run(cloud, 0, 1)
    partial = f"runs/{training}/attempts/test0-valid1/attempt-1/factors.npz"
    cloud.s3.put_object(Bucket=BUCKET, Key=partial, Body=b"half a model")  # what the failing job left
    assert deliver(cloud, first, "FAILED")["action"] == "started attempt 2"
    assert deliver(cloud, first, "FAILED")["action"] == "started attempt 2"  # re-delivered: nothing new

    second = fold_run(cloud, 0, 1)
    assert second["id"] != first["id"] and second["client_token"] != first["client_token"]
    assert second["args"][-1] == f"s3://{BUCKET}/runs/{training}/attempts/test0-valid1/attempt-2"
    assert len(cloud.job_runs()) == 1 + 4 + 1

    assert deliver(cloud, second, "SUCCESS")["action"] == "model promoted; 3 fold(s) to go"
    attempt = f"runs/{training}/attempts/test0-valid1/attempt-2"
    model = f"runs/{training}/models/test0-valid1"
    assert cloud.keys(model + "/") == [f"{model}/factors.npz", f"{model}/model.json"]
    for name in ("factors.npz", "model.json"):
        assert cloud.text(f"{model}/{name}") == cloud.text(f"{attempt}/{name}")
        # attempts are scratch for the bucket's lifecycle rule once promoted or failed; models are kept
        assert tags(cloud, f"{attempt}/{name}") == {"predictd:retention": "scratch"}
        assert tags(cloud, f"{model}/{name}") == {}
    assert tags(cloud, partial) == {"predictd:retention": "scratch"}
    [job] = [job for job in ledger(cloud).summary(training)["jobs"] if job["job"] == "test0-valid1"]
    assert (job["state"], job["attempts"], job["job_run_id"]) == ("SUCCESS", 2, second["id"])
    assert [step["state"] for step in job["history"]] == ["FAILED", "SUCCESS"]
    assert "Job failed" in job["history"][0]["state_details"]


def test_a_success_without_a_model_counts_as_a_failed_attempt(cloud, training):
    job_run = fold_run(cloud, 1, 0)
    result = deliver(cloud, job_run, "SUCCESS", outputs=False)
    assert (result["state"], result["action"]) == ("FAILED", "started attempt 2")
    [job] = [job for job in ledger(cloud).summary(training)["jobs"] if job["job"] == "test1-valid0"]
    assert "without writing" in job["history"][0]["state_details"]
    assert "factors.npz" in job["history"][0]["state_details"]


def test_a_fold_failing_past_the_limit_fails_the_run_and_notifies_once(cloud, training, monkeypatch):
    monkeypatch.setenv("PREDICTD_MAX_ATTEMPTS", "2")
    deliver(cloud, fold_run(cloud, 1, 1), "FAILED")
    last = fold_run(cloud, 1, 1)
    assert deliver(cloud, last, "FAILED")["action"] == "run failed"
    deliver(cloud, last, "FAILED")  # re-delivered
    for i, j in FOLDS[:3]:  # the other folds succeed: the run stays FAILED and never finishes
        assert deliver(cloud, fold_run(cloud, i, j), "SUCCESS")["action"] == "none, the run is FAILED"

    run = ledger(cloud).run(training)
    assert run["state"] == "FAILED" and run["message"].startswith("test1-valid1 failed 2 times")
    assert not [job_run for job_run in cloud.job_runs() if job_run["args"][0] == "cv"]
    assert len([job_run for job_run in cloud.job_runs() if "test1-valid1" in job_run["args"][-1]]) == 2
    [notice] = cloud.notifications()
    assert (notice["run_id"], notice["state"]) == (training, "FAILED")
    assert "test1-valid1 failed 2 times" in notice["message"] and notice["subject"] == f"predictd run FAILED: {training}"


def test_every_fold_done_starts_exactly_one_finish_job(cloud, training):
    for i, j in FOLDS[:-1]:
        deliver(cloud, fold_run(cloud, i, j), "SUCCESS")
        assert not [run for run in cloud.job_runs() if run["args"][0] == "cv"]
    last = fold_run(cloud, *FOLDS[-1])
    assert deliver(cloud, last, "SUCCESS")["action"] == "model promoted; started the finish job"
    deliver(cloud, last, "SUCCESS")  # the last success delivered twice

    [finish] = [run for run in cloud.job_runs() if run["args"][0] == "cv"]
    assert finish["args"] == ["cv", f"s3://{BUCKET}/runs/{training}/config.yaml"]
    assert finish["tags"]["predictd:stage"] == "finish"
    assert ledger(cloud).run(training)["state"] == "FINISHING"
    assert cloud.keys(f"runs/{training}/models/") == sorted(
        f"runs/{training}/models/test{i}-valid{j}/{name}" for i, j in FOLDS for name in ("factors.npz", "model.json"))


def test_finish_success_writes_run_json_marks_the_run_succeeded_and_notifies(cloud, training):
    for i, j in FOLDS:
        deliver(cloud, fold_run(cloud, i, j), "SUCCESS")
    finish = cloud.job_run("cv")
    assert deliver(cloud, finish, "FAILED")["action"] == "started attempt 2"  # a finish failure is retried too
    finish = cloud.job_run("cv")

    assert deliver(cloud, finish, "SUCCESS")["action"] == "run succeeded"
    deliver(cloud, finish, "SUCCESS")  # re-delivered: no second notification

    prefix = f"s3://{BUCKET}/runs/{training}"
    run_json = json.loads(cloud.text(f"runs/{training}/run.json"))
    assert run_json["run_id"] == training and run_json["state"] == "SUCCEEDED"
    assert run_json["outputs"] == [f"{prefix}/metrics.tsv", f"{prefix}/report.html", f"{prefix}/manifest.json"]
    assert [(job["job"], job["state"], job["attempts"]) for job in run_json["jobs"]] == [
        ("prepare", "SUCCESS", 1), *((f"test{i}-valid{j}", "SUCCESS", 1) for i, j in FOLDS), ("finish", "SUCCESS", 2)]
    recorded = ledger(cloud).summary(training)
    assert recorded["state"] == "SUCCEEDED" and recorded["outputs"] == run_json["outputs"]
    [notice] = cloud.notifications()
    assert (notice["run_id"], notice["state"]) == (training, "SUCCEEDED")


def test_a_finish_success_without_manifest_is_a_failed_attempt(cloud, training):
    for i, j in FOLDS:
        deliver(cloud, fold_run(cloud, i, j), "SUCCESS")
    result = deliver(cloud, cloud.job_run("cv"), "SUCCESS", outputs=False)
    assert (result["state"], result["action"]) == ("FAILED", "started attempt 2")
    assert ledger(cloud).run(training)["state"] == "FINISHING"


def test_events_of_other_jobs_are_ignored_and_unrecorded_jobs_of_ours_are_retried(cloud, training):
    foreign = cloud.state_change("0000000000000000", "SUCCESS")
    foreign["detail"]["applicationId"] = "someoneelse"
    assert on_job_state.handler(foreign, None)["action"] == "ignored"
    # a job of ours whose start is not recorded yet: its progress is dropped, its end retried (raises)
    assert on_job_state.handler(cloud.state_change("0000000000000000", "SUBMITTED"), None)["action"] == "ignored"
    with pytest.raises(LookupError, match="not in the ledger yet"):
        on_job_state.handler(cloud.state_change("0000000000000000", "SUCCESS"), None)
    with pytest.raises(ValueError, match="not a job state-change event"):
        on_job_state.handler({**foreign, "detail-type": "EMR Serverless Application State Change"}, None)
