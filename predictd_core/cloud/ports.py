"""What the run logic needs from a cloud, as four small ports. Each cloud has one adapter per port
(``handlers/aws``: S3, DynamoDB, EMR Serverless or Step Functions, SNS; ``handlers/azure``: Blob storage,
Table storage, Batch, Queue storage); the run logic (``predictd_core.cloud.runs``) is written once
against these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from predictd_core.cloud.contract import JobSpec, ObjectVersion


class ObjectStore(Protocol):
    """The deployment's store, addressed by contract keys (``configs/...``, ``data/...``, ``runs/...``)."""

    cloud: str
    name: str
    """The bucket (AWS) or storage account (Azure)."""

    @property
    def root(self) -> str:
        """The URL keys are appended to (``s3://BUCKET/``, ``az://``)."""
        ...

    def read_version(self, obj: ObjectVersion) -> str | None:
        """The text of exactly the version ``obj`` names; None when that version is gone (replaced)."""
        ...

    def read_current(self, key: str) -> tuple[ObjectVersion, bytes] | None:
        """The current version of ``key`` and its bytes; None when there is no such object."""
        ...

    def put(self, key: str, payload: bytes, content_type: str) -> None:
        """Write one whole object (readers see the old one or the new one)."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (sorted)."""
        ...

    def delete(self, key: str) -> None:
        ...

    def copy(self, source: str, target: str) -> None:
        """Copy the object ``source`` to ``target`` in the store, without its tags."""
        ...

    def tag_scratch(self, key: str) -> None:
        """Tag ``key`` for the lifecycle rule that expires scratch objects (contract.SCRATCH_TAG)."""
        ...


class Records(Protocol):
    """A table of items keyed by (pk, sk), each with a version number for compare-and-swap writes.

    DynamoDB and Table storage both offer exactly this: a put that fails when the key exists, and an
    update that fails when the item changed since it was read (a condition on ``version``, or the
    entity's ETag). The ledger's every decision is built from these two.
    """

    name: str
    """The table's name (what messages call the ledger)."""

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        """The item (strongly consistent), with its ``version``; None when absent."""
        ...

    def put_new(self, item: dict[str, Any]) -> bool:
        """Create ``item`` (it carries ``pk``, ``sk`` and ``version`` 1); False when the key exists."""
        ...

    def replace(self, item: dict[str, Any], expected_version: int) -> bool:
        """Overwrite the item with ``item`` (its ``version`` is ``expected_version + 1``) if the stored
        item still has ``expected_version``; False when another writer got there first."""
        ...

    def query(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        """Every item of partition ``pk`` whose sort key starts with ``sk_prefix`` (strongly consistent)."""
        ...

    def scan(self, sk: str) -> list[dict[str, Any]]:
        """Every item whose sort key is ``sk`` (the ledger lists its runs this way; runs are few)."""
        ...


@dataclass(frozen=True)
class JobStatus:
    """What a job runner says of one job run, in the contract's state vocabulary (``states.py``)."""

    state: str
    details: str | None = None
    exit_code: int | None = None


class JobRunner(Protocol):
    """Starts attempts on an engine and answers for their state."""

    owner: str
    """The application, state machine or Batch pool whose jobs this runner starts (events name it)."""

    def start(self, spec: JobSpec) -> str:
        """Start ``spec`` idempotently (the same client token starts nothing new) and return its job run
        id, the id its state reports carry."""
        ...

    def status(self, job_run_id: str) -> JobStatus:
        """The job run's state now (asked when events are not delivered, or were lost)."""
        ...

    def cancel(self, job_run_id: str) -> None:
        """Stop the job run; one already ended is left as it is."""
        ...

    def close_run(self, run_id: str) -> None:
        """Release what the engine holds for a run that ended (Azure: its Batch job); idempotent."""
        ...


class Notifier(Protocol):
    """Announces the end of a run to the people who subscribed."""

    def publish(self, subject: str, body: dict[str, Any]) -> None:
        ...
