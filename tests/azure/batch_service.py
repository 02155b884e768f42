"""A local Azure Batch account: the subset of the Batch REST API that ``handlers/azure/batch.py`` calls.

Served over plain HTTP on a free loopback port (``ThreadingHTTPServer``), in the shape the real service
answers: JSON bodies (``application/json; odata=minimalmetadata``), the status codes of the REST reference
and Batch's OData error bodies (``{"code": "TaskExists", "message": {"lang": "en-US", "value": ...}}``),
which azure-batch turns into ``ResourceExistsError`` / ``ResourceNotFoundError`` carrying the code.

    GET  /pools/{pool}                          Pool - Get
    POST /jobs                                  Job - Add (JobExists)
    GET  /jobs/{job}                            Job - Get
    POST /jobs/{job}/terminate                  Job - Terminate
    POST /jobs/{job}/tasks                      Task - Add (TaskExists, dependencies, multi-instance)
    GET  /jobs/{job}/tasks                      Task - List
    GET  /jobs/{job}/tasks/{task}               Task - Get ($select honoured)
    POST /jobs/{job}/tasks/{task}/terminate     Task - Terminate (TaskCompleted)

Nothing runs here: a test drives a task's lifecycle with :meth:`BatchService.set_state` and
:meth:`BatchService.complete` (or lets ``tests/azure/executor.py`` run it). Every request is recorded
(method, path, query, headers, JSON body) for assertions.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DEFAULT_FAILURE = "The task exited with an exit code representing a failure"
_ERRORS = {  # Batch error code -> (HTTP status, the service's message)
    "PoolNotFound": (404, "The specified pool does not exist."),
    "JobNotFound": (404, "The specified job does not exist."),
    "TaskNotFound": (404, "The specified task does not exist."),
    "JobExists": (409, "The specified job already exists."),
    "TaskExists": (409, "The specified task already exists."),
    "JobCompleted": (409, "The specified job is already in a completed state."),
    "TaskCompleted": (409, "The specified task is already completed."),
    "TaskDependenciesNotSpecifiedOnJob": (
        409, "The specified job does not have the usesTaskDependencies property set to true."),
    "InvalidPropertyValue": (400, "The value provided for one of the properties in the request body is invalid."),
    "MissingRequiredProperty": (400, "A required property was not specified in the request body."),
    "AuthenticationFailed": (401, "Server failed to authenticate the request."),
    "MissingRequiredQueryParameter": (400, "A query parameter that's mandatory for this request is not specified."),
    "InvalidUri": (400, "The requested URI does not represent any resource on the server."),
}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Request:
    """One request the service received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


class BatchError(Exception):
    def __init__(self, code: str, details: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.details = details or {}


@dataclass
class BatchService:
    """A Batch account with ``pools`` (pool ids), served on ``127.0.0.1`` while started.

    Use as a context manager (or :meth:`start` / :meth:`stop`); :attr:`url` is the account endpoint.
    """

    pools: tuple[str, ...] = ("predictd",)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_table: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> BatchService:
        service = self

        class Handler(_Handler):
            batch = service

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="batch-service", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> BatchService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the service is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------------------- test helpers

    def tasks(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """Copies of the stored tasks (of ``job_id``, or of every job), in the order they were added;
        each carries ``jobId``."""
        with self._lock:
            jobs = [job_id] if job_id is not None else list(self.task_table)
            return [copy.deepcopy({**task, "jobId": job}) for job in jobs
                    for task in self.task_table.get(job, {}).values()]

    def task(self, job_id: str, task_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._task(job_id, task_id))

    def requests_to(self, method: str, path: str) -> list[Request]:
        """The recorded requests of ``method`` to exactly ``path``."""
        return [r for r in self.requests if r.method == method and r.path == path]

    def set_state(self, job_id: str, task_id: str, state: str) -> None:
        """Move a task to ``active``, ``preparing`` or ``running`` (use :meth:`complete` to end it)."""
        if state not in ("active", "preparing", "running"):
            raise ValueError(f"set_state takes active, preparing or running, not {state!r}: use complete()")
        with self._lock:
            task = self._task(job_id, task_id)
            self._transition(task, state)
            if state == "running":
                task["executionInfo"] = {"startTime": _now(), "retryCount": 0, "requeueCount": 0}
                task["nodeInfo"] = {"poolId": self.jobs[job_id]["poolInfo"]["poolId"], "nodeId": "tvmps_local"}

    def complete(self, job_id: str, task_id: str, exit_code: int, message: str | None = None,
                 code: str = "FailureExitCode") -> None:
        """End a task with ``exit_code``: success for 0, else failure with failureInfo (``code``,
        ``message``), as Batch records a task whose process exited so."""
        with self._lock:
            task = self._task(job_id, task_id)
            info = task.setdefault("executionInfo", {"startTime": _now(), "retryCount": 0, "requeueCount": 0})
            info.update(endTime=_now(), exitCode=exit_code, result="success" if exit_code == 0 else "failure")
            if exit_code != 0:
                info["failureInfo"] = {"category": "usererror", "code": code,
                                       "message": message or _DEFAULT_FAILURE}
            self._transition(task, "completed")

    # ---------------------------------------------------------------------------------- the API

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Answer one request: (HTTP status, JSON body or None)."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        with self._lock:
            if method == "GET" and len(parts) == 2 and parts[0] == "pools":
                return 200, self._get_pool(parts[1], query)
            if parts[0] != "jobs":
                raise BatchError("InvalidUri")
            if method == "POST" and len(parts) == 1:
                return 201, self._add_job(body)
            if len(parts) >= 2 and parts[1] not in self.jobs:
                raise BatchError("JobNotFound")
            if method == "GET" and len(parts) == 2:
                return 200, _select(self._job_view(parts[1]), query)
            if method == "POST" and parts[2:] == ["terminate"]:
                return 202, self._terminate_job(parts[1])
            if parts[2:3] != ["tasks"]:
                raise BatchError("InvalidUri")
            if method == "POST" and len(parts) == 3:
                return 201, self._add_task(parts[1], body)
            if method == "GET" and len(parts) == 3:
                tasks = [_select(self._task_view(parts[1], t), query) for t in self.task_table[parts[1]]]
                return 200, {"odata.metadata": self._metadata("tasks"), "value": tasks}
            if method == "GET" and len(parts) == 4:
                self._task(parts[1], parts[3])
                return 200, _select(self._task_view(parts[1], parts[3]), query)
            if method == "POST" and len(parts) == 5 and parts[4] == "terminate":
                return 204, self._terminate_task(parts[1], parts[3])
        raise BatchError("InvalidUri")

    def _get_pool(self, pool_id: str, query: dict[str, str]) -> dict[str, Any]:
        if pool_id not in self.pools:
            raise BatchError("PoolNotFound")
        pool = {"odata.metadata": self._metadata("pools/@Element"), "id": pool_id,
                "url": f"{self.url}/pools/{pool_id}", "state": "active", "allocationState": "steady",
                "vmSize": "standard_d4s_v5", "targetDedicatedNodes": 0, "targetLowPriorityNodes": 0,
                "enableAutoScale": True, "taskSlotsPerNode": 1}
        return _select(pool, query)

    def _add_job(self, body: dict[str, Any]) -> None:
        job_id = body.get("id")
        if not job_id:
            raise BatchError("MissingRequiredProperty", {"PropertyName": "id"})
        if not _ID.fullmatch(job_id):
            raise BatchError("InvalidPropertyValue", {"PropertyName": "id", "PropertyValue": job_id})
        if "poolInfo" not in body:
            raise BatchError("MissingRequiredProperty", {"PropertyName": "poolInfo"})
        if job_id.lower() in {j.lower() for j in self.jobs}:  # Batch ids are case-insensitive
            raise BatchError("JobExists")
        now = _now()
        self.jobs[job_id] = {**body, "state": "active", "creationTime": now, "stateTransitionTime": now,
                             "onAllTasksComplete": body.get("onAllTasksComplete", "noaction"),
                             "onTaskFailure": body.get("onTaskFailure", "noaction"),
                             "usesTaskDependencies": body.get("usesTaskDependencies", False),
                             "executionInfo": {"startTime": now, "poolId": body["poolInfo"].get("poolId")}}
        self.task_table[job_id] = {}

    def _job_view(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        return {"odata.metadata": self._metadata("jobs/@Element"), **copy.deepcopy(job),
                "url": f"{self.url}/jobs/{job_id}", "eTag": _etag(job), "lastModified": job["stateTransitionTime"]}

    def _terminate_job(self, job_id: str) -> None:
        job = self.jobs[job_id]
        if job["state"] in ("terminating", "completed"):
            raise BatchError("JobCompleted")
        for task in self.task_table[job_id].values():  # running tasks end; active ones stay active, unscheduled
            if task["state"] in ("running", "preparing"):
                self._end_by_request(task)
        job["state"] = "completed"
        job["stateTransitionTime"] = job["executionInfo"]["endTime"] = _now()
        job["executionInfo"]["terminateReason"] = "UserTerminate"

    def _add_task(self, job_id: str, body: dict[str, Any]) -> None:
        job = self.jobs[job_id]
        if job["state"] != "active":
            raise BatchError("JobCompleted")
        for name in ("id", "commandLine"):
            if not body.get(name):
                raise BatchError("MissingRequiredProperty", {"PropertyName": name})
        task_id = body["id"]
        if not _ID.fullmatch(task_id):
            raise BatchError("InvalidPropertyValue", {"PropertyName": "id", "PropertyValue": task_id})
        if task_id.lower() in {t.lower() for t in self.task_table[job_id]}:
            raise BatchError("TaskExists")
        if body.get("dependsOn") and not job["usesTaskDependencies"]:
            raise BatchError("TaskDependenciesNotSpecifiedOnJob")
        multi = body.get("multiInstanceSettings")
        if multi is not None and not multi.get("coordinationCommandLine"):
            raise BatchError("MissingRequiredProperty", {"PropertyName": "coordinationCommandLine"})
        now = _now()
        self.task_table[job_id][task_id] = {**copy.deepcopy(body), "state": "active", "creationTime": now,
                                            "stateTransitionTime": now}

    def _task(self, job_id: str, task_id: str) -> dict[str, Any]:
        try:
            return self.task_table[job_id][task_id]
        except KeyError:
            raise BatchError("JobNotFound" if job_id not in self.jobs else "TaskNotFound") from None

    def _task_view(self, job_id: str, task_id: str) -> dict[str, Any]:
        task = self.task_table[job_id][task_id]
        return {"odata.metadata": self._metadata("tasks/@Element"), **copy.deepcopy(task),
                "url": f"{self.url}/jobs/{job_id}/tasks/{task_id}", "eTag": _etag(task),
                "lastModified": task["stateTransitionTime"]}

    def _terminate_task(self, job_id: str, task_id: str) -> None:
        task = self._task(job_id, task_id)
        if task["state"] == "completed":
            raise BatchError("TaskCompleted")
        self._end_by_request(task)

    def _end_by_request(self, task: dict[str, Any]) -> None:
        info = task.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        info.update(endTime=_now(), result="failure",
                    failureInfo={"category": "usererror", "code": "TaskEnded",
                                 "message": "Task Was Ended by User Request"})
        if task["state"] == "running":
            info["exitCode"] = 137  # the OS's code for the killed process
        self._transition(task, "completed")

    @staticmethod
    def _transition(task: dict[str, Any], state: str) -> None:
        task["previousState"], task["previousStateTransitionTime"] = task["state"], task["stateTransitionTime"]
        task["state"], task["stateTransitionTime"] = state, _now()

    def _metadata(self, entity: str) -> str:
        return f"{self.url}/$metadata#{entity}"

    def error_body(self, error: BatchError, request_id: str) -> tuple[int, dict[str, Any]]:
        status, message = _ERRORS[error.code]
        body: dict[str, Any] = {
            "odata.metadata": self._metadata("Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"),
            "code": error.code,
            "message": {"lang": "en-US", "value": f"{message}\nRequestId:{request_id}\nTime:{_now()}"}}
        if error.details:
            body["values"] = [{"key": k, "value": v} for k, v in error.details.items()]
        return status, body


def _etag(entity: dict[str, Any]) -> str:
    return f'"0x{abs(hash(entity["stateTransitionTime"])) % (1 << 60):015X}"'


def _select(entity: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    """Only the ``$select``-ed top-level properties (and the OData metadata), as the service answers."""
    if not query.get("$select"):
        return entity
    wanted = set(query["$select"].split(",")) | {"odata.metadata"}
    return {k: v for k, v in entity.items() if k in wanted}


class _Handler(BaseHTTPRequestHandler):
    batch: BatchService

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.batch.requests.append(Request(method, split.path, query, headers, body))
        request_id = str(uuid.uuid4())
        try:
            if "api-version" not in query:
                raise BatchError("MissingRequiredQueryParameter", {"QueryParameterName": "api-version"})
            if not headers.get("authorization", "").startswith(("Bearer ", "SharedKey ")):
                raise BatchError("AuthenticationFailed")
            status, payload = self.batch.handle(method, split.path, query, body)
        except BatchError as error:
            status, payload = self.batch.error_body(error, request_id)
        self._respond(status, payload, request_id, headers.get("client-request-id"))

    def _respond(self, status: int, payload: Any, request_id: str, client_request_id: str | None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("request-id", request_id)
        if client_request_id:
            self.send_header("client-request-id", client_request_id)
        self.send_header("DataServiceVersion", "3.0")
        if data:
            self.send_header("Content-Type", "application/json;odata=minimalmetadata")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        pass  # the recorded requests are the log
