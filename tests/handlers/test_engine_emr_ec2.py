"""The emr-ec2 engine seam: the same handlers start Step Functions executions (named by the client token)
and follow their ``aws.states`` status events."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from handlers import on_config, on_job_state
from handlers.aws.runners import StepFunctionsRunner
from predictd_core.cloud.contract import Job, JobSpec, RunLayout, client_token
from tests.handlers.conftest import ledger_of, ACCOUNT, BUCKET, REGION, TABLE, drop_config, upload_compendium


@pytest.fixture
def machine(cloud, monkeypatch) -> str:
    """The one-command state machine (its definition is infra's; a Pass state stands in) and the engine env."""
    arn = boto3.client("stepfunctions").create_state_machine(
        name="predictd-emr-ec2", roleArn=f"arn:aws:iam::{ACCOUNT}:role/predictd-states",
        definition=json.dumps({"StartAt": "Run", "States": {"Run": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    monkeypatch.setenv("PREDICTD_ENGINE", "emr-ec2")
    monkeypatch.setenv("PREDICTD_STATE_MACHINE_ARN", arn)
    return arn


def executions(machine: str) -> list[dict]:
    """Every execution of the state machine, oldest first, with its predictd argv."""
    client = boto3.client("stepfunctions")
    listed = client.list_executions(stateMachineArn=machine)["executions"]
    described = [client.describe_execution(executionArn=e["executionArn"]) for e in listed]
    return sorted(({"arn": d["executionArn"], "name": d["name"], "args": json.loads(d["input"])["args"],
                    "timeout": json.loads(d["input"])["timeoutSeconds"],
                    "start": d["startDate"]} for d in described), key=lambda e: e["start"])


def status_change(machine: str, execution: dict, status: str, error: str | None = None) -> dict:
    """A ``Step Functions Execution Status Change`` event as EventBridge delivers it (documented shape)."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states", "account": ACCOUNT, "time": "2026-01-01T00:00:00Z", "region": REGION,
            "resources": [execution["arn"]],
            "detail": {"executionArn": execution["arn"], "stateMachineArn": machine, "name": execution["name"],
                       "status": status, "startDate": 1767225600000, "stopDate": None,
                       "input": json.dumps({"args": execution["args"]}), "inputDetails": {"included": True},
                       "output": None, "outputDetails": None, "error": error,
                       "cause": "the step did not finish in time" if error else None}}


def test_runs_go_through_step_functions_executions(cloud, machine):
    upload_compendium(cloud, "data/pilot")
    [run] = on_config.handler(drop_config(cloud), None)["runs"]
    run_id = run["run_id"]
    config_url = f"s3://{BUCKET}/runs/{run_id}/config.yaml"

    [prepare] = executions(machine)
    assert prepare["args"] == ["folds", config_url]
    assert prepare["timeout"] == 6 * 3600  # the step's limit by stage (folds and finish: 12 h)
    assert prepare["name"] == client_token(run_id, Job("prepare"), 1)
    assert cloud.job_runs() == []  # nothing went to EMR Serverless

    on_job_state.handler(status_change(machine, prepare, "RUNNING"), None)
    assert on_job_state.handler(status_change(machine, prepare, "SUCCEEDED"), None)["action"] == \
        "started the fold jobs"
    folds = executions(machine)[1:]
    assert [e["args"][2:6] for e in folds] == [["--test-fold", i, "--valid-fold", j]
                                               for i, j in (("0", "0"), ("0", "1"), ("1", "0"), ("1", "1"))]

    timed_out = on_job_state.handler(status_change(machine, folds[0], "TIMED_OUT", "States.Timeout"), None)
    assert (timed_out["state"], timed_out["action"]) == ("FAILED", "started attempt 2")
    retry = executions(machine)[-1]
    assert retry["name"] == client_token(run_id, Job("fold", 0, 0), 2) != folds[0]["name"]
    assert retry["args"][-1].endswith("/attempts/test0-valid0/attempt-2")
    [job] = [j for j in ledger_of(cloud).summary(run_id)["jobs"] if j["job"] == "test0-valid0"]
    assert job["history"][0]["state_details"] == "States.Timeout: the step did not finish in time"
    assert job["job_run_id"] == retry["arn"]


def test_a_started_execution_answers_with_its_arn_instead_of_starting_again(cloud, machine):
    client = boto3.client("stepfunctions")
    launcher = StepFunctionsRunner(client, machine)
    spec = JobSpec.for_attempt(RunLayout(f"s3://{BUCKET}/", "pilot-0123456789ab"), Job("finish"), 1)

    arn = launcher.start(spec)
    assert launcher.start(spec) == arn  # running, same name and input: Step Functions returns it
    client.stop_execution(executionArn=arn)
    assert launcher.start(spec) == arn  # closed: ExecutionAlreadyExists, answered with the known ARN
    assert len(client.list_executions(stateMachineArn=machine)["executions"]) == 1
