"""The run logic's ports on AWS, built from the Lambda environment."""

from __future__ import annotations

import functools

import boto3

from handlers.aws.notifier import SnsNotifier
from handlers.aws.records import DynamoRecords
from handlers.aws.runners import EmrServerlessRunner, StepFunctionsRunner
from handlers.aws.store import S3Store
from predictd_core.cloud.ledger import Ledger
from predictd_core.cloud.runs import Runtime
from predictd_core.cloud.settings import AwsSettings, load_aws_settings


@functools.lru_cache(maxsize=4)
def runtime(settings: AwsSettings) -> Runtime:
    """The adapters for ``settings``, built once per warm Lambda container (``AWS_ENDPOINT_URL`` is
    honoured, which is how the tests point them at moto)."""
    session = boto3.session.Session()
    if settings.engine == "emr-serverless":
        runner = EmrServerlessRunner(session.client("emr-serverless"), settings.application_id,
                                     settings.job_role_arn, settings.entry_point, settings.spark_parameters)
    else:
        runner = StepFunctionsRunner(session.client("stepfunctions"), settings.state_machine_arn)
    return Runtime(store=S3Store(session.client("s3"), settings.bucket),
                   ledger=Ledger(DynamoRecords(session.client("dynamodb"), settings.ledger_table)),
                   runner=runner, notifier=SnsNotifier(session.client("sns"), settings.topic_arn),
                   max_attempts=settings.max_attempts, status_hint=f"--bucket {settings.bucket}",
                   reprocess_delay=settings.reprocess_delay)


def current_runtime() -> Runtime:
    """The runtime of the Lambda environment's settings."""
    return runtime(load_aws_settings())
