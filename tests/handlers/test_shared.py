"""What the handlers share, without AWS: the Lambda bundle's imports, job names and tokens, settings and
event normalization."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from handlers.aws.events import created_objects, job_state_change
from predictd_core.cloud.contract import SCRATCH_TAG, Job, client_token, is_config_key, planned_jobs
from predictd_core.cloud.settings import load_aws_settings as load_settings
from predictd_core.crossval import model_name
from tests.handlers.conftest import REPO_ROOT

ENV = {"PREDICTD_BUCKET": "bucket", "PREDICTD_LEDGER_TABLE": "ledger", "PREDICTD_TOPIC_ARN": "arn:aws:sns:topic",
       "PREDICTD_APPLICATION_ID": "app", "PREDICTD_JOB_ROLE_ARN": "arn:aws:iam::1:role/job"}


def test_the_handlers_import_no_numpy_zarr_spark_or_fsspec():
    """The Lambda bundle holds pydantic, PyYAML, boto3 and predictd_core.config's few modules, nothing more."""
    code = ("import sys, handlers.on_config, handlers.on_job_state, handlers.on_data\n"
            "print(sorted(m for m in ('numpy', 'zarr', 'pyspark', 'pandas', 'fsspec', 's3fs') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_job_names_are_the_cores_model_names_and_read_back():
    for i, j in ((0, 0), (4, 7), (12, 3)):
        assert Job("fold", i, j).name == model_name(i, j)
    jobs = planned_jobs(5, 8)
    assert len(jobs) == 1 + 40 + 1 and [Job.from_name(job.name) for job in jobs] == jobs
    with pytest.raises(ValueError, match="not a job name"):
        Job.from_name("test1")


def test_client_tokens_are_per_attempt_and_fit_both_engines():
    run_id = "a-config-stem-that-is-rather-long-for-a-name-0123456789ab"
    tokens = {client_token(run_id, job, attempt) for job in planned_jobs(5, 8) for attempt in (1, 2, 3)}
    assert len(tokens) == 42 * 3
    assert client_token(run_id, Job("finish"), 1) == client_token(run_id, Job("finish"), 1)
    assert client_token(run_id, Job("finish"), 1) != client_token(run_id + "x", Job("finish"), 1)
    for token in tokens:  # EMR Serverless: 1-64 characters; Step Functions names: 1-80, no special characters
        assert re.fullmatch(r"[a-z0-9-]{1,64}", token)


def test_settings_name_the_missing_variable():
    assert load_settings(ENV).max_attempts == 3
    assert load_settings({**ENV, "PREDICTD_MAX_ATTEMPTS": "5"}).max_attempts == 5
    with pytest.raises(ValueError, match="PREDICTD_BUCKET: Field required"):
        load_settings({k: v for k, v in ENV.items() if k != "PREDICTD_BUCKET"})
    with pytest.raises(ValueError, match="engine emr-ec2 needs PREDICTD_STATE_MACHINE_ARN"):
        load_settings({**ENV, "PREDICTD_ENGINE": "emr-ec2"})
    with pytest.raises(ValueError, match="PREDICTD_MAX_ATTEMPTS: Input should be greater than or equal to 1"):
        load_settings({**ENV, "PREDICTD_MAX_ATTEMPTS": "0"})


def test_step_functions_statuses_read_as_emr_states():
    def event(status: str) -> dict:
        return {"source": "aws.states", "detail-type": "Step Functions Execution Status Change",
                "detail": {"executionArn": "arn:x", "stateMachineArn": "arn:m", "name": "n", "status": status}}

    states = {status: job_state_change(event(status)).state
              for status in ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")}
    assert states == {"RUNNING": "RUNNING", "SUCCEEDED": "SUCCESS", "FAILED": "FAILED", "TIMED_OUT": "FAILED",
                      "ABORTED": "FAILED"}


def test_an_unversioned_bucket_is_refused_by_name():
    record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
              "s3": {"bucket": {"name": "b"}, "object": {"key": "configs/a+b.yaml", "eTag": "x"}}}
    with pytest.raises(ValueError, match="s3://b/configs/a b.yaml: the event has no versionId"):
        created_objects({"Records": [record]}, is_config_key)


def test_the_scratch_tag_is_the_one_the_bucket_lifecycle_expires():
    from infra.config import SCRATCH_TAG as LIFECYCLE_TAG

    assert SCRATCH_TAG == LIFECYCLE_TAG
