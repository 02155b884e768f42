"""Alerts by email: failed handler invocations, dead-lettered events and failed Batch tasks.

A run's own outcome is in the ledger (``predictd status``); these alerts are for what the ledger cannot
record: a handler that fails before it writes, an event that never reached one, and tasks failing (a fold
retried is normal; a stream of failures is a broken image or a pool that cannot pull it).
"""

from __future__ import annotations

from infra.azure.arm import expr, param, resource, rid
from infra.azure.batch import BATCH_ID
from infra.azure.events import TOPIC_ID
from infra.azure.functions import INSIGHTS_ID
from infra.azure.names import var

ACTION_GROUP_ID = rid("Microsoft.Insights/actionGroups", var("actionGroup"))


def action_group() -> dict:
    return resource("Microsoft.Insights/actionGroups", f"[{var('actionGroup')}]", location="Global",
                    properties={"groupShortName": "predictd", "enabled": True,
                                "emailReceivers": [{"name": "operator", "emailAddress": expr(param("alertEmail")),
                                                    "useCommonAlertSchema": True}]})


def metric_alert(name: str, description: str, scope: str, namespace: str, metric: str, severity: int) -> dict:
    """An alert when ``metric`` of the resource ``scope`` (inner id) totals more than 0 in 15 minutes."""
    return resource(
        "Microsoft.Insights/metricAlerts", f"[concat(parameters('namePrefix'), '-{name}')]", location="global",
        depends_on=[expr(scope), expr(ACTION_GROUP_ID)],
        properties={"description": description, "severity": severity, "enabled": True,
                    "scopes": [expr(scope)], "evaluationFrequency": "PT5M", "windowSize": "PT15M",
                    "criteria": {"odata.type": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                                 "allOf": [{"criterionType": "StaticThresholdCriterion", "name": metric,
                                            "metricNamespace": namespace, "metricName": metric,
                                            "operator": "GreaterThan", "threshold": 0,
                                            "timeAggregation": "Total"}]},
                    "autoMitigate": True, "actions": [{"actionGroupId": expr(ACTION_GROUP_ID)}]})


def alert_resources() -> list[dict]:
    return [
        action_group(),
        metric_alert("function-failures", "A predictd handler invocation failed (Application Insights).",
                     INSIGHTS_ID, "microsoft.insights/components", "requests/failed", 1),
        metric_alert("dead-lettered-events", "Event Grid dead-lettered a blob event: no handler saw it "
                     "(read the deadletter container).", TOPIC_ID, "Microsoft.EventGrid/systemTopics",
                     "DeadLetteredCount", 1),
        metric_alert("failed-tasks", "Batch tasks failed (a retried fold is normal; a stream is not).",
                     BATCH_ID, "Microsoft.Batch/batchAccounts", "TaskFailEvent", 3),
    ]
