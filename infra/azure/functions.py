"""The function app that hosts the handlers: Flex Consumption (FC1, Linux, Python 3.11), its identity and logs.

The host's own storage (``AzureWebJobsStorage``) and the code package are the contract's storage account,
reached with the app's system-assigned identity (no connection string). Its settings are the handlers'
environment (``AZURE_ENVIRONMENT`` of predictd_core/cloud/settings.py), each variable filled from the
resource that the template made for it.
"""

from __future__ import annotations

from infra.azure.arm import expr, param, ref, resource, rid, role_assignment, suppress
from infra.azure.batch import BATCH_ID, BATCH_KIND, IDENTITY_ID, IDENTITY_KIND, IMAGE, REGISTRY_ID
from infra.azure.config import (AZURE_BATCH_POOL, AZURE_ENVIRONMENT, AZURE_LEDGER_TABLE, AZURE_NOTICE_QUEUE,
                                FUNCTION_INSTANCE_MEMORY_MB, FUNCTION_MAX_INSTANCES, FUNCTION_RUNTIME,
                                LOG_RETENTION_DAYS, MAX_ATTEMPTS)
from infra.azure.names import BATCH, FUNCTION_APP, LOCATION, STORAGE, child, sub, var
from infra.azure.storage import ACCOUNT_ID
from predictd_core.cloud.contract import REPROCESS_DELAY_SECONDS

SITE_KIND = "Microsoft.Web/sites"
SITE_ID = rid(SITE_KIND, FUNCTION_APP)
INSIGHTS_KIND = "Microsoft.Insights/components"
INSIGHTS_ID = rid(INSIGHTS_KIND, var("appInsights"))
WORKSPACE_ID = rid("Microsoft.OperationalInsights/workspaces", var("workspace"))
APP_PRINCIPAL = "function-app"
STORAGE_KIND = "Microsoft.Storage/storageAccounts"


def _endpoint(service: str) -> str:
    return f"{ref(ACCOUNT_ID, STORAGE_KIND)}.primaryEndpoints.{service}"


# Each settings field of AzureSettings, as the template knows it (inner expressions or literals).
SETTINGS_VALUES = {
    "storage_account": expr(STORAGE),
    "blob_endpoint": expr(_endpoint("blob")),
    "table_endpoint": expr(_endpoint("table")),
    "queue_endpoint": expr(_endpoint("queue")),
    "ledger_table": AZURE_LEDGER_TABLE,
    "notice_queue": AZURE_NOTICE_QUEUE,
    "batch_endpoint": expr(f"concat('https://', {ref(BATCH_ID, BATCH_KIND)}.accountEndpoint)"),
    "batch_pool": AZURE_BATCH_POOL,
    "image": expr(IMAGE),  # each task of a container pool names its image: the one the pool prefetches
    "job_identity_client_id": expr(f"{ref(IDENTITY_ID, IDENTITY_KIND)}.clientId"),
    "job_identity_resource_id": expr(IDENTITY_ID),
    "max_attempts": str(MAX_ATTEMPTS),
    "reprocess_delay": str(REPROCESS_DELAY_SECONDS),
}


def handler_environment() -> dict[str, str]:
    """``AZURE_ENVIRONMENT``'s variables with their values.

    A settings field this module does not know fails the synth (KeyError) instead of deploying handlers
    that cannot load their settings.
    """
    missing = sorted(set(AZURE_ENVIRONMENT.values()) - set(SETTINGS_VALUES))
    if missing:
        raise KeyError(f"infra/azure/functions.py has no value for the handler settings {missing} "
                       "(predictd_core/cloud/settings.py, AZURE_ENVIRONMENT)")
    return {variable: SETTINGS_VALUES[field] for variable, field in AZURE_ENVIRONMENT.items()}


def monitoring() -> list[dict]:
    """Log Analytics workspace and the workspace-based Application Insights the host writes to (by identity)."""
    workspace = resource("Microsoft.OperationalInsights/workspaces", f"[{var('workspace')}]", location=LOCATION,
                         properties={"sku": {"name": "PerGB2018"}, "retentionInDays": LOG_RETENTION_DAYS})
    insights = resource(INSIGHTS_KIND, f"[{var('appInsights')}]", location=LOCATION, kind="web",
                        depends_on=[expr(WORKSPACE_ID)],
                        properties={"Application_Type": "web", "WorkspaceResourceId": expr(WORKSPACE_ID),
                                    "DisableLocalAuth": True})
    return [workspace, insights]


def function_app() -> list[dict]:
    """Plan, site (identity, HTTPS only, TLS 1.2, no FTP, no basic publishing credentials) and its settings."""
    plan = resource("Microsoft.Web/serverfarms", f"[{var('functionPlan')}]", location=LOCATION,
                    kind="functionapp", sku={"name": "FC1", "tier": "FlexConsumption"},
                    properties={"reserved": True})
    suppress(plan, "CKV_AZURE_225",
             "Not zone redundant: a zone outage delays handler invocations, and Event Grid retries each event "
             "for a day; the handlers are idempotent, so a delayed event starts its run once, late.")
    settings = [{"name": "AzureWebJobsStorage__accountName", "value": expr(STORAGE)},
                {"name": "APPLICATIONINSIGHTS_CONNECTION_STRING",
                 "value": expr(f"{ref(INSIGHTS_ID, INSIGHTS_KIND)}.ConnectionString")},
                # The host sends telemetry with its identity: the component refuses its instrumentation key.
                {"name": "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "value": "Authorization=AAD"},
                *({"name": name, "value": value} for name, value in handler_environment().items())]
    package = f"concat({_endpoint('blob')}, {param('deploymentContainer')})"
    site = resource(
        SITE_KIND, f"[{FUNCTION_APP}]", location=LOCATION, kind="functionapp,linux",
        identity={"type": "SystemAssigned"},
        depends_on=[expr(rid("Microsoft.Web/serverfarms", var("functionPlan"))), expr(ACCOUNT_ID),
                    expr(INSIGHTS_ID), expr(BATCH_ID), expr(IDENTITY_ID), expr(REGISTRY_ID)],
        properties={
            "serverFarmId": expr(rid("Microsoft.Web/serverfarms", var("functionPlan"))),
            "httpsOnly": True,
            "siteConfig": {"minTlsVersion": "1.2", "scmMinTlsVersion": "1.2", "ftpsState": "Disabled",
                           "http20Enabled": True, "appSettings": settings},
            "functionAppConfig": {
                "deployment": {"storage": {"type": "blobContainer", "value": expr(package),
                                           "authentication": {"type": "SystemAssignedIdentity"}}},
                "scaleAndConcurrency": {"maximumInstanceCount": FUNCTION_MAX_INSTANCES,
                                        "instanceMemoryMB": FUNCTION_INSTANCE_MEMORY_MB},
                "runtime": dict(FUNCTION_RUNTIME)}})
    suppress(site, "CKV_AZURE_222",
             "Public network access stays on: Event Grid delivers blob events to the function over its public "
             "endpoint (the AzureFunction endpoint type); the app serves no HTTP routes of its own.")
    suppress(site, "CKV_AZURE_17",
             "No incoming client certificates: Event Grid, the only caller, cannot present one; its deliveries "
             "are authenticated by the Functions host's system key.")
    suppress(site, "CKV_AZURE_212",
             "No always-ready instances: Flex Consumption scales from zero, and a run's events are rare and "
             "tolerate a cold start; an always-ready instance would bill every hour of the month.")
    suppress(site, "CKV_AZURE_213",
             "No health check path: the app has only event-triggered functions and no HTTP endpoint to probe; "
             "failed invocations alert through Application Insights (alerts.py).")
    # Publishing goes through Entra (`func azure functionapp publish` with az login): no FTP or SCM passwords.
    publishing = [resource(f"{SITE_KIND}/basicPublishingCredentialsPolicies", child(FUNCTION_APP, sub(kind)),
                           api="2024-04-01", depends_on=[expr(SITE_ID)], properties={"allow": False})
                  for kind in ("ftp", "scm")]
    return [plan, site, *publishing]


def app_role_assignments() -> list[dict]:
    """What the handlers may do, each on one resource.

    Storage Blob Data Owner rather than Contributor: the Functions host keeps its keys, leases and the
    deployment package in blobs with identity-based ``AzureWebJobsStorage``, for which Functions documents
    Owner (as Microsoft's Flex Consumption template grants); Table and Queue Data Contributor for the
    ledger and the notices; Azure Batch Job Submitter (jobs and tasks on the existing pool, no pool or
    account changes) on the Batch account; Monitoring Metrics Publisher for identity-based telemetry.
    """
    principal = f"{ref(SITE_ID, SITE_KIND, full=True)}.identity.principalId"
    on_storage = dict(scope_kind=STORAGE_KIND, scope_name=STORAGE, principal_id=principal,
                      principal_key=APP_PRINCIPAL, depends_on=[expr(SITE_ID), expr(ACCOUNT_ID)])
    return [
        role_assignment("Storage Blob Data Owner", **on_storage),
        role_assignment("Storage Table Data Contributor", **on_storage),
        role_assignment("Storage Queue Data Contributor", **on_storage),
        role_assignment("Azure Batch Job Submitter", scope_kind=BATCH_KIND, scope_name=BATCH, principal_id=principal,
                        principal_key=APP_PRINCIPAL, depends_on=[expr(SITE_ID), expr(BATCH_ID)]),
        role_assignment("Monitoring Metrics Publisher", scope_kind=INSIGHTS_KIND, scope_name=var("appInsights"),
                        principal_id=principal, principal_key=APP_PRINCIPAL,
                        depends_on=[expr(SITE_ID), expr(INSIGHTS_ID)]),
    ]


def function_resources() -> list[dict]:
    return [*monitoring(), *function_app(), *app_role_assignments()]

