"""IAM statements scoped to prefixes of the predictd bucket, with every action named (no `*` actions)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations, aws_iam as iam, aws_s3 as s3
from constructs import Construct

OBJECT_READ = ("s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging")
OBJECT_WRITE = ("s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject", "s3:AbortMultipartUpload")


def object_statement(bucket: s3.IBucket, actions: Sequence[str], prefixes: Sequence[str]) -> iam.PolicyStatement:
    """Allow ``actions`` on the objects under ``prefixes`` (``data/`` grants ``data/*``) of ``bucket``."""
    return iam.PolicyStatement(actions=list(actions),
                               resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes])


def pattern_statement(bucket: s3.IBucket, actions: Sequence[str], patterns: Sequence[str]) -> iam.PolicyStatement:
    """Allow ``actions`` on the objects whose keys match ``patterns`` (``configs/*.error.json``) of ``bucket``."""
    return iam.PolicyStatement(actions=list(actions), resources=[bucket.arn_for_objects(p) for p in patterns])


def list_statement(bucket: s3.IBucket, prefixes: Sequence[str]) -> iam.PolicyStatement:
    """Allow listing ``bucket`` only below ``prefixes`` (s3fs lists to find directories and zarr chunks)."""
    return iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                               conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}})


def acknowledge_prefix_wildcards(scope: Construct, bucket: s3.IBucket, prefixes: Sequence[str]) -> None:
    """Acknowledge cdk-nag's IAM5 finding for each ``<bucket>/prefix*`` object resource granted below ``scope``.

    Object keys under a prefix can only be granted with a trailing wildcard; the prefixes are the contract's.
    """
    bucket_id = logical_id(bucket.node.default_child)
    for prefix in prefixes:
        Validations.of(scope).acknowledge(Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
            reason=f"Objects under the {prefix} prefix of the predictd bucket (the cloud contract's layout)."))


def acknowledge_pattern_wildcard(scope: Construct, bucket: s3.IBucket, pattern: str, reason: str) -> None:
    """Acknowledge cdk-nag's IAM5 finding for the ``<bucket>/pattern`` object resource granted below ``scope``."""
    Validations.of(scope).acknowledge(Acknowledgment(
        id=f"AwsSolutions-IAM5[Resource::<{logical_id(bucket.node.default_child)}.Arn>/{pattern}]", reason=reason))


def logical_id(resource: CfnElement) -> str:
    """The CloudFormation logical id of an L1 resource, as cdk-nag writes it in finding ids (``<Id.Arn>``)."""
    stack = Stack.of(resource)
    return stack.resolve(stack.get_logical_id(resource))
