"""``predictd status``: a run's state, jobs, attempts and outputs from the ledger, as text or JSON."""

from __future__ import annotations

import json

from predictd_core.cli.main import main
from tests.handlers.conftest import ledger_of, BUCKET, FOLDS, TABLE, deliver, fold_run


def status(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["status", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_shows_the_run_every_job_with_attempts_and_the_outputs(cloud, training, capsys):
    deliver(cloud, fold_run(cloud, 0, 1), "FAILED")
    retried = fold_run(cloud, 0, 1)
    deliver(cloud, fold_run(cloud, 1, 1), "RUNNING")

    code, out, err = status(capsys, training)

    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"run      {training}" and lines[1] == "state    TRAINING"
    assert lines[2].startswith(f"config   s3://{BUCKET}/configs/pilot.yaml (version ")
    table = lines[lines.index("jobs (2 test x 2 validation folds = 4 fold models)") + 1:]
    assert table[0].split() == ["job", "stage", "attempts", "state", "job", "run", "id"]
    rows = {row.split()[0]: row.split()[1:] for row in table[1:]}
    prepare = cloud.job_run("folds")["id"]
    assert rows == {"prepare": ["prepare", "1", "SUCCESS", prepare],
                    "test0-valid0": ["fold", "1", "SUBMITTED", fold_run(cloud, 0, 0)["id"]],
                    "test0-valid1": ["fold", "2", "SUBMITTED", retried["id"]],
                    "test1-valid0": ["fold", "1", "SUBMITTED", fold_run(cloud, 1, 0)["id"]],
                    "test1-valid1": ["fold", "1", "RUNNING", fold_run(cloud, 1, 1)["id"]],
                    "finish": ["finish", "0", "PLANNED", "-"]}
    assert "outputs" not in lines

    code, out, _ = status(capsys, training, "--json")
    assert code == 0 and json.loads(out) == ledger_of(cloud).summary(training)


def test_status_of_a_finished_run_lists_its_outputs(cloud, training, capsys):
    for i, j in FOLDS:
        deliver(cloud, fold_run(cloud, i, j), "SUCCESS")
    deliver(cloud, cloud.job_run("cv"), "SUCCESS")

    code, out, _ = status(capsys, training, "--table", "predictd-ledger")

    assert code == 0 and "state    SUCCEEDED" in out
    outputs = out.split("\noutputs\n")[1].split()
    assert outputs == [f"s3://{BUCKET}/runs/{training}/{name}" for name in ("metrics.tsv", "report.html",
                                                                           "manifest.json")]
    assert json.loads(cloud.text(f"runs/{training}/run.json"))["outputs"] == outputs


def test_the_bucket_tag_names_the_ledger_and_without_a_run_the_runs_are_listed(cloud, training, capsys, monkeypatch):
    monkeypatch.delenv("PREDICTD_LEDGER_TABLE")

    code, out, err = status(capsys, "--bucket", BUCKET)
    assert code == 0 and err == ""
    header, row = out.splitlines()
    assert header.split() == ["run", "state", "created", "config"]
    assert row.split()[:2] == [training, "TRAINING"] and row.split()[-1] == f"s3://{BUCKET}/configs/pilot.yaml"

    code, out, _ = status(capsys, training, "--bucket", BUCKET, "--json")
    assert code == 0 and json.loads(out)["run_id"] == training
    code, out, _ = status(capsys, "--bucket", BUCKET, "--json")
    assert [run["run_id"] for run in json.loads(out)] == [training]


def test_status_errors_are_one_line_and_exit_2(cloud, training, capsys, monkeypatch):
    code, out, err = status(capsys, "pilot-000000000000")
    assert (code, out) == (2, "")
    assert err == (f"predictd: error: ledger {TABLE}: RUN_ID: no run 'pilot-000000000000' "
                   "(predictd status without RUN_ID lists the runs)\n")

    monkeypatch.delenv("PREDICTD_LEDGER_TABLE")
    code, _, err = status(capsys, training)
    assert code == 2 and "name the ledger: --table, $PREDICTD_LEDGER_TABLE, or --bucket" in err
    cloud.s3.delete_bucket_tagging(Bucket=BUCKET)
    code, _, err = status(capsys, training, "--bucket", BUCKET)
    assert code == 2 and err == f"predictd: error: s3://{BUCKET}: tags: no predictd:ledger-table tag; give --table\n"
    code, _, err = status(capsys, training, "--table", "no-such-table")
    assert code == 2 and err.startswith("predictd: error: ") and "ResourceNotFoundException" in err
