"""The customer managed KMS key of the run notifications topic."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack, aws_iam as iam, aws_kms as kms
from constructs import Construct

# The key policy names every action instead of the usual `kms:*` for the account: the account (so IAM
# policies, and CloudFormation through the deploying role) may administer and use the key, nothing broader.
_ACCOUNT_ACTIONS = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:Decrypt", "kms:DeleteAlias",
    "kms:DescribeKey", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation",
    "kms:Encrypt", "kms:GenerateDataKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListAliases",
    "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListKeyRotations", "kms:ListResourceTags", "kms:PutKeyPolicy",
    "kms:RetireGrant", "kms:RevokeGrant", "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion", "kms:TagResource",
    "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
]
# What a publisher to an encrypted SNS topic needs on its key.
PUBLISH_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]


class MessagingKey(Construct):
    """A rotating KMS key for SNS that CloudWatch alarms may use to publish their state changes.

    Attributes
    ----------
    key : aws_kms.Key
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        account = Stack.of(self).account
        policy = iam.PolicyDocument(statements=[
            iam.PolicyStatement(sid="AccountAdministersAndUsesTheKey", actions=_ACCOUNT_ACTIONS,
                                principals=[iam.AccountRootPrincipal()], resources=["*"]),
            # An alarm action publishes as cloudwatch.amazonaws.com: the AWS managed SNS key cannot allow it.
            iam.PolicyStatement(sid="CloudWatchAlarmsPublish", actions=PUBLISH_ACTIONS,
                                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")], resources=["*"],
                                conditions={"StringEquals": {"aws:SourceAccount": account}}),
        ])
        self.key = kms.Key(self, "Key", description="predictd run notifications (SNS) and their alarms",
                           enable_key_rotation=True, policy=policy,
                           # Only the topic, deleted with the stack, uses the key: no data outlives it.
                           removal_policy=RemovalPolicy.DESTROY)
