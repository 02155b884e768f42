"""The handlers against AWS as moto serves it: one ThreadedMotoServer on 127.0.0.1 for the session, reset
before every test, reached by boto3 through ``AWS_ENDPOINT_URL`` with fake credentials.

S3 events are real notification JSON: the bucket (versioned) notifies an SQS queue, exactly as the stack
makes it notify the Lambda functions (``configs/`` ``*.yaml`` and ``*.yml``, ``data/``); a test receives
the messages and hands each body to a handler as S3 would invoke it. moto 5.2.1 leaves two fields of
the documented record out (``s3.object.versionId`` for a versioned bucket, and ``sequencer``); the
session adds them to moto's event builder so that the records have the shape AWS sends.

EMR Serverless: moto records ``StartJobRun`` (arguments, tags and client token) but neither runs jobs nor
deduplicates client tokens nor emits events; the tests play the engine: they read the recorded job runs,
write what the job would have written and send the documented EventBridge state-change event to the
job-state handler. A local executor running the recorded entry points can do the same with real jobs.
"""

from __future__ import annotations

import functools
import json
import threading
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account: EMR Serverless refuses a job role of another account
BUCKET = "predictd-test-bucket"
TABLE = "predictd-ledger"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/predictd-job"
# What GetJobRun says of a failed job run (EMR Serverless' words).
FAILED_DETAILS = "Job failed, please check complete logs in configured logging destination. ExitCode: 1."
NOTIFIED = [("configs/", ".yaml"), ("configs/", ".yml"), ("data/", "")]  # what the stack sends to the handlers


def _holding(lock, method):
    """``method`` run while holding ``lock``."""
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with lock:
            return method(*args, **kwargs)
    return locked


@pytest.fixture(scope="session")
def moto_endpoint():
    """One moto server for every handler test, on a free loopback port; S3 records as AWS sends them."""
    from moto.s3 import notifications
    from moto.server import ThreadedMotoServer

    original = notifications._get_s3_event

    def documented_record(event_name, bucket, key, notification_id):
        event = original(event_name, bucket, key, notification_id)
        obj = event["Records"][0]["s3"]["object"]
        if bucket.is_versioned:
            obj["versionId"] = key.version_id
        obj["sequencer"] = f"{uuid.uuid4().int >> 64:016X}"
        return event

    patch = pytest.MonkeyPatch()
    patch.setattr(notifications, "_get_s3_event", documented_record)
    # DynamoDB applies a conditional write atomically; moto's server checks the condition and writes in whichever
    # threads its requests arrive on, so two racing conditional puts could both succeed (seen under load in
    # test_concurrent_ledger_writers_have_one_winner_per_transition). One lock over its writes restores the
    # guarantee the ledger relies on.
    from moto.dynamodb.models import DynamoDBBackend

    writes = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
        patch.setattr(DynamoDBBackend, name, _holding(writes, getattr(DynamoDBBackend, name)))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    patch.undo()


@dataclass
class Cloud:
    """The deployment's resources in moto, and the moves of S3, EMR and EventBridge that tests play."""

    endpoint: str
    events_queue: str
    notices_queue: str
    topic_arn: str
    application_id: str
    s3: Any = field(repr=False)
    sqs: Any = field(repr=False)
    emr: Any = field(repr=False)
    dynamodb: Any = field(repr=False)
    bucket: str = BUCKET

    # ------------------------------------------------------------------------------------------- S3

    def put(self, key: str, body: str | bytes) -> list[dict[str, Any]]:
        """PUT an object; returns the S3 notification events it caused (the bodies SQS received)."""
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)
        return self.s3_events()

    def s3_events(self) -> list[dict[str, Any]]:
        """Every S3 event waiting in the queue (removed from it), without S3's ``s3:TestEvent``."""
        return [body for body in self._drain(self.events_queue) if body.get("Event") != "s3:TestEvent"]

    def text(self, key: str) -> str:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    # ------------------------------------------------------------------------------------------ SNS

    def notifications(self) -> list[dict[str, Any]]:
        """The run notifications published since the last call (through the topic's SQS subscription)."""
        return [{"subject": body.get("Subject"), **json.loads(body["Message"])}
                for body in self._drain(self.notices_queue)]

    def _drain(self, queue_url: str) -> list[dict[str, Any]]:
        bodies = []
        while messages := self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    # ------------------------------------------------------------------------------------------ EMR

    def job_runs(self) -> list[dict[str, Any]]:
        """Every job run moto recorded, in start order: id, predictd argv, entry point, tags, client token."""
        from moto.emrserverless.models import emrserverless_backends

        recorded = emrserverless_backends[ACCOUNT][REGION].job_runs.get(self.application_id, [])
        runs = []
        for job_run in recorded:
            described = self.emr.get_job_run(applicationId=self.application_id, jobRunId=job_run.id)["jobRun"]
            spark_submit = described["jobDriver"]["sparkSubmit"]
            runs.append({"id": job_run.id, "args": spark_submit["entryPointArguments"],
                         "entry_point": spark_submit["entryPoint"], "tags": described.get("tags", {}),
                         "client_token": job_run.client_token, "role": job_run.execution_role_arn,
                         "spark_parameters": spark_submit.get("sparkSubmitParameters")})
        return runs

    def job_run(self, *args: str) -> dict[str, Any]:
        """The one recorded job run whose argv starts with ``args`` (the latest attempt when several)."""
        matching = [run for run in self.job_runs() if run["args"][:len(args)] == list(args)]
        assert matching, f"no job run with arguments {args}"
        return matching[-1]

    def set_job_state(self, job_run_id: str, state: str) -> None:
        """The engine's side of a state change: what ``GetJobRun`` answers from now on (a failed job's
        reason is only there: the state-change event carries none)."""
        from moto.emrserverless.models import emrserverless_backends

        for job_run in emrserverless_backends[ACCOUNT][REGION].job_runs.get(self.application_id, []):
            if job_run.id == job_run_id:
                job_run.state = state
                job_run.state_details = FAILED_DETAILS if state == "FAILED" else None

    def state_change(self, job_run_id: str, state: str, previous: str = "RUNNING") -> dict[str, Any]:
        """An ``EMR Serverless Job Run State Change`` event as EventBridge delivers it: the documented
        sample's fields, no ``stateDetails``. The job run's state in moto moves with it."""
        self.set_job_state(job_run_id, state)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        detail = {"jobRunId": job_run_id, "applicationId": self.application_id,
                  "arn": f"arn:aws:emr-serverless:{REGION}:{ACCOUNT}:/applications/{self.application_id}"
                         f"/jobruns/{job_run_id}",
                  "releaseLabel": "emr-7.5.0", "state": state, "previousState": previous,
                  "createdBy": f"arn:aws:sts::{ACCOUNT}:assumed-role/predictd-handlers/on_config",
                  "updatedAt": stamp, "createdAt": stamp}
        return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "EMR Serverless Job Run State Change",
                "source": "aws.emr-serverless", "account": ACCOUNT, "time": stamp, "region": REGION,
                "resources": [], "detail": detail}

    def write_job_outputs(self, job_run: dict[str, Any]) -> None:
        """What a successful job writes that the handlers check: a fold's model files in its --model-dir,
        the finish job's manifest.json (with two outputs) last."""
        args = job_run["args"]
        if args[0] == "train":
            model_dir = args[args.index("--model-dir") + 1].removeprefix(f"s3://{self.bucket}/")
            self.s3.put_object(Bucket=self.bucket, Key=f"{model_dir}/factors.npz", Body=b"factors of " + model_dir.encode())
            self.s3.put_object(Bucket=self.bucket, Key=f"{model_dir}/model.json", Body=json.dumps({"dir": model_dir}))
        elif args[0] == "cv":
            run_prefix = args[1].removeprefix(f"s3://{self.bucket}/").removesuffix("config.yaml")
            self.s3.put_object(Bucket=self.bucket, Key=f"{run_prefix}report.html", Body=b"<html></html>")
            self.s3.put_object(Bucket=self.bucket, Key=f"{run_prefix}metrics.tsv", Body=b"target\tMSEglobal\n")
            self.s3.put_object(Bucket=self.bucket, Key=f"{run_prefix}manifest.json",
                               Body=json.dumps({"outputs": ["metrics.tsv", "report.html"]}))


def ledger_of(cloud: Cloud):
    """The deployment's run ledger (DynamoDB), as the handlers read it."""
    from handlers.aws.records import DynamoRecords
    from predictd_core.cloud.ledger import Ledger

    return Ledger(DynamoRecords(cloud.dynamodb, TABLE))


def _reset(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).read()


@pytest.fixture
def cloud(moto_endpoint, monkeypatch) -> Cloud:
    """A fresh deployment in moto: versioned bucket notifying a queue, ledger table (bucket-tagged), EMR
    Serverless application, SNS topic with a queue subscribed, and the handlers' environment."""
    from handlers.aws.runtime import runtime

    _reset(moto_endpoint)
    from moto.emrserverless import models as emr_models

    monkeypatch.setattr(emr_models, "JOB_STATUS", "SUBMITTED")  # moto starts job runs SUCCESS; EMR, SUBMITTED
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "PREDICTD_MAX_ATTEMPTS", "PREDICTD_ENGINE",
                 "PREDICTD_STATE_MACHINE_ARN", "PREDICTD_SPARK_PARAMETERS", "PREDICTD_ENTRY_POINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    s3, sqs, sns = boto3.client("s3"), boto3.client("sqs"), boto3.client("sns")
    emr, dynamodb = boto3.client("emr-serverless"), boto3.client("dynamodb")

    events_queue = sqs.create_queue(QueueName="s3-events")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "predictd:ledger-table", "Value": TABLE}]})
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [
        {"QueueArn": events_arn, "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": [
            {"Name": "prefix", "Value": prefix}, *([{"Name": "suffix", "Value": suffix}] if suffix else [])]}}}
        for prefix, suffix in NOTIFIED]})
    dynamodb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                {"AttributeName": "sk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                     {"AttributeName": "sk", "KeyType": "RANGE"}])
    application_id = emr.create_application(name="predictd", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
    topic_arn = sns.create_topic(Name="predictd-runs")["TopicArn"]
    notices_queue = sqs.create_queue(QueueName="run-notices")["QueueUrl"]
    notices_arn = sqs.get_queue_attributes(QueueUrl=notices_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=notices_arn)

    for name, value in {"PREDICTD_BUCKET": BUCKET, "PREDICTD_LEDGER_TABLE": TABLE, "PREDICTD_TOPIC_ARN": topic_arn,
                        "PREDICTD_APPLICATION_ID": application_id, "PREDICTD_JOB_ROLE_ARN": ROLE_ARN,
                        "PREDICTD_REPROCESS_DELAY": "0"}.items():  # new data: due at the next tick
        monkeypatch.setenv(name, value)
    runtime.cache_clear()
    made = Cloud(moto_endpoint, events_queue, notices_queue, topic_arn, application_id, s3, sqs, emr, dynamodb)
    made.s3_events()  # the s3:TestEvent the notification configuration sent
    yield made
    runtime.cache_clear()


# ---------------------------------------------------------------------------------------- a compendium

PILOT_CONFIG = """\
# a cross-validated run of the pilot tracks (paths relative to this file)
tracks: ../data/pilot/tracks.tsv
chrom_sizes: ../data/pilot/chrom.sizes
holdout: [E004:H3K27me3]
model: {rank: 4, solver: als}
cv: {n_test: 2, n_valid: 2, seed: 3}
evaluation: {promoters: ../data/pilot/promoters.bed, browser_regions: ["chr1:1000-2000"]}
engine: {master: "local[2]", spark_conf: {spark.executor.memory: 2g}}
output: local-output
"""
PILOT_TRACKS = [("E003", "H3K4me3"), ("E003", "H3K27me3"), ("E004", "H3K4me3"), ("E004", "H3K27me3")]


def tracks_table(rows: list[tuple[str, str]]) -> str:
    """A tracks TSV whose paths are relative to its folder, with a comment line."""
    lines = ["# pilot compendium", "cell_type\tassay\tpath", *(f"{c}\t{a}\t{c}.{a}.bigWig" for c, a in rows)]
    return "\n".join(lines) + "\n"


def upload_compendium(cloud: Cloud, folder: str, rows: list[tuple[str, str]] = PILOT_TRACKS) -> None:
    """The tracks table, its bigWigs (placeholder bytes: the handlers never read them), chrom sizes and a
    promoter BED under ``folder``; the S3 events they cause are dropped (nothing to reprocess yet)."""
    for cell, assay in rows:
        cloud.put(f"{folder}/{cell}.{assay}.bigWig", f"signal of {cell} {assay}")
    cloud.put(f"{folder}/tracks.tsv", tracks_table(rows))
    cloud.put(f"{folder}/chrom.sizes", "chr1\t5000\n")
    cloud.put(f"{folder}/promoters.bed", "chr1\t100\t300\n")
    cloud.s3_events()


def drop_config(cloud: Cloud, name: str = "pilot", text: str = PILOT_CONFIG) -> dict[str, Any]:
    """Upload ``configs/NAME.yaml`` and return the one S3 event it caused."""
    events = cloud.put(f"configs/{name}.yaml", text)
    assert len(events) == 1 and len(events[0]["Records"]) == 1
    return events[0]


# ------------------------------------------------------------------------------------------- playing EMR

FOLDS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # PILOT_CONFIG's 2 x 2 fold models


def deliver(cloud: Cloud, job_run: dict[str, Any], state: str, outputs: bool = True) -> dict[str, Any]:
    """Play the engine: a successful job writes its outputs first; then EventBridge delivers the event."""
    from handlers import on_job_state

    if state == "SUCCESS" and outputs:
        cloud.write_job_outputs(job_run)
    return on_job_state.handler(cloud.state_change(job_run["id"], state), None)


def fold_run(cloud: Cloud, i: int, j: int) -> dict[str, Any]:
    """The latest attempt's job run of fold model (i, j)."""
    return cloud.job_run("train", cloud.job_runs()[0]["args"][1], "--test-fold", str(i), "--valid-fold", str(j))


@pytest.fixture
def training(cloud) -> str:
    """The pilot config's run after its prepare job succeeded: four fold jobs started. Returns the run id."""
    from handlers import on_config

    upload_compendium(cloud, "data/pilot")
    [run] = on_config.handler(drop_config(cloud), None)["runs"]
    result = deliver(cloud, cloud.job_run("folds"), "SUCCESS")
    assert result["action"] == "started the fold jobs"
    return run["run_id"]
