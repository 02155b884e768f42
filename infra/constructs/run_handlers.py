"""The four Lambda handlers of the cloud contract, their permissions and what triggers them."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations, aws_lambda as lambda_, aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from infra.build import lambda_code_dir
from infra.config import (CONFIG_SUFFIXES, CONFIGS_PREFIX, DATA_PREFIX, ENTRY_POINT, MAX_ATTEMPTS, RUNS_PREFIX,
                          SPARK_SUBMIT_PARAMETERS, DeploySettings)
from infra.constructs._policies import (OBJECT_READ, acknowledge_pattern_wildcard, acknowledge_prefix_wildcards,
                                        list_statement, logical_id, object_statement, pattern_statement)
from infra.constructs.emr_ec2_runner import EmrEc2Runner
from infra.constructs.handler_function import HandlerFunction
from infra.constructs.job_state_rule import JobStateRule
from infra.constructs.notifications import RunNotifications
from infra.constructs.run_ledger import RunLedger
from infra.constructs.spark_application import SparkApplication
from infra.constructs.tick_schedule import TickSchedule
from predictd_core.cloud.contract import REPROCESS_DELAY_SECONDS, error_key
from predictd_core.cloud.settings import aws_environment

# configs/NAME.yaml -> configs/NAME.error.json (the contract's error_key): the suffix every error file has.
ERROR_SUFFIX = error_key(f"{CONFIGS_PREFIX}x.yaml").removeprefix(f"{CONFIGS_PREFIX}x")

# Handlers write (and, once the config is valid again, delete) configs/NAME.error.json and no other object
# under configs/; under runs/ they write run files, copy attempts to models/ (PutObject is the copy's target)
# and tag scratch attempts.
CONFIG_WRITE = ("s3:PutObject", "s3:DeleteObject")
ERROR_FILES = f"{CONFIGS_PREFIX}*{ERROR_SUFFIX}"
RUN_WRITE = ("s3:PutObject", "s3:PutObjectTagging")
ALL_PREFIXES = [CONFIGS_PREFIX, DATA_PREFIX, RUNS_PREFIX]
# What finding the configs that use a new data object reads: the configs and the tracks tables they name.
INPUT_PREFIXES = [CONFIGS_PREFIX, DATA_PREFIX]
# The id under which aws_s3.Bucket.add_event_notification puts its singleton custom resource in the stack.
NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


class RunHandlers(Construct):
    """on_config (configs/*.yaml|yml created), on_data (data/ created), on_job_state (job state changes) and
    on_schedule (every five minutes).

    Parameters
    ----------
    settings : DeploySettings
        With ``engine=emr-ec2`` the handlers start executions of ``runner``'s state machine.
    bucket, ledger, notifications, spark
        The resources the handlers act on.
    runner : EmrEc2Runner, optional
        Present exactly when the engine is ``emr-ec2``.

    Attributes
    ----------
    on_config, on_data, on_job_state, on_schedule : HandlerFunction
    environment : dict[str, str]
        The contract's variables, the same for the four functions.
    job_state_rule : JobStateRule
    schedule : TickSchedule
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: DeploySettings, bucket: s3.IBucket,
                 ledger: RunLedger, notifications: RunNotifications, spark: SparkApplication,
                 runner: EmrEc2Runner | None = None) -> None:
        super().__init__(scope, construct_id)
        fields = {"bucket": bucket.bucket_name, "ledger_table": ledger.table.table_name,
                  "application_id": spark.application.attr_application_id, "job_role_arn": spark.job_role.role_arn,
                  "topic_arn": notifications.topic.topic_arn, "max_attempts": str(MAX_ATTEMPTS),
                  "entry_point": ENTRY_POINT, "engine": settings.engine, "spark_parameters": SPARK_SUBMIT_PARAMETERS,
                  "reprocess_delay": str(REPROCESS_DELAY_SECONDS)}
        if runner is not None:
            fields["state_machine_arn"] = runner.state_machine.state_machine_arn
        self.environment = aws_environment(**fields)
        # Start jobs, read their state (the reconciler) and cancel them (a failed or cancelled run).
        jobs = spark.start_job_statements() + spark.job_control_statements()
        if runner is not None:
            jobs += runner.start_execution_statements() + runner.execution_control_statements()

        code = lambda_.Code.from_asset(str(lambda_code_dir()))
        self._bucket, self._code, self._notifications, self._ledger = bucket, code, notifications, ledger
        self._jobs, self._spark, self._runner = jobs, spark, runner
        # The config handler and the tick start runs: they read every prefix (the tick advances runs as the
        # job-state handler does) and write run files and the error files next to configs.
        self.on_config = self._handler("OnConfig", "handlers.on_config.handler", ALL_PREFIXES, write_configs=True)
        # The data handler only queues reprocessing in the ledger: it reads the configs and the tracks tables
        # they name, and starts, writes and publishes nothing (the tick starts the runs).
        self.on_data = self._handler("OnData", "handlers.on_data.handler", INPUT_PREFIXES, write_configs=False,
                                     runs_jobs=False)
        # The job-state handler works inside runs/ only (copies attempts to models/, writes run.json).
        self.on_job_state = self._handler("OnJobState", "handlers.on_job_state.handler", [RUNS_PREFIX],
                                          write_configs=False)
        # The tick lists the ledger (runs to cancel or reconcile, waiting reprocessing batches): it alone scans.
        self.on_schedule = self._handler("OnSchedule", "handlers.on_schedule.handler", ALL_PREFIXES,
                                         write_configs=True, scan_ledger=True)

        for suffix in CONFIG_SUFFIXES:
            bucket.add_event_notification(s3.EventType.OBJECT_CREATED, s3n.LambdaDestination(self.on_config.function),
                                          s3.NotificationKeyFilter(prefix=CONFIGS_PREFIX, suffix=suffix))
        bucket.add_event_notification(s3.EventType.OBJECT_CREATED, s3n.LambdaDestination(self.on_data.function),
                                      s3.NotificationKeyFilter(prefix=DATA_PREFIX))
        self._acknowledge_notifications_handler()
        self.job_state_rule = JobStateRule(
            self, "JobStateRule", function=self.on_job_state.function,
            application_id=spark.application.attr_application_id,
            dead_letter_queue=self.on_job_state.dead_letter_queue,
            state_machine_arn=runner.state_machine.state_machine_arn if runner is not None else None)
        self.schedule = TickSchedule(self, "Schedule", function=self.on_schedule.function,
                                     dead_letter_queue=self.on_schedule.dead_letter_queue)

    def _handler(self, construct_id: str, handler: str, read: list[str], *, write_configs: bool,
                 runs_jobs: bool = True, scan_ledger: bool = False) -> HandlerFunction:
        """One HandlerFunction with the shared code and environment and the statements it needs: reading
        ``read`` and the ledger, always; writing the error files (``write_configs``); with ``runs_jobs``,
        writing run files, starting, reading and cancelling jobs and publishing run notifications;
        scanning the ledger (``scan_ledger``)."""
        bucket = self._bucket
        statements = [object_statement(bucket, OBJECT_READ, read), list_statement(bucket, read),
                      self._ledger.read_write_statement(scan=scan_ledger)]
        if runs_jobs:
            statements += [object_statement(bucket, RUN_WRITE, [RUNS_PREFIX]),
                           *self._notifications.publish_statements(), *self._jobs]
        if write_configs:
            statements.append(pattern_statement(bucket, CONFIG_WRITE, [ERROR_FILES]))
        function = HandlerFunction(self, construct_id, handler=handler, code=self._code,
                                   environment=self.environment, notifications=self._notifications,
                                   statements=statements)
        acknowledge_prefix_wildcards(function, bucket, read)
        if write_configs:
            acknowledge_pattern_wildcard(function, bucket, ERROR_FILES,
                                         "The error files configs/NAME.error.json beside the configs: one per "
                                         "config name, known only when a config arrives.")
        if runs_jobs:
            self._acknowledge_job_wildcards(function)
            if self._runner is not None:
                self._runner.acknowledge_execution_wildcard(function)
        return function

    def _acknowledge_notifications_handler(self) -> None:
        """The function CDK adds to configure bucket notifications carries the Lambda basic execution policy."""
        handler = Stack.of(self).node.find_child(NOTIFICATIONS_HANDLER_ID)
        Validations.of(handler).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
               "AWSLambdaBasicExecutionRole]",
            reason="CDK's own bucket-notifications custom resource (runs at deploy time only); its role takes "
                   "the basic execution policy to write its logs and is not configurable."))

    def _acknowledge_job_wildcards(self, handler: HandlerFunction) -> None:
        """Job runs are created at run time: only the application's ARN with `/jobruns/*` can name them."""
        Validations.of(handler).acknowledge(Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::<{logical_id(self._spark.application)}.Arn>/jobruns/*]",
            reason="Job run ids exist only at run time: StartJobRun tags the job run it creates (TagResource), the "
                   "reconciler reads job runs (GetJobRun) and a failed run cancels its jobs (CancelJobRun)."))
