"""Faults injected into runs, on both clouds: lost, repeated, late and concurrent reports, a handler that
dies half-way, bad input, cancellations. Every test ends with the run in the right state, no job started
twice and nothing lost. tests/README.md tabulates them.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from predictd_core.cloud import ledger as ledger_module
from tests.cloud.deployments import write_outputs
from tests.cloud.test_run_scenarios import FOLDS, job, succeed, train


def started_once(deployment) -> None:
    """No attempt of any job was started twice (an engine may not deduplicate; moto does not)."""
    keys = Counter((tuple(j.args[:1]), tuple(j.args[-1:])) if j.args[0] != "train" else tuple(j.args)
                   for j in deployment.jobs())
    assert max(keys.values()) == 1, keys


def finish(deployment, run_id: str) -> None:
    """Succeed every fold still running, then the finish job; the run must end SUCCEEDED."""
    for fold in FOLDS:
        started = job(deployment, "train", fold)
        if deployment.engine_state(started) != "SUCCESS":
            succeed(deployment, started)
    succeed(deployment, job(deployment, "cv"))
    assert deployment.ledger.run(run_id)["state"] == "SUCCEEDED"
    started_once(deployment)


def test_a_lost_success_event_is_recovered_by_the_tick(deployment):
    run_id = train(deployment)
    fold = job(deployment, "train", "test0-valid0")
    write_outputs(deployment.store, fold)
    deployment.complete_silently(fold, "SUCCESS")  # the event is dropped
    assert deployment.ledger.summary(run_id)["jobs"][1]["state"] == "SUBMITTED"
    deployment.tick()
    assert deployment.ledger.summary(run_id)["jobs"][1]["state"] == "SUCCESS"
    assert deployment.store.keys(f"runs/{run_id}/models/test0-valid0/")  # promoted
    finish(deployment, run_id)


def test_a_lost_failed_event_is_recovered_with_the_engines_reason(deployment):
    run_id = train(deployment)
    fold = job(deployment, "train", "test1-valid1")
    deployment.complete_silently(fold, "FAILED")
    deployment.tick()
    [item] = [j for j in deployment.ledger.summary(run_id)["jobs"] if j["job"] == "test1-valid1"]
    assert item["attempts"] == 2 and item["history"][0]["state"] == "FAILED"
    assert item["history"][0]["state_details"]  # from GetJobRun / the task's failure info
    finish(deployment, run_id)


def test_events_repeated_ten_times_and_out_of_order_repeat_nothing(deployment):
    run_id = train(deployment)
    prepare = job(deployment, "folds")
    for _ in range(10):
        deployment.report(prepare, "SUCCESS")
    fold = job(deployment, "train", "test0-valid1")
    write_outputs(deployment.store, fold)
    deployment.report(fold, "SUCCESS")
    if deployment.cloud == "aws":  # a late RUNNING event after the SUCCESS one
        from handlers import on_job_state

        on_job_state.handler(deployment.moto.state_change(fold.id, "RUNNING", previous="SCHEDULED"), None)
        deployment.moto.set_job_state(fold.id, "SUCCESS")
    [item] = [j for j in deployment.ledger.summary(run_id)["jobs"] if j["job"] == "test0-valid1"]
    assert item["state"] == "SUCCESS" and item["attempts"] == 1
    finish(deployment, run_id)


@pytest.mark.parametrize("round_", range(3))
def test_fifty_concurrent_reports_of_one_success_start_each_fold_once(deployment, round_):
    from tests.cloud.test_run_scenarios import drop_config, upload_compendium

    upload_compendium(deployment)
    run_id = drop_config(deployment)
    prepare = job(deployment, "folds")
    write_outputs(deployment.store, prepare)
    with ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda _: deployment.report(prepare, "SUCCESS"), range(50)))
    assert sorted(j.args[3:6:2] for j in deployment.jobs() if j.args[0] == "train") == [
        ["0", "0"], ["0", "1"], ["1", "0"], ["1", "1"]]
    assert deployment.ledger.run(run_id)["state"] == "TRAINING"
    finish(deployment, run_id)


def test_the_concurrency_test_fails_on_claims_that_every_caller_wins(deployment, monkeypatch):
    """The check above can fail: with the old claim (every handler that saw the item started the
    attempt), racing reports start fold jobs twice. Two racers are enough to show it; ten make it certain
    without fifty callers' 200 job starts on moto (30 s). Batch refuses a second task of one id, so this
    is shown on AWS, whose engine here (moto) deduplicates nothing."""
    if deployment.cloud != "aws":
        pytest.skip("Batch task ids deduplicate starts by themselves")
    from tests.cloud.test_run_scenarios import drop_config, upload_compendium

    original = ledger_module.Ledger.claim_attempt
    monkeypatch.setattr(ledger_module.Ledger, "claim_attempt",
                        lambda self, spec, **kw: (original(self, spec, **kw)[0], True))
    upload_compendium(deployment)
    drop_config(deployment)
    prepare = job(deployment, "folds")
    write_outputs(deployment.store, prepare)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: deployment.report(prepare, "SUCCESS"), range(10)))
    assert len([j for j in deployment.jobs() if j.args[0] == "train"]) > 4


def test_a_handler_dying_between_claim_and_start_leaves_the_attempt_to_the_tick(deployment, monkeypatch):
    run_id = train(deployment)
    fold = job(deployment, "train", "test0-valid0")
    runner = deployment.rt.runner
    start = runner.start
    calls = []

    def dies_once(spec):
        calls.append(spec.client_token)
        if len(calls) == 1:
            raise ConnectionError("the handler's connection dropped")
        return start(spec)

    monkeypatch.setattr(runner, "start", dies_once)
    with pytest.raises(ConnectionError):  # Lambda retries the event; Event Grid / the timer come again
        deployment.report(fold, "FAILED")
    deployment.report(fold, "FAILED")  # the retry: the claim is fresh, so nothing starts twice
    assert len([j for j in deployment.jobs() if "test0-valid0" in " ".join(j.args)]) == 1
    monkeypatch.setattr(ledger_module, "CLAIM_LEASE_SECONDS", 0)  # the claim is now stale
    deployment.tick()
    deployment.tick()
    retries = [j for j in deployment.jobs() if "attempts/test0-valid0/attempt-2" in " ".join(j.args)]
    assert len(retries) == 1
    finish(deployment, run_id)


def test_bad_input_fails_the_run_at_once_with_the_error(deployment):
    run_id = train(deployment)
    fold = job(deployment, "train", "test1-valid0")
    error = {"file": f"{deployment.store.root}data/pilot/E004.H3K27me3.bigWig", "field": "bigwig",
             "message": "not a bigWig file"}
    error["error"] = f"{error['file']}: {error['field']}: {error['message']}"
    deployment.store.put(f"runs/{run_id}/attempts/test1-valid0/attempt-1/error.json", json.dumps(error).encode(),
                         "application/json")  # what the CLI writes at PREDICTD_ERROR_URL before exiting 2
    deployment.report(fold, "FAILED")
    run = deployment.ledger.run(run_id)
    assert run["state"] == "FAILED" and error["error"] in run["message"] and "not retried" in run["message"]
    assert len([j for j in deployment.jobs() if "test1-valid0" in " ".join(j.args)]) == 1
    summary = json.loads(deployment.store.read_current(f"runs/{run_id}/run.json")[1])
    assert summary["state"] == "FAILED" and error["error"] in summary["message"]
    [notice] = deployment.notifications()
    assert notice["state"] == "FAILED" and error["error"] in notice["message"]
    others = [job(deployment, "train", fold) for fold in FOLDS if fold != "test1-valid0"]
    assert {deployment.engine_state(other) for other in others} == {"CANCELLED"}  # failure ends the run


def test_a_job_a_person_cancelled_is_final(deployment):
    run_id = train(deployment)
    deployment.report(job(deployment, "train", "test0-valid1"), "CANCELLED")
    run = deployment.ledger.run(run_id)
    assert run["state"] == "FAILED" and "was cancelled (not retried)" in run["message"]
    assert len([j for j in deployment.jobs() if "test0-valid1" in " ".join(j.args)]) == 1


def test_predictd_cancel_stops_the_run_and_its_jobs_at_the_next_tick(deployment, monkeypatch, capsys):
    from predictd_core.cli.main import main

    run_id = train(deployment)
    if deployment.cloud == "aws":
        arguments = ["--bucket", deployment.store.name]
    else:
        monkeypatch.setenv("PREDICTD_TABLE_ENDPOINT", deployment.emulator.table_endpoint)
        arguments = ["--account", deployment.emulator.account]
    assert main(["cancel", run_id, *arguments]) == 0
    assert "cancel requested" in capsys.readouterr().out
    deployment.tick()
    run = deployment.ledger.run(run_id)
    assert run["state"] == "FAILED" and run["message"].startswith("cancelled by ")
    assert {deployment.engine_state(job(deployment, "train", fold)) for fold in FOLDS} == {"CANCELLED"}
    assert main(["cancel", run_id, *arguments]) == 2  # it has ended
    assert "nothing to cancel" in capsys.readouterr().err
    [notice] = deployment.notifications()
    assert notice["state"] == "FAILED"


def test_the_cli_writes_a_bad_inputs_error_where_the_job_was_told(tmp_path, monkeypatch, capsys):
    from predictd_core.cli.main import main

    (tmp_path / "run.yaml").write_text("tracks: missing.tsv\nchrom_sizes: chrom.sizes\n")
    monkeypatch.setenv("PREDICTD_ERROR_URL", str(tmp_path / "attempt-1" / "error.json"))
    assert main(["folds", str(tmp_path / "run.yaml")]) == 2
    error = json.loads((tmp_path / "attempt-1" / "error.json").read_text())
    assert error["file"] == str(tmp_path / "missing.tsv") and error["field"] == "tracks"
    assert error["error"] == f"{error['file']}: tracks: {error['message']}"
