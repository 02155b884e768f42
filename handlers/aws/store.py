"""The deployment's S3 bucket as the contract's object store."""

from __future__ import annotations

from typing import Any

from predictd_core.cloud.contract import SCRATCH_TAG, ObjectVersion


class S3Store:
    """``ObjectStore`` over one versioned bucket (a boto3 ``s3`` client).

    Existence is asked by listing, not HEAD: the handlers' role may list the bucket's prefixes, and
    without a read grant on the object S3 answers a HEAD of a missing key 403.
    """

    cloud = "aws"

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.name = bucket

    @property
    def root(self) -> str:
        return f"s3://{self.name}/"

    def read_version(self, obj: ObjectVersion) -> str | None:
        """The text of exactly the object version an event named (a version of a versioned bucket stays)."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=obj.store, Key=obj.key, VersionId=obj.version_id)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "NoSuchVersion"):
                return None
            raise
        return response["Body"].read().decode()

    def read_current(self, key: str) -> tuple[ObjectVersion, bytes] | None:
        if key not in self.keys(key):
            return None
        response = self.client.get_object(Bucket=self.name, Key=key)
        version = ObjectVersion(cloud="aws", store=self.name, key=key, version_id=response.get("VersionId") or "null")
        return version, response["Body"].read()

    def put(self, key: str, payload: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=payload, ContentType=content_type)

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=key)

    def copy(self, source: str, target: str) -> None:
        self.client.copy_object(Bucket=self.name, Key=target, CopySource={"Bucket": self.name, "Key": source},
                                TaggingDirective="REPLACE")

    def tag_scratch(self, key: str) -> None:
        name, value = SCRATCH_TAG
        self.client.put_object_tagging(Bucket=self.name, Key=key, Tagging={"TagSet": [{"Key": name, "Value": value}]})
