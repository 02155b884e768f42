"""The DynamoDB run ledger (the handlers' idempotent run records; `predictd status` reads it)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, aws_dynamodb as dynamodb, aws_iam as iam
from constructs import Construct

# The item actions the handlers use: conditional puts (new items, and replaces guarded by the item's version),
# consistent reads, a run's items by query.
LEDGER_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
# Listing runs and waiting reprocessing batches scans the table: the scheduled tick does (and `predictd
# status` with its user's credentials); the event handlers never list.
SCAN_ACTION = "dynamodb:Scan"


class RunLedger(Construct):
    """Table with string keys ``pk`` and ``sk`` (no secondary index: pointer items), on demand, with PITR.

    Retained when the stack is destroyed: it is the history of every run.

    Attributes
    ----------
    table : aws_dynamodb.Table
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self, "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def read_write_statement(self, *, scan: bool = False) -> iam.PolicyStatement:
        """Allow the ledger's item actions on this table only; with ``scan``, listing it too (the tick)."""
        actions = [*LEDGER_ACTIONS, SCAN_ACTION] if scan else LEDGER_ACTIONS
        return iam.PolicyStatement(actions=actions, resources=[self.table.table_arn])
