"""The run ledger: one DynamoDB table (partition key ``pk``, sort key ``sk``, no index) of runs, job
attempts and job-run pointers. Every write that decides something is conditional, so duplicate and
out-of-order events are harmless.

Items::

    pk = RUN#<run_id>        sk = RUN                     the run: state, config, cv shape, message, outputs
    pk = RUN#<run_id>        sk = JOB#<job>#<attempt>     one attempt of one job: client token, arguments,
                                                          job run id, state (+ its rank), details, promoted
    pk = JOBRUN#<job_run_id> sk = JOBRUN                  pointer: job run id -> run, job, attempt

``<job>`` is ``prepare``, ``test{i}-valid{j}`` or ``finish``; ``<attempt>`` is zero-padded (``001``).
Run states: PREPARING -> TRAINING -> FINISHING -> SUCCEEDED, or FAILED from any of them.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from handlers._shared.events import STATE_RANKS
from handlers._shared.jobs import FOLD, Job, JobSpec, planned_jobs

PREPARING, TRAINING, FINISHING, SUCCEEDED, FAILED = "PREPARING", "TRAINING", "FINISHING", "SUCCEEDED", "FAILED"
ACTIVE_RUN_STATES = (PREPARING, TRAINING, FINISHING)
PLANNED = "PLANNED"  # a job no attempt has started yet (shown by the summary, never stored)
_SERIALIZER, _DESERIALIZER = TypeSerializer(), TypeDeserializer()


def now() -> str:
    """The current UTC time, ISO 8601 (what the ledger stamps items with)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_key(run_id: str) -> dict[str, str]:
    return {"pk": f"RUN#{run_id}", "sk": "RUN"}


def _attempt_key(run_id: str, job: Job, attempt: int) -> dict[str, str]:
    return {"pk": f"RUN#{run_id}", "sk": f"JOB#{job.name}#{attempt:03d}"}


def _pointer_key(job_run_id: str) -> dict[str, str]:
    return {"pk": f"JOBRUN#{job_run_id}", "sk": "JOBRUN"}


def _plain(value: Any) -> Any:
    """DynamoDB numbers (Decimal) as int or float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class Ledger:
    """Runs, attempts and pointers in the DynamoDB table ``table`` (a boto3 ``dynamodb`` client)."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    # ------------------------------------------------------------------------------------ low level

    def _encode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: _SERIALIZER.serialize(v) for k, v in item.items() if v is not None}

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key=self._encode(key), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else _plain({k: _DESERIALIZER.deserialize(v) for k, v in item.items()})

    def _put_new(self, item: dict[str, Any]) -> bool:
        """Put ``item`` unless its key exists; True when this call created it."""
        try:
            self.client.put_item(TableName=self.table, Item=self._encode(item),
                                 ConditionExpression="attribute_not_exists(pk)")
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _update(self, key: dict[str, str], changes: dict[str, Any], condition: str | None = None,
                values: dict[str, Any] | None = None) -> bool:
        """SET ``changes`` on the item at ``key`` if ``condition`` holds (names in it are ``#name``, values
        ``:name`` from ``values``); False when the condition failed."""
        names = {f"#{name}": name for name in changes}
        bound = {f":{name}": value for name, value in changes.items()} | {f":{k}": v for k, v in (values or {}).items()}
        names |= {f"#{name}": name for name in re.findall(r"#(\w+)", condition or "")}
        arguments: dict[str, Any] = {
            "TableName": self.table, "Key": self._encode(key),
            "UpdateExpression": "SET " + ", ".join(f"#{name} = :{name}" for name in changes),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {k: _SERIALIZER.serialize(v) for k, v in bound.items()},
        }
        if condition:
            arguments["ConditionExpression"] = condition
        try:
            self.client.update_item(**arguments)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _query(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        items = []
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(TableName=self.table, ConsistentRead=True,
                                       KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                                       ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": sk_prefix}}):
            items += [_plain({k: _DESERIALIZER.deserialize(v) for k, v in item.items()}) for item in page["Items"]]
        return items

    # ------------------------------------------------------------------------------------------ runs

    def create_run(self, run_id: str, state: str, **attributes: Any) -> bool:
        """Record a new run; False (and nothing written) when ``run_id`` is already in the ledger."""
        stamp = now()
        return self._put_new({**_run_key(run_id), "run_id": run_id, "state": state, "created_at": stamp,
                              "updated_at": stamp, **attributes})

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run item, or None for an unknown run."""
        return self._get(_run_key(run_id))

    def runs(self) -> list[dict[str, Any]]:
        """Every run item, oldest first (a scan: the ledger has no index, and runs are few)."""
        items = []
        for page in self.client.get_paginator("scan").paginate(
                TableName=self.table, FilterExpression="sk = :run", ExpressionAttributeValues={":run": {"S": "RUN"}}):
            items += [_plain({k: _DESERIALIZER.deserialize(v) for k, v in item.items()}) for item in page["Items"]]
        return sorted(items, key=lambda item: (item["created_at"], item["run_id"]))

    def transition_run(self, run_id: str, state: str, from_states: tuple[str, ...], **attributes: Any) -> bool:
        """Move the run to ``state`` if it is in one of ``from_states``; True when this call moved it."""
        allowed = {f"from{n}": s for n, s in enumerate(from_states)}
        condition = f"#state IN ({', '.join(':' + name for name in allowed)})"
        return self._update(_run_key(run_id), {"state": state, "updated_at": now(), **attributes}, condition, allowed)

    # -------------------------------------------------------------------------------------- attempts

    def claim_attempt(self, spec: JobSpec, **attributes: Any) -> dict[str, Any]:
        """The attempt item of ``spec``, created (state STARTING) if this is its first claim."""
        key = _attempt_key(spec.run_id, spec.job, spec.attempt)
        stamp = now()
        item = {**key, "run_id": spec.run_id, "job": spec.job.name, "stage": spec.job.stage,
                "test_fold": spec.job.test_fold, "valid_fold": spec.job.valid_fold, "attempt": spec.attempt,
                "client_token": spec.client_token, "arguments": spec.arguments, "state": "STARTING",
                "state_rank": STATE_RANKS["STARTING"], "created_at": stamp, "updated_at": stamp, **attributes}
        if self._put_new(item):
            return _plain(item)
        return self._get(key)

    def record_job_run(self, spec: JobSpec, job_run_id: str) -> None:
        """After the engine started ``spec``: the pointer from its job run id, and the id (state SUBMITTED
        unless an event already moved the attempt further) on the attempt."""
        self.client.put_item(TableName=self.table, Item=self._encode(
            {**_pointer_key(job_run_id), "run_id": spec.run_id, "job": spec.job.name, "attempt": spec.attempt}))
        key = _attempt_key(spec.run_id, spec.job, spec.attempt)
        submitted = {"job_run_id": job_run_id, "state": "SUBMITTED", "state_rank": STATE_RANKS["SUBMITTED"],
                     "updated_at": now()}
        if not self._update(key, submitted, "#state_rank < :state_rank"):
            self._update(key, {"job_run_id": job_run_id})

    def find_job_run(self, job_run_id: str) -> tuple[str, Job, int] | None:
        """(run id, job, attempt) of a job run this deployment started, or None."""
        pointer = self._get(_pointer_key(job_run_id))
        return None if pointer is None else (pointer["run_id"], Job.from_name(pointer["job"]), pointer["attempt"])

    def record_state(self, run_id: str, job: Job, attempt: int, state: str, details: str | None) -> dict[str, Any]:
        """Record an attempt's new ``state`` unless it already reached this or a later one (events arrive
        at least once and in any order); returns the attempt item as it is afterwards."""
        key = _attempt_key(run_id, job, attempt)
        changes = {"state": state, "state_rank": STATE_RANKS[state], "updated_at": now(), "state_details": details}
        self._update(key, {k: v for k, v in changes.items() if v is not None},
                     "attribute_exists(#pk) AND #state_rank < :state_rank")
        return self._get(key)

    def mark_promoted(self, run_id: str, job: Job, attempt: int) -> None:
        """Record that the attempt's model was copied to the run's ``models/`` folder."""
        self._update(_attempt_key(run_id, job, attempt), {"promoted": True, "updated_at": now()})

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """Every attempt item of the run (strongly consistent)."""
        return self._query(f"RUN#{run_id}", "JOB#")

    def summary(self, run_id: str) -> dict[str, Any] | None:
        """``run_summary`` of the run, or None for an unknown run."""
        run = self.run(run_id)
        return None if run is None else run_summary(run, self.attempts(run_id))


def run_summary(run: dict[str, Any], attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``predictd status --json`` prints and ``run.json`` holds: the run and every planned job with its
    attempts (the last attempt's state and job run id first)."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    for item in sorted(attempts, key=lambda item: item["attempt"]):
        by_job.setdefault(item["job"], []).append(item)
    jobs = []
    if "n_test" in run:
        for job in planned_jobs(run["n_test"], run["n_valid"]):
            tries = by_job.get(job.name, [])
            last = tries[-1] if tries else {}
            jobs.append({
                "job": job.name, "stage": job.stage,
                **({"test_fold": job.test_fold, "valid_fold": job.valid_fold} if job.stage == FOLD else {}),
                "state": last.get("state", PLANNED), "attempts": len(tries), "job_run_id": last.get("job_run_id"),
                "history": [{name: item.get(name) for name in
                             ("attempt", "state", "job_run_id", "client_token", "state_details", "arguments",
                              "updated_at")} for item in tries]})
    return {"run_id": run["run_id"], "state": run["state"], "message": run.get("message"),
            "config": run.get("config"), "trigger": run.get("trigger"), "created_at": run["created_at"],
            "updated_at": run["updated_at"],
            "cv": {"n_test": run["n_test"], "n_valid": run["n_valid"]} if "n_test" in run else None,
            "jobs": jobs, "outputs": run.get("outputs", [])}
