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
from infra.azure.names import (BATCH, JOB_IDENTITY, LOCATION, PARAMETERS, REGISTRY, STORAGE, child, sub,
                              var)

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

# The autoscale formula. Spot nodes only: as many as tasks are pending, at least `clusterNodes` whenever
# anything is pending, at most `maxNodes`, none when nothing is pending; a node goes only once its task has
# completed. What Batch's task variables count (learn.microsoft.com/azure/batch/batch-automatic-scaling,
# "Read-only service-defined variables"; source: MicrosoftDocs/azure-docs, articles/batch/
# batch-automatic-scaling.md): $ActiveTasks the tasks ready to run and not yet running (a later revision adds
# "For a multi-instance task, $ActiveTasks will include the number of instances set on the task"), $RunningTasks
# "the number of tasks in a running state", $PendingTasks their sum. Batch samples them every 30 s; the formula
# reads the last sample, so an idle pool empties within one evaluation interval (PT5M).
#
# A multi-instance task of N nodes (a config's `cloud: {nodes: N}`) needs N nodes at once, and the counts above
# can see it as one task: earlier revisions of that page say nothing of instances, and nothing says a *running*
# multi-instance task counts more than once. Counting tasks alone could then ask for fewer nodes than one
# cluster needs, and the task would wait forever. So whenever anything is pending, the formula asks for at least
# `clusterNodes` (the largest cluster a run may ask for): one such cluster can always start. What it does not
# do: size the pool for several clusters at once when Batch counts each as one task; they then take turns on the
# nodes there are (never fewer than one cluster's worth): slower, not stuck. Running tasks are never cut
# short: `taskcompletion` removes a node only once its task (or subtask) has ended. `maxNodes` caps the pool,
# except that it never keeps one cluster of `clusterNodes` from starting (a cap below that would stall such
# runs, not save money).
AUTOSCALE_FORMULA = " ".join([
    "$maxNodes = {max_nodes};",
    "$clusterNodes = {cluster_nodes};",
    "$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);",
    "$pending = $samples < 1 ? 0 : max(0, $PendingTasks.GetSample(1));",
    "$wanted = $pending > 0 ? max($pending, $clusterNodes) : 0;",
    "$TargetLowPriorityNodes = min($wanted, max($maxNodes, $clusterNodes));",
    "$TargetDedicatedNodes = 0;",
    "$NodeDeallocationOption = taskcompletion;",
])
# The formula's placeholders and the template parameters that fill them.
AUTOSCALE_PARAMETERS = {"{max_nodes}": "maxNodes", "{cluster_nodes}": "clusterNodes"}

# The template parameter of the largest cluster (to move into names.PARAMETERS beside maxNodes: it is
# registered there from here only because names.py belongs to another change).
CLUSTER_NODES_PARAMETER = {
    "type": "int", "defaultValue": 1, "minValue": 1, "maxValue": 100,
    "metadata": {"description": "Nodes of the largest cluster a run asks for (a config's cloud.nodes): whenever a "
                                "task is pending the pool keeps at least this many spot nodes, so that a "
                                "multi-instance task of that size can start."}}
PARAMETERS.setdefault("clusterNodes", CLUSTER_NODES_PARAMETER)


def autoscale_formula_expression(formula: str = AUTOSCALE_FORMULA) -> str:
    """``formula`` as an ARM expression: its placeholders replaced by the parameters' values."""
    parts, rest = [], formula
    while True:
        found = [(rest.index(key), key) for key in AUTOSCALE_PARAMETERS if key in rest]
        if not found:
            break
        at, key = min(found)
        parts += [lit(rest[:at]), f"string({param(AUTOSCALE_PARAMETERS[key])})"]
        rest = rest[at + len(key):]
    return expr(f"concat({', '.join([*parts, lit(rest)])})")


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
            "scaleSettings": {"autoScale": {"formula": autoscale_formula_expression(),
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

