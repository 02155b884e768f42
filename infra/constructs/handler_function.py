"""One predictd Lambda handler: its function, role, log group, dead-letter queue and alarms."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import (Acknowledgment, Duration, RemovalPolicy, Validations, aws_cloudwatch as cloudwatch,
                     aws_iam as iam, aws_lambda as lambda_, aws_logs as logs, aws_sqs as sqs)
from constructs import Construct

from infra.constructs.notifications import RunNotifications

RUNTIME = lambda_.Runtime.PYTHON_3_12
MEMORY_MB = 512
TIMEOUT = Duration.minutes(2)
# Lambda retries a failed asynchronous invocation (S3 and EventBridge invoke asynchronously) twice, then
# sends the event to the dead-letter queue, which keeps it for the longest time SQS allows.
ASYNC_RETRIES = 2
DLQ_RETENTION = Duration.days(14)
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS


class HandlerFunction(Construct):
    """A python3.12 function with a role of its own that holds only the statements it is given.

    Parameters
    ----------
    handler : str
        ``handlers.on_config.handler`` and the like.
    code : aws_lambda.Code
        The shared code asset (handlers/, predictd_core/, pydantic, PyYAML).
    environment : Mapping[str, str]
        The contract's PREDICTD_* variables.
    notifications : RunNotifications
        Where its alarms (errors, events in the dead-letter queue) go (the topic lets exactly them publish).
    statements : list of aws_iam.PolicyStatement
        Everything the handler may do besides writing its logs and its dead-letter queue.

    Attributes
    ----------
    function : aws_lambda.Function
    dead_letter_queue : aws_sqs.Queue
    error_alarm, dead_letter_alarm : aws_cloudwatch.Alarm
    """

    def __init__(self, scope: Construct, construct_id: str, *, handler: str, code: lambda_.Code,
                 environment: Mapping[str, str], notifications: RunNotifications,
                 statements: list[iam.PolicyStatement]) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
        # A role of its own instead of the AWSLambdaBasicExecutionRole managed policy (logs on any group).
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"predictd Lambda {handler}")
        role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                               resources=[log_group.log_group_arn]))
        for statement in statements:
            role.add_to_policy(statement)

        self.dead_letter_queue = sqs.Queue(self, "DeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED,
                                           enforce_ssl=True, retention_period=DLQ_RETENTION)

        self.function = lambda_.Function(
            self, "Function", runtime=RUNTIME, handler=handler, code=code, environment=dict(environment),
            role=role, log_group=log_group, memory_size=MEMORY_MB, timeout=TIMEOUT,
            dead_letter_queue=self.dead_letter_queue, retry_attempts=ASYNC_RETRIES,
            description=f"predictd {handler}")
        Validations.of(self.function).acknowledge(Acknowledgment(
            id="AwsSolutions-L1",
            reason="The cloud contract pins python3.12: the code asset's pydantic-core wheels are built for "
                   "CPython 3.12 and the handlers are tested against it."))

        self.error_alarm = self.function.metric_errors(period=Duration.minutes(5)).create_alarm(
            self, "Errors", threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{handler} raised (the event is retried, then dead-lettered)")
        self.dead_letter_alarm = self.dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(5)).create_alarm(
            self, "DeadLettered", threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"events {handler} gave up on wait in its dead-letter queue")
        for alarm in (self.error_alarm, self.dead_letter_alarm):
            notifications.notify_on(alarm)
