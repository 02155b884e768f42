"""The storage account of the contract: containers configs, data, runs; the ledger table; the notice queue.

Identities only: shared keys are disabled, so every reader and writer (handlers, Batch tasks, Event Grid's
dead-lettering, people with ``--auth-mode login``) is an Entra identity with a data role.
"""

from __future__ import annotations

from infra.azure.arm import expr, param, resource, rid, role_assignment, suppress
from infra.azure.config import (API, AZURE_LEDGER_TABLE, AZURE_NOTICE_QUEUE, CONTRACT_CONTAINERS,
                                DEADLETTER_CONTAINER, NONCURRENT_VERSION_DAYS, SCRATCH_EXPIRY_DAYS, SCRATCH_TAG,
                                SOFT_DELETE_DAYS)
from infra.azure.names import LOCATION, STORAGE, child, sub

KIND = "Microsoft.Storage/storageAccounts"
ACCOUNT_ID = rid(KIND, STORAGE)
_API = API[KIND]


def storage_account() -> dict:
    """StorageV2, HTTPS and TLS 1.2 only, no public blobs, no shared keys, Microsoft-managed encryption."""
    account = resource(
        KIND, f"[{STORAGE}]", location=LOCATION, kind="StorageV2", sku={"name": "Standard_LRS"},
        properties={"supportsHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_2",
                    "allowBlobPublicAccess": False, "allowSharedKeyAccess": False,
                    "defaultToOAuthAuthentication": True, "allowCrossTenantReplication": False,
                    "accessTier": "Hot", "publicNetworkAccess": "Enabled",
                    "networkAcls": {"defaultAction": "Allow", "bypass": "AzureServices"},
                    "encryption": {"keySource": "Microsoft.Storage", "requireInfrastructureEncryption": True,
                                   "services": {"blob": {"enabled": True}, "file": {"enabled": True},
                                                "table": {"enabled": True, "keyType": "Account"},
                                                "queue": {"enabled": True, "keyType": "Account"}}}})
    suppress(account, "CKV_AZURE_35",
             "The firewall stays open (Allow): the Flex Consumption handlers run outside a virtual network, "
             "Event Grid's dead-lettering and people uploading tracks from their machines reach the account "
             "over the internet; every request needs an Entra token (allowSharedKeyAccess false).")
    suppress(account, "CKV_AZURE_59",
             "Public network access stays enabled for the same reasons as the open firewall (CKV_AZURE_35): "
             "no anonymous or key access is possible, only identities with a data role.")
    suppress(account, "CKV_AZURE_206",
             "Locally redundant (LRS): the data tracks are public downloads and every run output can be "
             "recomputed from them; geo-replication would double the storage bill of the largest item.")
    suppress(account, "CKV_AZURE_43",
             "The name is an expression checkov cannot evaluate: namePrefix (3-11 lowercase letters or digits) "
             "plus uniqueString() (13 lowercase letters and digits), 16-24 characters: a valid account name.")
    return account


def blob_service() -> dict:
    """Versioning (the contract keys runs by blob version) and soft delete of blobs and containers."""
    days = {"enabled": True, "days": SOFT_DELETE_DAYS}
    return resource(f"{KIND}/blobServices", child(STORAGE, sub("default")), api=_API,
                    depends_on=[expr(ACCOUNT_ID)],
                    properties={"isVersioningEnabled": True, "deleteRetentionPolicy": days,
                                "containerDeleteRetentionPolicy": days, "changeFeed": {"enabled": False}})


def container(name: str) -> dict:
    """A private blob container (``name`` may be an inner expression when it starts with a parameter)."""
    segment = name if name.startswith("parameters(") else sub(name)
    return resource(f"{KIND}/blobServices/containers", child(STORAGE, sub("default"), segment), api=_API,
                    depends_on=[expr(rid(f"{KIND}/blobServices", STORAGE, sub("default")))],
                    properties={"publicAccess": "None"})


def lifecycle_policy() -> dict:
    """Scratch blobs (tagged ``SCRATCH_TAG``) expire after SCRATCH_EXPIRY_DAYS, old versions after 30 days.

    Fold attempts sit mid-key (``runs/RUN_ID/attempts/...``) where a prefix filter cannot reach them: the
    handlers set the blob index tag once an attempt is copied to models/ or failed for good.
    """
    key, value = SCRATCH_TAG
    scratch_delete = {"delete": {"daysAfterModificationGreaterThan": SCRATCH_EXPIRY_DAYS}}
    rules = [
        {"enabled": True, "name": "expire-scratch-blobs", "type": "Lifecycle",
         "definition": {"filters": {"blobTypes": ["blockBlob"],
                                    "blobIndexMatch": [{"name": key, "op": "==", "value": value}]},
                        "actions": {"baseBlob": scratch_delete}}},
        {"enabled": True, "name": "expire-old-versions", "type": "Lifecycle",
         "definition": {"filters": {"blobTypes": ["blockBlob"]},
                        "actions": {"version": {"delete": {"daysAfterCreationGreaterThan": NONCURRENT_VERSION_DAYS}}}}},
    ]
    return resource(f"{KIND}/managementPolicies", child(STORAGE, sub("default")), api=_API,
                    depends_on=[expr(ACCOUNT_ID), expr(rid(f"{KIND}/blobServices", STORAGE, sub("default")))],
                    properties={"policy": {"rules": rules}})


def ledger_and_queue() -> list[dict]:
    """The run ledger (Table storage) and the run notice queue, with their services."""
    table_service = resource(f"{KIND}/tableServices", child(STORAGE, sub("default")), api=_API,
                             depends_on=[expr(ACCOUNT_ID)], properties={})
    queue_service = resource(f"{KIND}/queueServices", child(STORAGE, sub("default")), api=_API,
                             depends_on=[expr(ACCOUNT_ID)], properties={})
    table = resource(f"{KIND}/tableServices/tables", child(STORAGE, sub("default"), sub(AZURE_LEDGER_TABLE)),
                     api=_API, depends_on=[expr(rid(f"{KIND}/tableServices", STORAGE, sub("default")))],
                     properties={})
    queue = resource(f"{KIND}/queueServices/queues", child(STORAGE, sub("default"), sub(AZURE_NOTICE_QUEUE)),
                     api=_API, depends_on=[expr(rid(f"{KIND}/queueServices", STORAGE, sub("default")))],
                     properties={"metadata": {}})
    return [table_service, queue_service, table, queue]


def operator_access() -> list[dict]:
    """Blob read/write and ledger read/write for ``operatorPrincipalId``, when given (uploads, `predictd
    status`, and `predictd cancel`, which records a cancel request on the run's ledger item).

    Conditional (``operatorPrincipalId`` empty: none); no principalType, as it may be a user or a group.
    """
    grants = []
    for role in ("Storage Blob Data Contributor", "Storage Table Data Contributor"):
        grant = role_assignment(role, scope_kind=KIND, scope_name=STORAGE, principal_id=param("operatorPrincipalId"),
                                principal_key="operator", depends_on=[expr(ACCOUNT_ID)], principal_type=None)
        grants.append({"condition": expr(f"not(empty({param('operatorPrincipalId')}))"), **grant})
    return grants


def storage_resources() -> list[dict]:
    """Everything of the account: itself, its services, containers, lifecycle policy, table and queue."""
    containers = [container(name) for name in (*CONTRACT_CONTAINERS, DEADLETTER_CONTAINER)]
    containers.append(container("parameters('deploymentContainer')"))
    return [storage_account(), blob_service(), *containers, lifecycle_policy(), *ledger_and_queue(),
            *operator_access()]
