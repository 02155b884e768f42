"""Event Grid: BlobCreated of configs and of data delivered to the handlers' ``on_blob_created`` function.

A system topic on the storage account, always; its two subscriptions only when ``subscribeEvents`` is
true, because Event Grid checks that the endpoint function exists when a subscription is created, and the
function exists once its code is published (deploy, publish, deploy again with subscribeEvents=true).
Undeliverable events go to the ``deadletter`` container, written with the topic's identity.
"""

from __future__ import annotations

from infra.azure.arm import expr, lit, param, ref, resource, rid, role_assignment, role_assignment_id
from infra.azure.config import (BLOB_CREATED_FUNCTION, CONFIG_SUFFIXES, CONFIGS_PREFIX, DATA_PREFIX,
                                DEADLETTER_CONTAINER, EVENT_MAX_DELIVERY_ATTEMPTS, EVENT_TTL_MINUTES)
from infra.azure.functions import SITE_ID
from infra.azure.names import STORAGE, child, sub, var
from infra.azure.storage import ACCOUNT_ID

TOPIC_KIND = "Microsoft.EventGrid/systemTopics"
TOPIC_ID = rid(TOPIC_KIND, var("systemTopic"))
TOPIC_PRINCIPAL = "storage-events"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
STORAGE_KIND = "Microsoft.Storage/storageAccounts"
FUNCTION_PATH = f"/functions/{BLOB_CREATED_FUNCTION}"


def subject_prefix(folder: str) -> str:
    """``/blobServices/default/containers/configs/``: the subject prefix of the blobs of a contract folder."""
    return f"/blobServices/default/containers/{folder}"


def system_topic() -> list[dict]:
    """The storage account's system topic, with the identity that writes dead letters (blob data role)."""
    topic = resource(TOPIC_KIND, f"[{var('systemTopic')}]", location=f"[{param('location')}]",
                     identity={"type": "SystemAssigned"}, depends_on=[expr(ACCOUNT_ID)],
                     properties={"source": expr(ACCOUNT_ID), "topicType": "Microsoft.Storage.StorageAccounts"})
    grant = role_assignment("Storage Blob Data Contributor", scope_kind=STORAGE_KIND,
                            scope_name=STORAGE,
                            principal_id=f"{ref(TOPIC_ID, TOPIC_KIND, full=True)}.identity.principalId",
                            principal_key=TOPIC_PRINCIPAL, depends_on=[expr(TOPIC_ID), expr(ACCOUNT_ID)])
    return [topic, grant]


def subscription(name: str, folder: str, advanced_filters: list[dict]) -> dict:
    """BlobCreated under ``folder`` to the function, 30 tries within a day, then the dead-letter container."""
    return resource(
        f"{TOPIC_KIND}/eventSubscriptions", child(var("systemTopic"), sub(name)),
        condition=expr(param("subscribeEvents")),
        # dead letters are written with the topic's identity: its blob role comes first
        depends_on=[expr(TOPIC_ID), expr(SITE_ID),
                    expr(role_assignment_id("Storage Blob Data Contributor", scope_kind=STORAGE_KIND,
                                            scope_name=STORAGE, principal_key=TOPIC_PRINCIPAL))],
        properties={
            "eventDeliverySchema": "EventGridSchema",
            "destination": {"endpointType": "AzureFunction",
                            "properties": {"resourceId": expr(f"concat({SITE_ID}, {lit(FUNCTION_PATH)})"),
                                           "maxEventsPerBatch": 1, "preferredBatchSizeInKilobytes": 64}},
            "filter": {"includedEventTypes": [BLOB_CREATED], "subjectBeginsWith": subject_prefix(folder),
                       "enableAdvancedFilteringOnArrays": True, "advancedFilters": advanced_filters},
            "retryPolicy": {"maxDeliveryAttempts": EVENT_MAX_DELIVERY_ATTEMPTS,
                            "eventTimeToLiveInMinutes": EVENT_TTL_MINUTES},
            "deadLetterWithResourceIdentity": {
                "identity": {"type": "SystemAssigned"},
                "deadLetterDestination": {"endpointType": "StorageBlob",
                                          "properties": {"resourceId": expr(ACCOUNT_ID),
                                                         "blobContainerName": DEADLETTER_CONTAINER}}},
        })


def subscriptions() -> list[dict]:
    """configs/*.yaml|*.yml (a config starts a run) and data/* (new data reprocesses the configs using it)."""
    configs = subscription("configs-created", CONFIGS_PREFIX, [
        {"operatorType": "StringEndsWith", "key": "subject", "values": list(CONFIG_SUFFIXES)}])
    data = subscription("data-created", DATA_PREFIX, [])
    return [configs, data]


def event_resources() -> list[dict]:
    return [*system_topic(), *subscriptions()]
