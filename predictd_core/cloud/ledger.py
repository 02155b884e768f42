"""The run ledger: runs, job attempts and job-run pointers as items of one ``Records`` table (DynamoDB on
AWS, Table storage on Azure). Every write that decides something is a compare-and-swap on the item's
``version``, so duplicate, late and concurrent reports are harmless and the rules live here once.

Items::

    pk = RUN#<run_id>        sk = RUN                     the run: state, config, cv shape, message, outputs
    pk = RUN#<run_id>        sk = JOB#<job>#<attempt>     one attempt of one job: client token, arguments,
                                                          job run id, state (+ its rank), details, promoted
    pk = JOBRUN#<job_run_id> sk = JOBRUN                  pointer: job run id -> run, job, attempt
    pk = REPROCESS#<key>     sk = REPROCESS               new data waiting to reprocess the config at <key>:
                                                          batch id, data objects, due time, state, run id

``<job>`` is ``prepare``, ``test{i}-valid{j}`` or ``finish``; ``<attempt>`` is zero-padded (``001``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from predictd_core.cloud.contract import FOLD, Job, JobSpec, planned_jobs
from predictd_core.cloud.ports import Records
from predictd_core.cloud.states import ACTIVE_RUN_STATES, PLANNED, STATE_RANKS, SUCCEEDED, TERMINAL_STATES

RUN_SK = "RUN"
REPROCESS_SK = "REPROCESS"
WAITING, STARTED = "WAITING", "STARTED"
MAX_BATCH_OBJECTS = 1000  # data objects named in one reprocessing batch (the run records them)
# Seconds a claimed attempt may stay without a job run before another caller may start it (the claimer
# died between claiming and starting; a start takes a second or two).
CLAIM_LEASE_SECONDS = 300
_CAS_TRIES = 50  # compare-and-swap retries under contention (each lost race means another writer progressed)


def now() -> str:
    """The current UTC time, ISO 8601 (what the ledger stamps items with)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def _attempt_sk(job: Job, attempt: int) -> str:
    return f"JOB#{job.name}#{attempt:03d}"


def _pointer_pk(job_run_id: str) -> str:
    return f"JOBRUN#{job_run_id}"


class Ledger:
    """Runs, attempts and pointers in ``records``."""

    def __init__(self, records: Records) -> None:
        self.records = records

    # ------------------------------------------------------------------------------------ low level

    def _new(self, pk: str, sk: str, attributes: dict[str, Any]) -> bool:
        item = {k: v for k, v in attributes.items() if v is not None}
        return self.records.put_new({**item, "pk": pk, "sk": sk, "version": 1})

    def _change(self, pk: str, sk: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
                ) -> tuple[bool, dict[str, Any] | None]:
        """Apply ``change`` to the item at (pk, sk) atomically: ``change(item)`` returns the attributes to
        set, or None when the item is not to change. Returns (changed by this call, the item after)."""
        for _ in range(_CAS_TRIES):
            item = self.records.get(pk, sk)
            if item is None:
                return False, None
            updates = change(item)
            if updates is None:
                return False, item
            new = {**item, **{k: v for k, v in updates.items() if v is not None}, "version": item["version"] + 1}
            if self.records.replace(new, item["version"]):
                return True, new
        raise RuntimeError(f"ledger item {pk}/{sk}: still contended after {_CAS_TRIES} tries")

    # ------------------------------------------------------------------------------------------ runs

    def create_run(self, run_id: str, state: str, **attributes: Any) -> bool:
        """Record a new run; False (and nothing written) when ``run_id`` is already in the ledger."""
        stamp = now()
        return self._new(_run_pk(run_id), RUN_SK, {"run_id": run_id, "state": state, "created_at": stamp,
                                                   "updated_at": stamp, **attributes})

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run item, or None for an unknown run."""
        return self.records.get(_run_pk(run_id), RUN_SK)

    def runs(self) -> list[dict[str, Any]]:
        """Every run item, oldest first."""
        return sorted(self.records.scan(RUN_SK), key=lambda item: (item["created_at"], item["run_id"]))

    def transition_run(self, run_id: str, state: str, from_states: tuple[str, ...], **attributes: Any) -> bool:
        """Move the run to ``state`` if it is in one of ``from_states``; True when this call moved it."""
        moved, _ = self._change(_run_pk(run_id), RUN_SK, lambda run: (
            {"state": state, "updated_at": now(), **attributes} if run["state"] in from_states else None))
        return moved

    def request_cancel(self, run_id: str, by: str) -> bool:
        """Ask for an active run to be cancelled (the deployment's next tick cancels it); False when the
        run is unknown or has ended."""
        requested, _ = self._change(_run_pk(run_id), RUN_SK, lambda run: (
            {"cancel_requested": {"by": by, "at": now()}, "updated_at": now()}
            if run["state"] in ACTIVE_RUN_STATES and not run.get("cancel_requested") else None))
        run = self.run(run_id) or {}
        return requested or (run.get("state") in ACTIVE_RUN_STATES and bool(run.get("cancel_requested")))

    # -------------------------------------------------------------------------------- reprocessing

    def queue_reprocessing(self, config_key: str, data_url: str, delay: int) -> dict[str, Any]:
        """Record that the config at ``config_key`` is to be reprocessed for ``data_url``: a new batch, due
        ``delay`` seconds from now, or the waiting batch gains the object (a repeated event adds nothing).
        Returns the batch item."""
        pk = f"REPROCESS#{config_key}"
        due = int(time.time()) + delay

        def fresh() -> dict[str, Any]:
            return {"config_key": config_key, "state": WAITING, "batch": uuid.uuid4().hex[:16], "data": [data_url],
                    "due_at": due, "first_at": now(), "updated_at": now()}

        if self._new(pk, REPROCESS_SK, fresh()):
            return self.records.get(pk, REPROCESS_SK)

        def join(item: dict[str, Any]) -> dict[str, Any] | None:
            if item["state"] == STARTED:  # the last batch has its run: this object starts the next one
                return fresh()
            if data_url in item["data"] or len(item["data"]) >= MAX_BATCH_OBJECTS:
                return None
            return {"data": [*item["data"], data_url], "updated_at": now()}

        _, item = self._change(pk, REPROCESS_SK, join)
        return item

    def waiting_reprocessing(self) -> list[dict[str, Any]]:
        """Every batch of new data still waiting for its run."""
        return [item for item in self.records.scan(REPROCESS_SK) if item["state"] == WAITING]

    def mark_reprocessing_started(self, config_key: str, batch: str, run_id: str) -> bool:
        """Close the batch ``batch`` with its run; False when it was closed already (or replaced)."""
        started, _ = self._change(f"REPROCESS#{config_key}", REPROCESS_SK, lambda item: (
            {"state": STARTED, "run_id": run_id, "updated_at": now()}
            if item["state"] == WAITING and item["batch"] == batch else None))
        return started

    # -------------------------------------------------------------------------------------- attempts

    def claim_attempt(self, spec: JobSpec, **attributes: Any) -> tuple[dict[str, Any], bool]:
        """Claim the right to start ``spec``: (its attempt item, True when this caller holds the claim).

        The first claim creates the item (state STARTING). A claim whose holder recorded no job run within
        ``CLAIM_LEASE_SECONDS`` (it died between claiming and starting) may be taken over; any other
        caller gets False and starts nothing, so two handlers never start one attempt twice (engines may
        not deduplicate client tokens; moto does not).
        """
        pk, sk = _run_pk(spec.run_id), _attempt_sk(spec.job, spec.attempt)
        claim, stamp = uuid.uuid4().hex, now()
        item = {"run_id": spec.run_id, "job": spec.job.name, "stage": spec.job.stage,
                "test_fold": spec.job.test_fold, "valid_fold": spec.job.valid_fold, "attempt": spec.attempt,
                "client_token": spec.client_token, "arguments": spec.arguments, "state": "STARTING",
                "state_rank": STATE_RANKS["STARTING"], "created_at": stamp, "updated_at": stamp,
                "claim": claim, "claimed_at": int(time.time()), **attributes}
        if self._new(pk, sk, item):
            return self.records.get(pk, sk), True

        def take_over(current: dict[str, Any]) -> dict[str, Any] | None:
            if not claim_is_stale(current):
                return None
            return {"claim": claim, "claimed_at": int(time.time()), "updated_at": now()}

        taken, current = self._change(pk, sk, take_over)
        return current, taken

    def record_job_run(self, spec: JobSpec, job_run_id: str) -> None:
        """After the engine started ``spec``: the pointer from its job run id, and the id (state SUBMITTED
        unless a report already moved the attempt further) on the attempt."""
        self._new(_pointer_pk(job_run_id), "JOBRUN", {"run_id": spec.run_id, "job": spec.job.name,
                                                      "attempt": spec.attempt, "job_run_id": job_run_id})

        def submitted(item: dict[str, Any]) -> dict[str, Any]:
            if item["state_rank"] < STATE_RANKS["SUBMITTED"]:
                return {"job_run_id": job_run_id, "state": "SUBMITTED", "state_rank": STATE_RANKS["SUBMITTED"],
                        "updated_at": now()}
            return {"job_run_id": job_run_id}

        self._change(_run_pk(spec.run_id), _attempt_sk(spec.job, spec.attempt), submitted)

    def find_job_run(self, job_run_id: str) -> tuple[str, Job, int] | None:
        """(run id, job, attempt) of a job run this deployment started, or None."""
        pointer = self.records.get(_pointer_pk(job_run_id), "JOBRUN")
        return None if pointer is None else (pointer["run_id"], Job.from_name(pointer["job"]), pointer["attempt"])

    def record_state(self, run_id: str, job: Job, attempt: int, state: str, details: str | None) -> dict[str, Any]:
        """Record an attempt's new ``state`` unless it already reached this or a later one (reports arrive
        at least once and in any order); returns the attempt item as it is afterwards."""
        _, item = self._change(_run_pk(run_id), _attempt_sk(job, attempt), lambda item: (
            {"state": state, "state_rank": STATE_RANKS[state], "updated_at": now(), "state_details": details}
            if item["state_rank"] < STATE_RANKS[state] else None))
        return item

    def mark_promoted(self, run_id: str, job: Job, attempt: int) -> None:
        """Record that the attempt's model was copied to the run's ``models/`` folder."""
        self._change(_run_pk(run_id), _attempt_sk(job, attempt), lambda item: {"promoted": True, "updated_at": now()})

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """Every attempt item of the run (strongly consistent)."""
        return self.records.query(_run_pk(run_id), "JOB#")

    def unfinished(self) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Every run that may still have work going on, with its attempts that have not ended: the active
        runs, and the failed ones (whose jobs must not go on). A reconciler asks about these."""
        found = []
        for run in self.runs():
            if run["state"] == SUCCEEDED:
                continue
            attempts = [item for item in self.attempts(run["run_id"]) if item["state"] not in TERMINAL_STATES]
            if attempts:
                found.append((run, attempts))
        return found

    def summary(self, run_id: str) -> dict[str, Any] | None:
        """``run_summary`` of the run, or None for an unknown run."""
        run = self.run(run_id)
        return None if run is None else run_summary(run, self.attempts(run_id))


def claim_is_stale(item: dict[str, Any]) -> bool:
    """Whether an attempt was claimed but not started by a caller that is gone."""
    return (not item.get("job_run_id") and item["state"] not in TERMINAL_STATES
            and time.time() - item.get("claimed_at", 0) >= CLAIM_LEASE_SECONDS)


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
