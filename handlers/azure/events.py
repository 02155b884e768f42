"""Typed views of the Event Grid events the Azure handlers receive.

``Microsoft.Storage.BlobCreated`` from the storage account's system topic, in the Event Grid schema (what
an Event Grid trigger of the Functions host hands over) or the CloudEvents 1.0 schema (same ``data``).
The blob's container and name make the contract key (``configs/pilot.yaml``); its ETag is the version.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from handlers.azure.store import version_of
from predictd_core.cloud.contract import ObjectVersion

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
_SUBJECT_PREFIX = "/blobServices/default/containers/"


class BlobCreatedData(BaseModel):
    """``data`` of a ``Microsoft.Storage.BlobCreated`` event (the fields the handlers read)."""

    model_config = ConfigDict(extra="ignore")

    api: str
    e_tag: str = Field(alias="eTag")
    url: str
    blob_type: str | None = Field(None, alias="blobType")
    content_length: int | None = Field(None, alias="contentLength")


class StorageEvent(BaseModel):
    """An Event Grid event of a storage account's system topic."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    topic: str = Field(alias="topic")
    subject: str
    event_type: str = Field(alias="eventType")
    data: dict[str, Any]


def account_of(topic: str) -> str:
    """``.../providers/Microsoft.Storage/storageAccounts/NAME`` -> ``NAME``."""
    return topic.rstrip("/").rsplit("/", 1)[-1]


def created_blob(event: dict[str, Any]) -> ObjectVersion | None:
    """The blob version a BlobCreated event reports, or None for another event type.

    Accepts both schemas: Event Grid (``topic``, ``eventType``) and CloudEvents (``source``, ``type``).

    Raises
    ------
    ValueError
        For a subject that does not name a blob of a container.
    """
    if "specversion" in event:  # CloudEvents 1.0
        event = {"topic": event["source"], "subject": event["subject"], "eventType": event["type"],
                 "data": event["data"]}
    parsed = StorageEvent.model_validate(event)
    if parsed.event_type != BLOB_CREATED:
        return None
    if not parsed.subject.startswith(_SUBJECT_PREFIX) or "/blobs/" not in parsed.subject:
        raise ValueError(f"event subject {parsed.subject!r}: not a blob of a container")
    container, _, name = parsed.subject[len(_SUBJECT_PREFIX):].partition("/blobs/")
    data = BlobCreatedData.model_validate(parsed.data)
    return ObjectVersion(cloud="azure", store=account_of(parsed.topic), key=f"{container}/{name}",
                         version_id=version_of(data.e_tag))
