"""The EMR Serverless Spark application that runs predictd's jobs, and the role the jobs run as."""

from __future__ import annotations

from aws_cdk import (Acknowledgment, ArnFormat, RemovalPolicy, Stack, Validations, aws_ecr as ecr,
                     aws_emrserverless as emrs, aws_iam as iam, aws_logs as logs, aws_s3 as s3)
from constructs import Construct

from infra.config import CONFIGS_PREFIX, DATA_PREFIX, EMR_RELEASE_LABEL, RUNS_PREFIX
from infra.constructs._policies import (OBJECT_READ, OBJECT_WRITE, acknowledge_prefix_wildcards, list_statement,
                                        object_statement)

IDLE_TIMEOUT_MINUTES = 15
# The ceiling over all concurrent jobs of the application: ten fold jobs of 10 executors x 4 vCPU with
# room for the drivers. A Roadmap-size run fits; a runaway run stops here instead of at the account quota.
MAXIMUM_CAPACITY = {"cpu": "400 vCPU", "memory": "3000 GB", "disk": "20000 GB"}
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS


class SparkApplication(Construct):
    """An auto-starting, auto-stopping Spark application on the predictd image, and its job role.

    Parameters
    ----------
    bucket : aws_s3.IBucket
        The jobs read ``configs/`` and ``data/`` and read and write ``runs/``; nothing else.
    repository : aws_ecr.IRepository
        Holds the predictd image (``containers/emr-serverless/Dockerfile``).
    image_tag : str
        The tag of the image the application runs.

    Attributes
    ----------
    application : aws_emrserverless.CfnApplication
    job_role : aws_iam.Role
        The execution role every job run passes (``PREDICTD_JOB_ROLE_ARN``).
    log_group : aws_logs.LogGroup
        Driver and executor logs of every job.
    """

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket, repository: ecr.IRepository,
                 image_tag: str) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "JobLogs", retention=LOG_RETENTION,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.application = emrs.CfnApplication(
            self, "Application", name="predictd", type="Spark", release_label=EMR_RELEASE_LABEL,
            architecture="X86_64",
            image_configuration=emrs.CfnApplication.ImageConfigurationInputProperty(
                image_uri=f"{repository.repository_uri}:{image_tag}"),
            auto_start_configuration=emrs.CfnApplication.AutoStartConfigurationProperty(enabled=True),
            auto_stop_configuration=emrs.CfnApplication.AutoStopConfigurationProperty(
                enabled=True, idle_timeout_minutes=IDLE_TIMEOUT_MINUTES),
            maximum_capacity=emrs.CfnApplication.MaximumAllowedResourcesProperty(**MAXIMUM_CAPACITY),
            monitoring_configuration=emrs.CfnApplication.MonitoringConfigurationProperty(
                cloud_watch_logging_configuration=emrs.CfnApplication.CloudWatchLoggingConfigurationProperty(
                    enabled=True, log_group_name=self.log_group.log_group_name, log_stream_name_prefix="predictd")),
        )
        self.job_role = self._job_role(bucket)

    @property
    def application_arn(self) -> str:
        """The application's ARN (the resource of emr-serverless:StartJobRun)."""
        return self.application.attr_arn

    @property
    def job_runs_arn(self) -> str:
        """``<application ARN>/jobruns/*``: the application's job runs, whose ids exist only at run time."""
        return f"{self.application_arn}/jobruns/*"

    def job_control_statements(self) -> list[iam.PolicyStatement]:
        """What the run logic needs besides starting: read a job run's state (the reconciler's GetJobRun, and
        the failure reason the state-change event does not carry) and cancel job runs of a failed or
        cancelled run; on this application's job runs only."""
        return [iam.PolicyStatement(actions=["emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"],
                                    resources=[self.job_runs_arn])]

    def start_job_statements(self) -> list[iam.PolicyStatement]:
        """What a job starter needs: start job runs of this application, tagged, and pass the job role."""
        return [
            iam.PolicyStatement(actions=["emr-serverless:StartJobRun"], resources=[self.application_arn]),
            # StartJobRun with tags (run, stage, job, attempt) tags the new job run: tag-on-create.
            iam.PolicyStatement(actions=["emr-serverless:TagResource"], resources=[self.job_runs_arn]),
            iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.job_role.role_arn],
                                conditions={"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}),
        ]

    def _job_role(self, bucket: s3.IBucket) -> iam.Role:
        """The job runtime role: the bucket prefixes of the contract and the application's log group.

        Jobs read ``configs/`` and ``data/`` (a run's config resolves its tracks against the config's folder)
        and read and write ``runs/`` (the run config, stores, attempts, models, outputs); nothing else of the
        bucket. Only this application's jobs may assume the role (aws:SourceArn, aws:SourceAccount: the
        confused-deputy conditions EMR Serverless documents for job runtime roles).
        """
        stack = Stack.of(self)
        role = iam.Role(self, "JobRole", description="predictd EMR Serverless jobs",
                        assumed_by=iam.ServicePrincipal("emr-serverless.amazonaws.com").with_conditions(
                            {"StringEquals": {"aws:SourceAccount": stack.account},
                             # The application, or one of its job runs: whichever EMR Serverless names.
                             "ArnLike": {"aws:SourceArn": [self.application_arn, f"{self.application_arn}/*"]}}))
        role.add_to_policy(object_statement(bucket, OBJECT_READ, [CONFIGS_PREFIX, DATA_PREFIX, RUNS_PREFIX]))
        role.add_to_policy(object_statement(bucket, OBJECT_WRITE, [RUNS_PREFIX]))
        role.add_to_policy(list_statement(bucket, [CONFIGS_PREFIX, DATA_PREFIX, RUNS_PREFIX]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[self.log_group.log_group_arn]))
        # EMR Serverless looks the configured log group up by name before a job writes to it.
        describe_groups = stack.format_arn(service="logs", resource="log-group", resource_name="*",
                                           arn_format=ArnFormat.COLON_RESOURCE_NAME)
        role.add_to_policy(iam.PolicyStatement(actions=["logs:DescribeLogGroups"], resources=[describe_groups]))
        acknowledge_prefix_wildcards(role, bucket, [CONFIGS_PREFIX, DATA_PREFIX, RUNS_PREFIX])
        Validations.of(role).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*]",
            reason="logs:DescribeLogGroups has no resource-level scope narrower than the account's log groups; "
                   "EMR Serverless calls it to find the application's log group."))
        return role

