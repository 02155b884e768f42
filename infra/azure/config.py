"""Settings of the Azure deployment template: API versions, images, roles and the names it adds to the contract.

The contract's names (containers, table, queue, pool, the function app's environment) are imported from
``predictd_core.cloud``; what is defined here is only what the template alone needs, plus the names the
handlers and the job runner must agree with it on (marked "shared": the lead moves them into the contract).
"""

from __future__ import annotations

from predictd_core.cloud.contract import (CONFIG_SUFFIXES, CONFIGS_PREFIX, DATA_PREFIX, FOLDERS, MAX_ATTEMPTS,
                                          RUNS_PREFIX, SCRATCH_EXPIRY_DAYS, SCRATCH_TAG)
from predictd_core.cloud.settings import (AZURE_BATCH_POOL, AZURE_ENVIRONMENT, AZURE_LEDGER_TABLE,
                                          AZURE_NOTICE_QUEUE)

__all__ = ["AZURE_BATCH_POOL", "AZURE_ENVIRONMENT", "AZURE_LEDGER_TABLE", "AZURE_NOTICE_QUEUE", "CONFIGS_PREFIX",
           "CONFIG_SUFFIXES", "DATA_PREFIX", "MAX_ATTEMPTS", "RUNS_PREFIX", "SCRATCH_EXPIRY_DAYS", "SCRATCH_TAG"]

# The blob containers of the contract: its folders without the slash (``configs/x.yaml`` is blob x.yaml of
# container configs), so a key names the same object on both clouds.
CONTRACT_CONTAINERS = tuple(folder.rstrip("/") for folder in FOLDERS)
# Event Grid writes events it could not deliver here (alerted on; read them to replay by hand).
DEADLETTER_CONTAINER = "deadletter"
# The Flex Consumption app's code package (`func azure functionapp publish` uploads it here).
FUNCTION_PACKAGE_CONTAINER = "function-package"

# Shared: the Event Grid trigger's function name (Python v2 model: the decorated function's name). Event Grid
# subscriptions deliver to SITE/functions/NAME, which must exist when a subscription is created.
BLOB_CREATED_FUNCTION = "on_blob_created"
# The repository of the predictd image in the deployment's registry (`az acr build -t predictd:TAG`).
IMAGE_REPOSITORY = "predictd"

# Old blob versions (replaced configs and tracks, overwritten outputs) stay recoverable this long, as on S3.
NONCURRENT_VERSION_DAYS = 30
# Deleted blobs and containers can be undeleted this long (a mistyped `az storage blob delete-batch`).
SOFT_DELETE_DAYS = 7
LOG_RETENTION_DAYS = 30

# The pool's node image. Batch documents microsoft-dsvm ubuntu-hpc (Docker-compatible runtime preinstalled)
# for Linux container pools; its 22.04 sku and node agent reach Batch's end of support on 2027-06-30
# (Azure/Batch issue 200: "migrate to microsoft-dsvm:ubuntu-hpc:2404"), so the pool starts on 24.04.
NODE_IMAGE = {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2404", "version": "latest"}
NODE_AGENT_SKU = "batch.node.ubuntu 24.04"
DEFAULT_VM_SIZE = "Standard_D4as_v5"  # 4 vCPU, 16 GiB: the EMR Serverless default worker's shape
DEFAULT_MAX_NODES = 20
AUTOSCALE_INTERVAL = "PT5M"  # Batch's minimum and default evaluation interval

FUNCTION_RUNTIME = {"name": "python", "version": "3.11"}
FUNCTION_INSTANCE_MEMORY_MB = 2048
FUNCTION_MAX_INSTANCES = 40

# Event Grid: tries within a day, then the event goes to DEADLETTER_CONTAINER.
EVENT_MAX_DELIVERY_ATTEMPTS = 30
EVENT_TTL_MINUTES = 1440

VNET_PREFIX = "10.42.0.0/16"
# /22: up to 1,019 nodes (Azure keeps 5 addresses of a subnet); clear of Docker's default 172.17.0.0/16 bridge.
SUBNET_PREFIX = "10.42.0.0/22"

# Built-in role definition ids (the same in every Azure cloud).
ROLES = {
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "Azure Batch Job Submitter": "48e5e92e-a480-4e71-aa9c-2778f4c13781",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Storage Table Data Reader": "76199698-9eea-4c19-bc75-cec21354c6b6",
    "Azure Batch Account Reader": "11076f67-66f6-4be0-8f6b-f0609fd05cc9",
}

API = {
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.Batch/batchAccounts": "2024-07-01",
    "Microsoft.Batch/batchAccounts/pools": "2024-07-01",
    "Microsoft.ContainerRegistry/registries": "2023-07-01",
    "Microsoft.EventGrid/systemTopics": "2022-06-15",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions": "2022-06-15",
    "Microsoft.Insights/actionGroups": "2023-01-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Insights/metricAlerts": "2018-03-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2023-01-31",
    "Microsoft.Network/natGateways": "2024-05-01",
    "Microsoft.Network/networkSecurityGroups": "2024-05-01",
    "Microsoft.Network/publicIPAddresses": "2024-05-01",
    "Microsoft.Network/virtualNetworks": "2024-05-01",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.Storage/storageAccounts": "2023-05-01",
    "Microsoft.Web/serverfarms": "2024-04-01",
    "Microsoft.Web/sites": "2024-04-01",
}
