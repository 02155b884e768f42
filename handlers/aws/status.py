"""``predictd status`` on AWS: the run ledger in DynamoDB, named by ``--table``, ``$PREDICTD_LEDGER_TABLE``
or the bucket's ledger tag (set by the CDK stack)."""

from __future__ import annotations

import os

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from handlers.aws.records import DynamoRecords
from predictd_core.cloud.ledger import Ledger
from predictd_core.errors import PredictdInputError

LEDGER_TAG = "predictd:ledger-table"  # the bucket tag naming the ledger (infra.config.LEDGER_TABLE_TAG)
LEDGER_VARIABLE = "PREDICTD_LEDGER_TABLE"
ERRORS = (ClientError, BotoCoreError)  # what reading the ledger may raise: reported in one line


def open_ledger(store: str | None, table: str | None) -> Ledger:
    """The ledger of the deployment whose bucket is ``store`` (or whose table is ``table``)."""
    return Ledger(DynamoRecords(boto3.client("dynamodb"), ledger_table(table, store)))


def ledger_table(table: str | None, bucket: str | None) -> str:
    """The ledger table: ``--table``, else ``$PREDICTD_LEDGER_TABLE``, else the bucket's ledger tag.

    Raises
    ------
    PredictdInputError
        When none of them names a table.
    """
    if table:
        return table
    if os.environ.get(LEDGER_VARIABLE):
        return os.environ[LEDGER_VARIABLE]
    if not bucket:
        raise PredictdInputError("command line", "--bucket/--table",
                                 f"name the ledger: --table, ${LEDGER_VARIABLE}, or --bucket (its {LEDGER_TAG} tag)")
    try:
        tags = boto3.client("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchTagSet":
            raise
        tags = []
    for tag in tags:
        if tag["Key"] == LEDGER_TAG:
            return tag["Value"]
    raise PredictdInputError(f"s3://{bucket}", "tags", f"no {LEDGER_TAG} tag; give --table")
