"""Typed views of the events the handlers receive (in the style of aws-lambda-powertools' parser models).

* S3 notifications (``{"Records": [{"eventSource": "aws:s3", ...}]}``), invoked directly by S3.
* EventBridge ``EMR Serverless Job Run State Change`` and, for the emr-ec2 engine, ``Step Functions
  Execution Status Change``; both are normalized to one ``JobStateChange`` in EMR Serverless' state
  vocabulary, so the job-state handler does not care which engine ran the job.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field

# EMR Serverless job run states (API JobRunSummary.state); the terminal ones end an attempt.
SUCCESS = "SUCCESS"
FAILURE_STATES = frozenset({"FAILED", "CANCELLED"})
TERMINAL_STATES = FAILURE_STATES | {SUCCESS}
# Progress order of the states, so that a late, out-of-order event never moves an attempt backwards.
STATE_RANKS = {"STARTING": 0, "SUBMITTED": 1, "QUEUED": 2, "PENDING": 3, "SCHEDULED": 4, "RUNNING": 5,
               "CANCELLING": 6, **{state: 9 for state in TERMINAL_STATES}}
# Step Functions execution status -> the EMR Serverless state it means for the job.
STEP_FUNCTIONS_STATES = {"RUNNING": "RUNNING", "SUCCEEDED": SUCCESS, "FAILED": "FAILED",
                         "TIMED_OUT": "FAILED", "ABORTED": "FAILED"}


class S3Object(BaseModel):
    """``s3.object`` of a notification record (key URL-encoded as S3 sends it)."""

    model_config = ConfigDict(extra="ignore")

    key: str
    version_id: str | None = Field(None, alias="versionId")
    e_tag: str | None = Field(None, alias="eTag")


class S3Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str


class S3Entity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bucket: S3Bucket
    object: S3Object


class S3Record(BaseModel):
    """One record of an S3 event notification."""

    model_config = ConfigDict(extra="ignore")

    event_source: Literal["aws:s3"] = Field(alias="eventSource")
    event_name: str = Field(alias="eventName")
    s3: S3Entity


class S3Event(BaseModel):
    """An S3 event notification as S3 invokes a Lambda function with it."""

    model_config = ConfigDict(extra="ignore")

    records: list[S3Record] = Field(alias="Records")


class ObjectVersion(BaseModel):
    """One version of one object: what a run is keyed by (S3 delivers an event at least once)."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    version_id: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def created_objects(event: dict[str, Any], prefix: str, suffixes: tuple[str, ...] = ("",)) -> list[ObjectVersion]:
    """The object versions an S3 notification reports created under ``prefix`` with one of ``suffixes``.

    Raises
    ------
    ValueError
        For a created object without ``versionId``: the bucket must have versioning enabled, since runs
        are keyed by the version.
    """
    found = []
    for record in S3Event.model_validate(event).records:
        key = unquote_plus(record.s3.object.key)
        if not record.event_name.startswith("ObjectCreated:") or not key.startswith(prefix):
            continue
        if not key.endswith(suffixes):
            continue
        if not record.s3.object.version_id:
            raise ValueError(f"s3://{record.s3.bucket.name}/{key}: the event has no versionId; "
                             "the bucket must have versioning enabled")
        found.append(ObjectVersion(bucket=record.s3.bucket.name, key=key, version_id=record.s3.object.version_id))
    return found


class EmrServerlessJobRunDetail(BaseModel):
    """``detail`` of an ``EMR Serverless Job Run State Change`` event."""

    model_config = ConfigDict(extra="ignore")

    job_run_id: str = Field(alias="jobRunId")
    application_id: str = Field(alias="applicationId")
    state: str
    state_details: str | None = Field(None, alias="stateDetails")


class StepFunctionsExecutionDetail(BaseModel):
    """``detail`` of a ``Step Functions Execution Status Change`` event."""

    model_config = ConfigDict(extra="ignore")

    execution_arn: str = Field(alias="executionArn")
    state_machine_arn: str = Field(alias="stateMachineArn")
    status: str
    error: str | None = None
    cause: str | None = None


class EventBridgeEvent(BaseModel):
    """The EventBridge envelope."""

    model_config = ConfigDict(extra="ignore")

    source: str
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]


class JobStateChange(BaseModel):
    """A job's new state, whichever engine ran it.

    ``job_run_id`` is the EMR Serverless job run id or the Step Functions execution ARN; ``owner`` the
    EMR Serverless application id or the state machine ARN the job belongs to.
    """

    model_config = ConfigDict(frozen=True)

    job_run_id: str
    owner: str
    state: str
    details: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


def job_state_change(event: dict[str, Any]) -> JobStateChange:
    """Normalize an EMR Serverless job run or Step Functions execution state-change event.

    Raises
    ------
    ValueError
        For any other event (the EventBridge rule should deliver only these two).
    """
    envelope = EventBridgeEvent.model_validate(event)
    if envelope.source == "aws.emr-serverless" and envelope.detail_type == "EMR Serverless Job Run State Change":
        emr = EmrServerlessJobRunDetail.model_validate(envelope.detail)
        return JobStateChange(job_run_id=emr.job_run_id, owner=emr.application_id, state=emr.state,
                              details=emr.state_details)
    if envelope.source == "aws.states" and envelope.detail_type == "Step Functions Execution Status Change":
        execution = StepFunctionsExecutionDetail.model_validate(envelope.detail)
        details = ": ".join(part for part in (execution.error, execution.cause) if part) or None
        return JobStateChange(job_run_id=execution.execution_arn, owner=execution.state_machine_arn,
                              state=STEP_FUNCTIONS_STATES.get(execution.status, execution.status), details=details)
    raise ValueError(f"not a job state-change event: source {envelope.source!r}, "
                     f"detail-type {envelope.detail_type!r}")
