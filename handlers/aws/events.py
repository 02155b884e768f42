"""Typed views of the AWS events the handlers receive (in the style of aws-lambda-powertools' parser models).

* S3 notifications (``{"Records": [{"eventSource": "aws:s3", ...}]}``), invoked directly by S3.
* EventBridge ``EMR Serverless Job Run State Change`` and, for the emr-ec2 engine, ``Step Functions
  Execution Status Change``; both are normalized to the contract's ``JobStateChange``, so the run logic
  does not care which engine ran the job.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field

from handlers.aws.runners import STEP_FUNCTIONS_STATES
from predictd_core.cloud.contract import ObjectVersion
from predictd_core.cloud.states import JobStateChange


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


def created_objects(event: dict[str, Any], accept) -> list[ObjectVersion]:
    """The object versions an S3 notification reports created whose key ``accept(key)`` takes.

    Raises
    ------
    ValueError
        For a created object without ``versionId``: the bucket must have versioning enabled, since runs
        are keyed by the version.
    """
    found = []
    for record in S3Event.model_validate(event).records:
        key = unquote_plus(record.s3.object.key)
        if not record.event_name.startswith("ObjectCreated:") or not accept(key):
            continue
        if not record.s3.object.version_id:
            raise ValueError(f"s3://{record.s3.bucket.name}/{key}: the event has no versionId; "
                             "the bucket must have versioning enabled")
        found.append(ObjectVersion(cloud="aws", store=record.s3.bucket.name, key=key,
                                   version_id=record.s3.object.version_id))
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
