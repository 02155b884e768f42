"""The template's parameters and the resource names every module refers to (template variables).

Names are the prefix plus ``uniqueString(resourceGroup().id)`` (13 characters): globally unique names
(storage account, registry, Batch account, function app) stay stable across redeploys of one resource
group and differ between groups.
"""

from __future__ import annotations

from infra.azure.arm import lit, param, var
from infra.azure.config import DEFAULT_MAX_NODES, DEFAULT_VM_SIZE, FUNCTION_PACKAGE_CONTAINER

PARAMETERS = {
    "location": {"type": "string", "defaultValue": "[resourceGroup().location]",
                 "metadata": {"description": "Region of every resource (default: the resource group's)."}},
    # 3-11 lowercase letters and digits: with the 13-character suffix, within the storage account's 24.
    "namePrefix": {"type": "string", "defaultValue": "predictd", "minLength": 3, "maxLength": 11,
                   "metadata": {"description": "Start of every resource name: 3-11 lowercase letters/digits."}},
    # No default: a pool must run a tag someone built and pushed (never a moving 'latest').
    "imageTag": {"type": "string", "minLength": 1, "maxLength": 128,
                 "metadata": {"description": "Tag of predictd in the deployment's registry "
                                             "(az acr build -t predictd:TAG); the Batch tasks run it."}},
    "deploymentContainer": {"type": "string", "defaultValue": FUNCTION_PACKAGE_CONTAINER,
                            "metadata": {"description": "Blob container of the function app's code package."}},
    "alertEmail": {"type": "string", "minLength": 3,
                   "metadata": {"description": "Receives the alerts (function failures, dead-lettered events, "
                                               "failed Batch tasks)."}},
    "vmSize": {"type": "string", "defaultValue": DEFAULT_VM_SIZE,
               "metadata": {"description": "VM size of the Batch pool's nodes (one fold job per node)."}},
    "maxNodes": {"type": "int", "defaultValue": DEFAULT_MAX_NODES, "minValue": 1, "maxValue": 1000,
                 "metadata": {"description": "Most spot nodes the pool's autoscale formula asks for."}},
    # Optional: the person (or group) who uploads tracks and configs and reads runs with `--auth-mode login`
    # (`az ad signed-in-user show --query id -o tsv`). Shared keys are off, so data roles are the only way in.
    "operatorPrincipalId": {"type": "string", "defaultValue": "",
                            "metadata": {"description": "Object id granted blob read/write and ledger read on "
                                                        "the storage account (empty: none)."}},
    "subscribeEvents": {"type": "bool", "defaultValue": False,
                        "metadata": {"description": "Create the Event Grid subscriptions: true only once the "
                                                    "function code is published (their endpoint must exist)."}},
}

# No toLower(): the prefix is lowercase by contract and uniqueString() is. checkov drops every failed check of
# a resource whose name holds toLower(, trim(, join(, split( or substring( (arm/utils.py,
# filter_failed_checks_with_unrendered_resources), so such a name would hide that resource's findings.
_NAME = "concat(parameters('namePrefix'), variables('suffix'))"
VARIABLES = {
    "suffix": "[uniqueString(resourceGroup().id)]",
    "storageAccount": f"[{_NAME}]",
    "registry": f"[{_NAME}]",
    "batchAccount": f"[{_NAME}]",
    "functionApp": f"[concat(parameters('namePrefix'), '-', variables('suffix'))]",
    "functionPlan": "[concat(parameters('namePrefix'), '-plan-', variables('suffix'))]",
    "jobIdentity": "[concat(parameters('namePrefix'), '-jobs')]",
    "workspace": "[concat(parameters('namePrefix'), '-logs')]",
    "appInsights": "[concat(parameters('namePrefix'), '-insights')]",
    "vnet": "[concat(parameters('namePrefix'), '-vnet')]",
    "subnet": "batch-nodes",
    "nsg": "[concat(parameters('namePrefix'), '-batch-nsg')]",
    "natGateway": "[concat(parameters('namePrefix'), '-nat')]",
    "natIp": "[concat(parameters('namePrefix'), '-nat-ip')]",
    "systemTopic": "[concat(parameters('namePrefix'), '-storage-events')]",
    "actionGroup": "[concat(parameters('namePrefix'), '-alerts')]",
}

LOCATION = f"[{param('location')}]"
STORAGE = var("storageAccount")
REGISTRY = var("registry")
BATCH = var("batchAccount")
FUNCTION_APP = var("functionApp")
JOB_IDENTITY = var("jobIdentity")


def child(*parts: str) -> str:
    """The name of a child resource: ``[concat(a, '/', b, ...)]`` of inner expressions."""
    return "[concat(" + ", '/', ".join(parts) + ")]"


def sub(name: str) -> str:
    """A literal child name segment as an inner expression."""
    return lit(name)
