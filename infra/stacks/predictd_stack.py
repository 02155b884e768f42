"""The stack that runs predictd: bucket, ledger, Spark, the handlers and, on request, EMR on EC2."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack, aws_ecr as ecr
from constructs import Construct

from infra.config import DeploySettings
from infra.constructs.data_bucket import DataBucket
from infra.constructs.emr_ec2_runner import EmrEc2Runner
from infra.constructs.messaging_key import MessagingKey
from infra.constructs.notifications import RunNotifications
from infra.constructs.run_handlers import RunHandlers
from infra.constructs.run_ledger import RunLedger
from infra.constructs.spark_application import SparkApplication


class PredictdStack(Stack):
    """Composition of the constructs; its outputs are what a user needs to run predictd.

    Parameters
    ----------
    repository : aws_ecr.IRepository
        The image repository (ImagesStack).
    settings : DeploySettings
        The engine and image tag chosen with ``-c``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, repository: ecr.IRepository,
                 settings: DeploySettings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        ledger = RunLedger(self, "Ledger")
        data = DataBucket(self, "Data", ledger_table_name=ledger.table.table_name)
        notifications = RunNotifications(self, "Notifications", key=MessagingKey(self, "MessagingKey").key)
        spark = SparkApplication(self, "Spark", bucket=data.bucket, repository=repository,
                                 image_tag=settings.image_tag)
        runner = EmrEc2Runner(self, "EmrEc2", bucket=data.bucket) if settings.uses_emr_ec2 else None
        RunHandlers(self, "Handlers", settings=settings, bucket=data.bucket, ledger=ledger,
                    notifications=notifications, spark=spark, runner=runner)

        CfnOutput(self, "BucketName", value=data.bucket.bucket_name, description="configs/, data/, runs/")
        CfnOutput(self, "LedgerTableName", value=ledger.table.table_name)
        CfnOutput(self, "ApplicationId", value=spark.application.attr_application_id)
        CfnOutput(self, "TopicArn", value=notifications.topic.topic_arn, description="subscribe to run notifications")
        CfnOutput(self, "RepositoryUri", value=repository.repository_uri)
        if runner is not None:
            CfnOutput(self, "StateMachineArn", value=runner.state_machine.state_machine_arn)
