"""What runs the jobs: the jobs' identity, the container registry, the nodes' network, the Batch account and pool.

The pool's nodes are spot VMs without public IP addresses in a subnet whose outbound traffic leaves
through a NAT gateway (Batch's simplified node communication needs outbound HTTPS only). Each task runs
the predictd image in a Docker-compatible container as the user-assigned identity (azure-identity reads
its client id from the task's environment), which holds Storage Blob Data Contributor on the account.
"""

from __future__ import annotations

from infra.azure.arm import expr, lit, param, ref, resource, rid, role_assignment, role_assignment_id, suppress
from infra.azure.config import (AUTOSCALE_INTERVAL, AZURE_BATCH_POOL, IMAGE_REPOSITORY, NODE_AGENT_SKU, NODE_IMAGE,
                                SUBNET_PREFIX, VNET_PREFIX)
from infra.azure.names import BATCH, JOB_IDENTITY, LOCATION, REGISTRY, STORAGE, child, sub, var

IDENTITY_KIND = "Microsoft.ManagedIdentity/userAssignedIdentities"
REGISTRY_KIND = "Microsoft.ContainerRegistry/registries"
BATCH_KIND = "Microsoft.Batch/batchAccounts"
VNET_KIND = "Microsoft.Network/virtualNetworks"
IDENTITY_ID = rid(IDENTITY_KIND, JOB_IDENTITY)
REGISTRY_ID = rid(REGISTRY_KIND, REGISTRY)
BATCH_ID = rid(BATCH_KIND, BATCH)
SUBNET_ID = rid(f"{VNET_KIND}/subnets", var("vnet"), var("subnet"))
JOB_PRINCIPAL = "batch-jobs"
LOGIN_SERVER = f"{ref(REGISTRY_ID, REGISTRY_KIND)}.loginServer"
IMAGE = f"concat({LOGIN_SERVER}, '/{IMAGE_REPOSITORY}:', {param('imageTag')})"

# Spot nodes for the tasks waiting or running, at most maxNodes, none when nothing is pending. Batch samples
# $PendingTasks (active + running) every 30 s; the last sample decides, so an idle pool empties within one
# evaluation interval, and a node is only taken away once its task completes.
AUTOSCALE_FORMULA = " ".join([
    "$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);",
    "$pending = $samples < 1 ? 0 : max(0, $PendingTasks.GetSample(1));",
    "$TargetLowPriorityNodes = min($pending, {max_nodes});",
    "$TargetDedicatedNodes = 0;",
    "$NodeDeallocationOption = taskcompletion;",
])


def job_identity() -> list[dict]:
    """The identity the tasks run as, with blob access to the account and pull access to the registry only."""
    identity = resource(IDENTITY_KIND, f"[{JOB_IDENTITY}]", location=LOCATION)
    principal = f"{ref(IDENTITY_ID, IDENTITY_KIND)}.principalId"
    grants = [
        role_assignment("Storage Blob Data Contributor", scope_kind="Microsoft.Storage/storageAccounts",
                        scope_name=STORAGE, principal_id=principal, principal_key=JOB_PRINCIPAL,
                        depends_on=[expr(IDENTITY_ID), expr(rid("Microsoft.Storage/storageAccounts", STORAGE))]),
        role_assignment("AcrPull", scope_kind=REGISTRY_KIND, scope_name=REGISTRY, principal_id=principal,
                        principal_key=JOB_PRINCIPAL, depends_on=[expr(IDENTITY_ID), expr(REGISTRY_ID)]),
    ]
    return [identity, *grants]


def registry() -> dict:
    """The image registry: Basic, no admin user (the pool pulls as the jobs' identity, `az acr build` as you).

    Created here rather than taken as a parameter: AcrPull is then scoped to one registry that holds
    predictd only, and `az group delete` removes it with the rest.
    """
    body = resource(REGISTRY_KIND, f"[{REGISTRY}]", location=LOCATION, sku={"name": "Basic"},
                    properties={"adminUserEnabled": False, "anonymousPullEnabled": False,
                                "publicNetworkAccess": "Enabled"})
    suppress(body, "CKV_AZURE_139",
             "Public endpoint, Entra authentication only (no admin user, no anonymous pull): a private endpoint "
             "needs the Premium tier (about $50 a month standing), and `az acr build` and the nodes (through "
             "the NAT gateway) reach the registry over it.")
    suppress(body, "CKV_AZURE_166",
             "Image quarantine is a Premium-tier feature; the registry holds one image, built by `az acr build` "
             "from this repository's Dockerfile.")
    suppress(body, "CKV_AZURE_163",
             "Vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan that no "
             "registry property turns on; enable it for the subscription where policy asks for it.")
    return body


def network() -> list[dict]:
    """VNet, subnet and NSG for the nodes, and the NAT gateway that gives them outbound access.

    No inbound rule is added: simplified node communication is outbound only (nodes to the Batch service),
    and the NSG's default rules allow the traffic between nodes that multi-instance tasks (Spark standalone)
    need while denying everything from the internet.
    """
    nsg = resource("Microsoft.Network/networkSecurityGroups", f"[{var('nsg')}]", location=LOCATION,
                   properties={"securityRules": []})
    public_ip = resource("Microsoft.Network/publicIPAddresses", f"[{var('natIp')}]", location=LOCATION,
                         sku={"name": "Standard"},
                         properties={"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"})
    nat = resource("Microsoft.Network/natGateways", f"[{var('natGateway')}]", location=LOCATION,
                   sku={"name": "Standard"},
                   depends_on=[expr(rid("Microsoft.Network/publicIPAddresses", var("natIp")))],
                   properties={"idleTimeoutInMinutes": 4, "publicIpAddresses": [
                       {"id": expr(rid("Microsoft.Network/publicIPAddresses", var("natIp")))}]})
    vnet = resource(
        VNET_KIND, f"[{var('vnet')}]", location=LOCATION,
        depends_on=[expr(rid("Microsoft.Network/networkSecurityGroups", var("nsg"))),
                    expr(rid("Microsoft.Network/natGateways", var("natGateway")))],
        properties={"addressSpace": {"addressPrefixes": [VNET_PREFIX]}, "subnets": [{
            "name": f"[{var('subnet')}]",
            "properties": {"addressPrefix": SUBNET_PREFIX, "defaultOutboundAccess": False,
                           "networkSecurityGroup": {"id": expr(rid("Microsoft.Network/networkSecurityGroups",
                                                                   var("nsg")))},
                           "natGateway": {"id": expr(rid("Microsoft.Network/natGateways", var("natGateway")))},
                           # The tasks read and write blobs: keep that traffic on Azure's backbone.
                           "serviceEndpoints": [{"service": "Microsoft.Storage"}]}}]})
    return [nsg, public_ip, nat, vnet]


def batch_account() -> dict:
    """Batch-managed pools, Entra authentication only (no shared keys), a system identity."""
    account = resource(
        BATCH_KIND, f"[{BATCH}]", location=LOCATION, identity={"type": "SystemAssigned"},
        properties={"poolAllocationMode": "BatchService", "allowedAuthenticationModes": ["AAD"],
                    "publicNetworkAccess": "Enabled",
                    "encryption": {"keySource": "Microsoft.Batch"}})
    suppress(account, "CKV_AZURE_76",
             "Microsoft-managed keys: the account keeps job and task definitions (predictd command lines, no "
             "data or secrets); a customer-managed key would add a Key Vault and its rotation to the deployment.")
    return account


def pool() -> dict:
    """The predictd pool: containers of the image, spot nodes by autoscale, no public IPs, the jobs' identity."""
    registry_entry = {"registryServer": expr(LOGIN_SERVER), "identityReference": {"resourceId": expr(IDENTITY_ID)}}
    before, after = AUTOSCALE_FORMULA.split("{max_nodes}")
    return resource(
        f"{BATCH_KIND}/pools", child(BATCH, sub(AZURE_BATCH_POOL)),
        depends_on=[expr(BATCH_ID), expr(SUBNET_ID), expr(REGISTRY_ID),
                    # nodes pull the image as the jobs' identity: its AcrPull grant must exist first
                    expr(role_assignment_id("AcrPull", scope_kind=REGISTRY_KIND, scope_name=REGISTRY,
                                            principal_key=JOB_PRINCIPAL))],
        identity={"type": "UserAssigned", "userAssignedIdentities": {expr(IDENTITY_ID): {}}},
        properties={
            "vmSize": expr(param("vmSize")),
            "taskSlotsPerNode": 1,  # one fold job (Spark local[*]) owns a node
            "interNodeCommunication": "Enabled",  # multi-instance tasks: a Spark standalone cluster
            "targetNodeCommunicationMode": "Simplified",
            "taskSchedulingPolicy": {"nodeFillType": "Pack"},
            "deploymentConfiguration": {"virtualMachineConfiguration": {
                "imageReference": dict(NODE_IMAGE), "nodeAgentSkuId": NODE_AGENT_SKU,
                "containerConfiguration": {"type": "DockerCompatible", "containerImageNames": [expr(IMAGE)],
                                           "containerRegistries": [registry_entry]}}},
            "scaleSettings": {"autoScale": {"formula": expr(f"concat({lit(before)}, string({param('maxNodes')}), "
                                                                 f"{lit(after)})"),
                                            "evaluationInterval": AUTOSCALE_INTERVAL}},
            "networkConfiguration": {"subnetId": expr(SUBNET_ID),
                                     "publicIPAddressConfiguration": {"provision": "NoPublicIPAddresses"}},
        })


def operator_batch_access() -> dict:
    """Read access to pools, jobs, tasks and task files for ``operatorPrincipalId``, when given."""
    grant = role_assignment("Azure Batch Account Reader", scope_kind=BATCH_KIND, scope_name=BATCH,
                            principal_id=param("operatorPrincipalId"), principal_key="operator",
                            depends_on=[expr(BATCH_ID)], principal_type=None)
    return {"condition": expr(f"not(empty({param('operatorPrincipalId')}))"), **grant}


def batch_resources() -> list[dict]:
    return [*job_identity(), registry(), *network(), batch_account(), pool(), operator_batch_access()]

