"""One deployment per cloud, driven the same way, so that one table of run scenarios checks both.

Each ``Deployment`` plays its cloud's services as they behave: an upload returns the events its store
sends (S3 notification records from moto's queue; Event Grid ``Microsoft.Storage.BlobCreated`` events in
the documented schema, built from the blob Azurite stored), ``deliver`` hands them to the cloud's handler
entry point, the started jobs are read from the engine (moto's EMR Serverless job runs; the local Batch
service's tasks), and ``report`` ends or moves a job as the engine would tell it (an EventBridge state
change to the job-state Lambda; a Batch task state that the timer function then reads). The run logic
underneath is the one of ``predictd_core.cloud.runs``.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus

from azure.core.credentials import AzureNamedKeyCredential

from predictd_core.cloud.contract import MODEL_FILES
from predictd_core.cloud.ledger import Ledger
from predictd_core.cloud.ports import ObjectStore
from tests.azure_support import AllowPlainHttp, StaticCredential

IMAGE = "predictdregistry.azurecr.io/predictd:test"
ENTRY_POINT = "/opt/predictd/entrypoint.py"


@dataclass
class Job:
    """A job the engine was asked to run: its id (the job run id the ledger knows) and predictd argv."""

    id: str
    args: list[str]
    nodes: int = 1
    depends_on: list[str] = field(default_factory=list)


def write_outputs(store: ObjectStore, job: Job) -> None:
    """What a successful job writes that the run logic checks: a fold's model files in its --model-dir,
    the finish job's metrics, report and manifest.json (listing them) last."""
    if job.args[0] == "train":
        model_dir = job.args[job.args.index("--model-dir") + 1].removeprefix(store.root)
        for name in MODEL_FILES:
            store.put(f"{model_dir}/{name}", json.dumps({"file": name, "dir": model_dir}).encode(), "application/json")
    elif job.args[0] == "cv":
        prefix = job.args[1].removeprefix(store.root).removesuffix("config.yaml")
        store.put(f"{prefix}report.html", b"<html></html>", "text/html")
        store.put(f"{prefix}metrics.tsv", b"target\tMSEglobal\n", "text/tab-separated-values")
        store.put(f"{prefix}manifest.json", json.dumps({"outputs": ["metrics.tsv", "report.html"]}).encode(),
                  "application/json")


class Deployment:
    """What both clouds' deployments share: the run logic's ports, as the handlers build them (``rt``)."""

    rt: Any

    @property
    def ledger(self) -> Ledger:
        return self.rt.ledger

    @property
    def store(self) -> ObjectStore:
        return self.rt.store


class AwsDeployment(Deployment):
    """The AWS deployment in moto (tests/handlers/conftest.py's ``Cloud``), its Lambda handlers."""

    cloud = "aws"

    def __init__(self, moto_cloud) -> None:
        from handlers.aws.runtime import current_runtime

        self.moto = moto_cloud
        self.rt = current_runtime()

    def put(self, key: str, payload: str | bytes) -> list[dict[str, Any]]:
        return self.moto.put(key, payload)

    def deliver(self, events: list[dict[str, Any]]) -> None:
        from handlers import on_config, on_data

        for event in events:
            key = unquote_plus(event["Records"][0]["s3"]["object"]["key"])
            (on_config if key.startswith("configs/") else on_data).handler(event, None)

    def jobs(self) -> list[Job]:
        return [Job(run["id"], run["args"]) for run in self.moto.job_runs()]

    def report(self, job: Job, state: str, details: str | None = None) -> None:
        from handlers import on_job_state

        event = self.moto.state_change(job.id, state)
        if details:
            event["detail"]["stateDetails"] = details
        on_job_state.handler(event, None)

    def complete_silently(self, job: Job, state: str) -> None:
        """The job ends in EMR Serverless, and its state event is lost."""
        self.moto.set_job_state(job.id, state)

    def tick(self) -> None:
        """The scheduled tick (EventBridge rule -> on_schedule Lambda)."""
        from handlers import on_schedule

        on_schedule.handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, None)

    def engine_state(self, job: Job) -> str:
        return self.rt.runner.status(job.id).state

    def notifications(self) -> list[dict[str, Any]]:
        return self.moto.notifications()

    def engine_released(self, run_id: str) -> bool:
        """EMR Serverless holds nothing per run."""
        return True

    def tags(self, key: str) -> dict[str, str]:
        tags = self.moto.s3.get_object_tagging(Bucket=self.moto.bucket, Key=key)["TagSet"]
        return {tag["Key"]: tag["Value"] for tag in tags}


class AzureDeployment(Deployment):
    """The Azure deployment: Azurite's Blob, Table and Queue storage, the local Batch service, and the
    function app's two functions (Event Grid trigger, timer trigger) called as the host calls them."""

    cloud = "azure"

    def __init__(self, emulator, service, monkeypatch) -> None:
        import handlers.azure.runtime as azure_runtime
        from azure.data.tables import TableServiceClient
        from azure.storage.queue import QueueServiceClient

        from predictd_core.cloud.settings import AZURE_LEDGER_TABLE, AZURE_NOTICE_QUEUE
        from tests.azure_support import create_containers

        self.emulator, self.service = emulator, service
        self.blobs = create_containers(emulator)
        for container in ("configs", "data", "runs"):
            client = self.blobs.get_container_client(container)
            for blob in list(client.list_blobs(include=["versions"])):
                client.delete_blob(blob.name)
        tables = TableServiceClient.from_connection_string(emulator.connection_string)
        tables.delete_table(AZURE_LEDGER_TABLE)
        tables.create_table(AZURE_LEDGER_TABLE)
        queues = QueueServiceClient.from_connection_string(emulator.connection_string)
        self.queue = queues.get_queue_client(AZURE_NOTICE_QUEUE)
        try:
            self.queue.create_queue()
        except Exception:  # noqa: BLE001 (azure's ResourceExistsError: the session's tests share the queue)
            self.queue.clear_messages()
        environment = {"PREDICTD_STORAGE_ACCOUNT": emulator.account, "PREDICTD_BLOB_ENDPOINT": emulator.blob_endpoint,
                       "PREDICTD_TABLE_ENDPOINT": emulator.table_endpoint,
                       "PREDICTD_QUEUE_ENDPOINT": emulator.queue_endpoint, "PREDICTD_BATCH_ENDPOINT": service.url,
                       "PREDICTD_IMAGE": IMAGE, "PREDICTD_JOB_IDENTITY_CLIENT_ID": "job-identity-client-id",
                       "PREDICTD_REPROCESS_DELAY": "0"}  # new data: due at the next tick
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("PREDICTD_MAX_ATTEMPTS", raising=False)
        key = AzureNamedKeyCredential(emulator.account, emulator.key)
        monkeypatch.setattr(azure_runtime, "credentials",
                            lambda: (key, StaticCredential(), {"per_call_policies": [AllowPlainHttp()]}))
        azure_runtime._cached.cache_clear()
        self.rt = azure_runtime.current_runtime()

    def put(self, key: str, payload: str | bytes) -> list[dict[str, Any]]:
        """Upload a blob; returns the BlobCreated event Event Grid sends for it (documented schema)."""
        container, _, name = key.partition("/")
        data = payload.encode() if isinstance(payload, str) else payload
        uploaded = self.blobs.get_blob_client(container, name).upload_blob(data, overwrite=True)
        return [blob_created_event(self.emulator.account, container, name, uploaded["etag"], len(data),
                                   f"{self.emulator.blob_endpoint}/{container}/{name}")]

    def deliver(self, events: list[dict[str, Any]]) -> None:
        import azure.functions as func

        from handlers.azure.functions import on_blob_created

        for event in events:
            on_blob_created(func.EventGridEvent(
                id=event["id"], data=event["data"], topic=event["topic"], subject=event["subject"],
                event_type=event["eventType"], event_time=datetime.fromisoformat(event["eventTime"]),
                data_version=event["dataVersion"]))

    def jobs(self) -> list[Job]:
        jobs = []
        for task in self.service.tasks():
            words = shlex.split(task["commandLine"])
            if words[:2] == ["/bin/sh", "-c"]:  # a multi-instance task's application command
                words = shlex.split(words[2])
            args = words[words.index(ENTRY_POINT) + 1:] if ENTRY_POINT in words else words
            nodes = (task.get("multiInstanceSettings") or {}).get("numberOfInstances", 1)
            jobs.append(Job(f"{task['jobId']}/{task['id']}", args, nodes,
                            (task.get("dependsOn") or {}).get("taskIds", [])))
        return jobs

    def report(self, job: Job, state: str, details: str | None = None, exit_code: int = 1) -> None:
        """Batch's side of a state (the task's state or exit), then the timer function reads it."""
        self.complete_silently(job, state, details, exit_code)
        self.tick()

    def complete_silently(self, job: Job, state: str, details: str | None = None, exit_code: int = 1) -> None:
        """The task's state in Batch, which nobody is told of (Batch sends no events)."""
        job_id, task_id = job.id.split("/")
        if state == "SUCCESS":
            self.service.complete(job_id, task_id, 0)
        elif state == "FAILED":
            self.service.complete(job_id, task_id, exit_code, details or "the task failed")
        elif state == "CANCELLED":  # a person terminated the task
            self.rt.runner.cancel(job.id)
        else:
            self.service.set_state(job_id, task_id, "running")

    def tick(self) -> None:
        """The function app's timer."""
        from handlers.azure.functions import advance_runs

        advance_runs(None)

    def engine_state(self, job: Job) -> str:
        return self.rt.runner.status(job.id).state

    def notifications(self) -> list[dict[str, Any]]:
        """The notices sent since the last call (Base64 JSON ``{"subject", "body"}`` messages), flattened
        as the AWS deployment's are."""
        notices = []
        for message in self.queue.receive_messages(messages_per_page=32):
            notice = json.loads(base64.b64decode(message.content))
            notices.append({"subject": notice["subject"], **notice["body"]})
            self.queue.delete_message(message)
        return notices

    def engine_released(self, run_id: str) -> bool:
        """Whether the run's Batch job was terminated (active jobs count against the account's quota)."""
        from handlers.azure.batch import batch_job_id

        return self.service.jobs[batch_job_id(run_id)]["state"] in ("terminating", "completed")

    def tags(self, key: str) -> dict[str, str]:
        container, _, name = key.partition("/")
        return self.blobs.get_blob_client(container, name).get_blob_tags()


def blob_created_event(account: str, container: str, name: str, etag: str, length: int, url: str) -> dict[str, Any]:
    """A ``Microsoft.Storage.BlobCreated`` event as Event Grid delivers it (Event Grid schema)."""
    return {
        "topic": f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/predictd/providers/"
                 f"Microsoft.Storage/storageAccounts/{account}",
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": datetime.now(timezone.utc).isoformat(),
        "id": str(uuid.uuid4()),
        "data": {"api": "PutBlob", "clientRequestId": str(uuid.uuid4()), "requestId": str(uuid.uuid4()),
                 "eTag": etag, "contentType": "application/octet-stream", "contentLength": length,
                 "blobType": "BlockBlob", "url": url, "sequencer": f"{uuid.uuid4().int >> 64:032X}",
                 "storageDiagnostics": {"batchId": str(uuid.uuid4())}},
        "dataVersion": "",
        "metadataVersion": "1",
    }
