"""The predictd bucket (configs/, data/, runs/) and the bucket that receives its server access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Tags, aws_s3 as s3
from constructs import Construct

from infra.config import LEDGER_TABLE_TAG, LOGS_PREFIX, SCRATCH_EXPIRY_DAYS, SCRATCH_TAG

NONCURRENT_VERSION_DAYS = 30
INCOMPLETE_UPLOAD_DAYS = 7
CLUSTER_LOG_DAYS = 30
ACCESS_LOG_DAYS = 365


def _secure_bucket_props() -> dict:
    """Encryption, TLS-only, no public access and owner-enforced objects: what both buckets share."""
    return dict(encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                removal_policy=RemovalPolicy.RETAIN)


class DataBucket(Construct):
    """The one bucket of the contract, versioned, with lifecycle rules and the ledger tag.

    S3-managed encryption (SSE-S3) rather than KMS: the EMR jobs, the handlers and people uploading tracks
    then need no key grants, and S3 access logs cannot be delivered to a KMS-encrypted bucket anyway.

    Parameters
    ----------
    ledger_table_name : str
        Written to the bucket tag ``predictd:ledger-table`` (`predictd status --bucket` reads it).

    Attributes
    ----------
    bucket, access_log_bucket : aws_s3.Bucket
    """

    def __init__(self, scope: Construct, construct_id: str, *, ledger_table_name: str) -> None:
        super().__init__(scope, construct_id)
        self.access_log_bucket = s3.Bucket(
            self, "AccessLogs", **_secure_bucket_props(),
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(ACCESS_LOG_DAYS),
                                              abort_incomplete_multipart_upload_after=Duration.days(
                                                  INCOMPLETE_UPLOAD_DAYS))])

        self.bucket = s3.Bucket(
            self, "Bucket", **_secure_bucket_props(), versioned=True,
            server_access_logs_bucket=self.access_log_bucket, server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                # Replaced configs and tracks, and overwritten run outputs, stay recoverable for a month.
                s3.LifecycleRule(id="expire-noncurrent-versions",
                                 noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                                 abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS),
                                 expired_object_delete_marker=True),
                # Fold attempts (runs/RUN_ID/attempts/...) sit mid-key where a prefix filter cannot reach:
                # the job-state handler tags them once they are copied to models/ or failed for good.
                s3.LifecycleRule(id="expire-scratch-objects", tag_filters=dict([SCRATCH_TAG]),
                                 expiration=Duration.days(SCRATCH_EXPIRY_DAYS)),
                s3.LifecycleRule(id="expire-cluster-logs", prefix=LOGS_PREFIX,
                                 expiration=Duration.days(CLUSTER_LOG_DAYS)),
            ])
        Tags.of(self.bucket).add(LEDGER_TABLE_TAG, ledger_table_name)
