"""The customer managed KMS key of the run notifications topic."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, RemovalPolicy, Stack, aws_iam as iam, aws_kms as kms
from constructs import Construct

# The key policy names every action instead of the usual `kms:*` for the account: the account (so IAM
# policies, and CloudFormation through the deploying role) may administer and use the key, nothing broader.
ACCOUNT_KEY_ACTIONS = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:Decrypt", "kms:DeleteAlias",
    "kms:DescribeKey", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation",
    "kms:Encrypt", "kms:GenerateDataKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListAliases",
    "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListKeyRotations", "kms:ListResourceTags", "kms:PutKeyPolicy",
    "kms:RetireGrant", "kms:RevokeGrant", "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion", "kms:TagResource",
    "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
]
# What a publisher to an encrypted SNS topic needs on its key. AWS's guides write `kms:GenerateDataKey*`; SNS
# server-side encryption calls GenerateDataKey and Decrypt only, and the app grants no wildcard actions.
PUBLISH_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]
CLOUDWATCH = "cloudwatch.amazonaws.com"


def account_administers(sid: str = "AccountAdministersAndUsesTheKey") -> iam.PolicyStatement:
    """The key policy statement that lets the account's IAM policies administer and use a key (named actions)."""
    return iam.PolicyStatement(sid=sid, actions=ACCOUNT_KEY_ACTIONS, principals=[iam.AccountRootPrincipal()],
                               resources=["*"])


def alarm_arn_pattern(scope: Construct) -> str:
    """``arn:PARTITION:cloudwatch:REGION:ACCOUNT:alarm:*``: every alarm of the stack's account and region."""
    return Stack.of(scope).format_arn(service="cloudwatch", resource="alarm", resource_name="*",
                                      arn_format=ArnFormat.COLON_RESOURCE_NAME)


class MessagingKey(Construct):
    """A rotating KMS key for SNS that CloudWatch alarms may use to publish their state changes.

    An alarm action publishes as ``cloudwatch.amazonaws.com``, which needs Decrypt and GenerateDataKey on the
    topic's key (the AWS managed SNS key cannot allow it). Scoped to alarms of this account and region
    (aws:SourceAccount, aws:SourceArn): the key cannot name the alarms themselves, which depend on the topic
    that depends on this key.

    Attributes
    ----------
    key : aws_kms.Key
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        policy = iam.PolicyDocument(statements=[
            account_administers(),
            iam.PolicyStatement(sid="CloudWatchAlarmsPublish", actions=PUBLISH_ACTIONS,
                                principals=[iam.ServicePrincipal(CLOUDWATCH)], resources=["*"],
                                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                                            "ArnLike": {"aws:SourceArn": alarm_arn_pattern(self)}}),
        ])
        self.key = kms.Key(self, "Key", description="predictd run notifications (SNS) and their alarms",
                           enable_key_rotation=True, policy=policy,
                           # Only the topic, deleted with the stack, uses the key: no data outlives it.
                           removal_policy=RemovalPolicy.DESTROY)
