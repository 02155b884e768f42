"""The EMR-on-EC2 engine: a state machine that runs one predictd command on a transient cluster (spot task nodes).

Execution input ``{"args": [predictd argv...]}``. The machine builds the step's command line, creates a
cluster (on-demand primary and core fleets, a spot task fleet; a bootstrap action installs the predictd
wheel without its dependencies and then its non-Spark dependencies: the cluster's own Spark runs it), adds
one ``spark-submit <entrypoint.py> ARGS...`` step, waits for it and terminates the cluster, on failure too.
A cluster left behind by an aborted execution terminates itself after an idle hour.

The cluster runs with a security configuration that encrypts its local disks (EBS volumes, root included,
with EBS encryption, and instance store with LUKS) with a KMS key of this stack, and its in-transit
traffic with TLS (a self-signed certificate the app makes: ``_emr_tls``).
"""

from __future__ import annotations

from pathlib import Path

import importlib.util
import tomllib

from aws_cdk import (Acknowledgment, ArnFormat, Duration, RemovalPolicy, Stack, Tags, Validations, aws_ec2 as ec2,
                     aws_emr as emr, aws_iam as iam, aws_kms as kms, aws_logs as logs, aws_s3 as s3,
                     aws_s3_assets as s3_assets, aws_stepfunctions as sfn, aws_stepfunctions_tasks as tasks)
from constructs import Construct

from infra.build import REPO, predictd_wheel
from infra.config import CONFIGS_PREFIX, DATA_PREFIX, EMR_RELEASE_LABEL, LOGS_PREFIX, RUNS_PREFIX
from infra.constructs._emr_tls import certificate_zip
from infra.constructs._policies import (OBJECT_READ, OBJECT_WRITE, acknowledge_prefix_wildcards, list_statement,
                                        object_statement)
from infra.constructs.messaging_key import account_administers

IMAGE_DIR = REPO / "containers" / "emr-serverless"
ENTRY_POINT = IMAGE_DIR / "entrypoint.py"
BOOTSTRAP_SCRIPT = Path(__file__).resolve().parents[1] / "emr_ec2" / "install-predictd.sh"
# Local disks: EBS volumes with EBS encryption, instance store with LUKS; the EMR service role launches the
# encrypted volumes (EBS calls KMS for it, through grants), the nodes' role unlocks the LUKS volumes.
NODE_KEY_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"]
EBS_KEY_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKeyWithoutPlaintext",
                   "kms:ReEncryptFrom", "kms:ReEncryptTo"]
CLUSTER_PYTHON = "/usr/bin/python3.11"
# AmazonEMRServicePolicy_v2 lets EMR act only on network resources carrying this tag.
EMR_MANAGED_TAG = ("for-use-with-amazon-emr-managed-policies", "true")

Fleet = tasks.EmrCreateCluster
PRIMARY_TYPES = ("m7i.xlarge", "m6i.xlarge", "m5.xlarge")
# Memory-optimised 8-vCPU types from several families and generations: the more pools spot can choose
# from, the less likely a whole-genome run loses its executors.
WORKER_TYPES = ("r7i.2xlarge", "r6i.2xlarge", "r5.2xlarge", "r7a.2xlarge", "r6a.2xlarge", "m7i.2xlarge")
# Two on-demand core nodes (HDFS, the driver's application master) and fourteen spot task nodes: sixteen
# workers, of which only the two that must not vanish mid-step pay the on-demand price.
CORE_UNITS = 2
TASK_UNITS = 14
SPOT_WAIT = Duration.minutes(20)
IDLE_TERMINATION = Duration.hours(1)
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS


def node_requirements() -> list[str]:
    """predictd's pinned dependencies and its aws extra without pyspark: the image's list (one function for both)."""
    spec = importlib.util.spec_from_file_location("runtime_requirements", IMAGE_DIR / "runtime_requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.runtime_requirements(tomllib.loads((REPO / "pyproject.toml").read_text()))


def _fleet(role: Fleet.InstanceRoleType, name: str, units: int, types: tuple[str, ...], *, spot: bool = False,
           weighted: bool = True) -> Fleet.InstanceFleetConfigProperty:
    """A fleet of ``units`` instances of ``types``: on demand, the cheapest available first, or spot,
    price-capacity-optimised and on demand after SPOT_WAIT. ``weighted``: each instance counts one unit."""
    if spot:
        capacity = {"target_spot_capacity": units}
        purchase = Fleet.InstanceFleetProvisioningSpecificationsProperty(
            spot_specification=Fleet.SpotProvisioningSpecificationProperty(
                allocation_strategy=Fleet.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
                timeout_action=Fleet.SpotTimeoutAction.SWITCH_TO_ON_DEMAND, timeout=SPOT_WAIT))
    else:
        capacity = {"target_on_demand_capacity": units}
        purchase = Fleet.InstanceFleetProvisioningSpecificationsProperty(
            on_demand_specification=Fleet.OnDemandProvisioningSpecificationProperty(
                allocation_strategy=Fleet.OnDemandAllocationStrategy.LOWEST_PRICE))
    weight = {"weighted_capacity": 1} if weighted else {}
    return Fleet.InstanceFleetConfigProperty(
        name=name, instance_fleet_type=role, **capacity,
        instance_type_configs=[Fleet.InstanceTypeConfigProperty(instance_type=kind, **weight) for kind in types],
        launch_specifications=purchase)


def _primary_fleet() -> Fleet.InstanceFleetConfigProperty:
    """One on-demand primary node: losing it would lose the cluster and the run."""
    return _fleet(Fleet.InstanceRoleType.MASTER, "primary", 1, PRIMARY_TYPES, weighted=False)


def _core_fleet() -> Fleet.InstanceFleetConfigProperty:
    """On-demand core nodes: they hold HDFS and YARN's application masters (the driver in cluster mode), whose
    loss to a spot interruption fails the step; the task nodes, executors only, are spot."""
    return _fleet(Fleet.InstanceRoleType.CORE, "core", CORE_UNITS, WORKER_TYPES)


class EmrEc2Runner(Construct):
    """The state machine, its network, the cluster's roles and the assets its nodes install.

    Parameters
    ----------
    bucket : aws_s3.IBucket
        The cluster reads ``configs/`` and ``data/``, reads and writes ``runs/`` and writes its logs under
        ``logs/emr-ec2/``.

    Attributes
    ----------
    state_machine : aws_stepfunctions.StateMachine
    """

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        if not ENTRY_POINT.is_file():
            raise FileNotFoundError(f"{ENTRY_POINT}: the EMR entry point the emr-ec2 engine uploads is missing")
        self._bucket = bucket
        wheel = predictd_wheel()
        self._wheel = s3_assets.Asset(self, "Wheel", path=str(wheel))
        self._entry_point = s3_assets.Asset(self, "EntryPoint", path=str(ENTRY_POINT))
        self._bootstrap = s3_assets.Asset(self, "Bootstrap", path=str(BOOTSTRAP_SCRIPT))
        self._certificates = s3_assets.Asset(self, "TlsCertificates", path=str(certificate_zip()))
        self.disk_key = kms.Key(self, "DiskKey", description="predictd EMR-on-EC2 cluster local disks",
                                enable_key_rotation=True, policy=iam.PolicyDocument(statements=[account_administers()]),
                                # Only transient clusters' volumes, deleted with their clusters, use the key.
                                removal_policy=RemovalPolicy.DESTROY)
        self._network = self._vpc()
        self._instance_role = self._cluster_instance_role()
        self._service_role = self._cluster_service_role()
        self.security_configuration = self._security_configuration()
        self.state_machine = self._state_machine(wheel.name)

    def start_execution_statements(self) -> list[iam.PolicyStatement]:
        """What a job starter needs: start executions of this state machine."""
        return [iam.PolicyStatement(actions=["states:StartExecution"],
                                    resources=[self.state_machine.state_machine_arn])]

    @property
    def executions_arn(self) -> str:
        """``arn:...:states:REGION:ACCOUNT:execution:<state machine name>:*``: its executions."""
        return Stack.of(self).format_arn(service="states", resource="execution",
                                         resource_name=f"{self.state_machine.state_machine_name}:*",
                                         arn_format=ArnFormat.COLON_RESOURCE_NAME)

    def execution_control_statements(self) -> list[iam.PolicyStatement]:
        """What the run logic needs besides starting: read an execution's status (the reconciler) and stop the
        executions of a failed or cancelled run; on this state machine's executions only."""
        return [iam.PolicyStatement(actions=["states:DescribeExecution", "states:StopExecution"],
                                    resources=[self.executions_arn])]

    def acknowledge_execution_wildcard(self, scope: Construct) -> None:
        """cdk-nag's IAM5 finding for the executions of this state machine granted below ``scope``."""
        stack = Stack.of(self)
        machine = stack.resolve(stack.get_logical_id(self.state_machine.node.default_child))
        Validations.of(scope).acknowledge(Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
               f"execution:<{machine}.Name>:*]",
            reason="Executions are named at run time: DescribeExecution and StopExecution can name them only by "
                   "the state machine's execution ARN pattern."))

    def _vpc(self) -> ec2.Vpc:
        """Public subnets in two zones, no NAT: nodes reach PyPI (the wheel's dependencies) and S3 directly.

        The EMR-managed security groups admit no inbound traffic from outside the cluster.
        """
        vpc = ec2.Vpc(self, "Network", max_azs=2, nat_gateways=0,
                      subnet_configuration=[ec2.SubnetConfiguration(name="cluster", subnet_type=ec2.SubnetType.PUBLIC,
                                                                    cidr_mask=24)],
                      flow_logs={"all": ec2.FlowLogOptions(traffic_type=ec2.FlowLogTrafficType.ALL)})
        Tags.of(vpc).add(*EMR_MANAGED_TAG)
        return vpc

    def _cluster_instance_role(self) -> iam.Role:
        """The nodes' role: the bucket prefixes of the contract, its log prefix and the three assets."""
        bucket = self._bucket
        role = iam.Role(self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
                        description="predictd EMR-on-EC2 cluster nodes")
        role.add_to_policy(object_statement(bucket, OBJECT_READ, [CONFIGS_PREFIX, DATA_PREFIX, RUNS_PREFIX]))
        role.add_to_policy(object_statement(bucket, OBJECT_WRITE, [RUNS_PREFIX, LOGS_PREFIX]))
        role.add_to_policy(list_statement(bucket, [CONFIGS_PREFIX, DATA_PREFIX, RUNS_PREFIX, LOGS_PREFIX]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[asset.bucket.arn_for_objects(asset.s3_object_key)
                       for asset in (self._wheel, self._entry_point, self._bootstrap, self._certificates)]))
        # LUKS on the instance store: each node asks KMS for its volume key.
        role.add_to_policy(iam.PolicyStatement(actions=NODE_KEY_ACTIONS, resources=[self.disk_key.key_arn]))
        acknowledge_prefix_wildcards(role, bucket, [CONFIGS_PREFIX, DATA_PREFIX, RUNS_PREFIX, LOGS_PREFIX])
        # EMR finds the nodes' instance profile by the name of the role the task passes as JobFlowRole.
        iam.InstanceProfile(self, "InstanceProfile", role=role, instance_profile_name=role.role_name)
        return role

    def _cluster_service_role(self) -> iam.Role:
        """The EMR service role: AWS's v2 EMR policy, which acts only on resources tagged for EMR."""
        role = iam.Role(self, "ServiceRole", description="predictd EMR-on-EC2 service role",
                        assumed_by=iam.ServicePrincipal("elasticmapreduce.amazonaws.com").with_conditions(
                            {"StringEquals": {"aws:SourceAccount": Stack.of(self).account}}),
                        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                            "service-role/AmazonEMRServicePolicy_v2")])
        role.add_to_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self._instance_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}))
        # EBS encryption with the disk key: EC2 encrypts the volumes EMR launches through grants of this role
        # (the EMR management guide's key permissions for EBS encryption; grants only for AWS resources).
        role.add_to_policy(iam.PolicyStatement(actions=EBS_KEY_ACTIONS, resources=[self.disk_key.key_arn]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], resources=[self.disk_key.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}))
        Validations.of(role).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2]",
            reason="AWS's scoped EMR service policy: it manages EC2 fleets, launch templates and security groups "
                   "only on resources tagged for-use-with-amazon-emr-managed-policies=true (this VPC)."))
        return role

    def _security_configuration(self) -> emr.CfnSecurityConfiguration:
        """Local disks encrypted with the disk key (EBS encryption and LUKS), traffic with TLS, S3 with SSE-S3
        (the bucket's own encryption: EMRFS then asks for it explicitly)."""
        return emr.CfnSecurityConfiguration(self, "SecurityConfiguration", security_configuration={
            "EncryptionConfiguration": {
                "EnableAtRestEncryption": True,
                "AtRestEncryptionConfiguration": {
                    "S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"},
                    "LocalDiskEncryptionConfiguration": {
                        "EncryptionKeyProviderType": "AwsKms", "AwsKmsKey": self.disk_key.key_arn,
                        "EnableEbsEncryption": True},
                },
                "EnableInTransitEncryption": True,
                "InTransitEncryptionConfiguration": {"TLSCertificateConfiguration": {
                    "CertificateProviderType": "PEM", "S3Object": self._certificates.s3_object_url}},
            }})

    def _state_machine(self, wheel_name: str) -> sfn.StateMachine:
        """Build the step arguments, create the cluster, run the step, terminate the cluster (also on failure)."""
        prefix = ["spark-submit", "--deploy-mode", "cluster", self._entry_point.s3_object_url]
        quoted = ", ".join(f"'{item}'" for item in prefix)
        build_args = sfn.Pass.jsonata(self, "BuildStepArgs", outputs={
            "args": "{% $states.input.args %}",
            "timeoutSeconds": "{% $states.input.timeoutSeconds %}",
            "stepArgs": "{% $append([" + quoted + "], $states.input.args) %}"})
        cluster_id = sfn.JsonPath.string_at("$.cluster.ClusterId")
        create = tasks.EmrCreateCluster(
            self, "CreateCluster", name=sfn.JsonPath.format("predictd-{}", sfn.JsonPath.execution_name),
            release_label=EMR_RELEASE_LABEL, applications=[Fleet.ApplicationConfigProperty(name="Spark")],
            cluster_role=self._instance_role, service_role=self._service_role,
            log_uri=self._bucket.s3_url_for_object(f"{LOGS_PREFIX}emr-ec2/"), visible_to_all_users=True,
            security_configuration=self.security_configuration.ref,
            auto_termination_policy_idle_timeout=IDLE_TERMINATION,
            instances=Fleet.InstancesConfigProperty(
                ec2_subnet_ids=[subnet.subnet_id for subnet in self._network.public_subnets],
                termination_protected=False,
                instance_fleets=[_primary_fleet(), _core_fleet(),
                                 _fleet(Fleet.InstanceRoleType.TASK, "task", TASK_UNITS, WORKER_TYPES, spot=True)]),
            bootstrap_actions=[Fleet.BootstrapActionConfigProperty(
                name="install-predictd", script_bootstrap_action=Fleet.ScriptBootstrapActionConfigProperty(
                    path=self._bootstrap.s3_object_url,
                    args=[self._wheel.s3_object_url, wheel_name, *node_requirements()]))],
            configurations=[Fleet.ConfigurationProperty(
                classification="spark-env", configurations=[Fleet.ConfigurationProperty(
                    classification="export",
                    properties={"PYSPARK_PYTHON": CLUSTER_PYTHON, "PYSPARK_DRIVER_PYTHON": CLUSTER_PYTHON})])],
            integration_pattern=sfn.IntegrationPattern.RUN_JOB, result_path="$.cluster")
        create.add_catch(sfn.Fail(self, "ClusterFailed", cause="the EMR cluster did not start"), result_path="$.error")

        step = tasks.EmrAddStep(
            self, "RunPredictd", cluster_id=cluster_id, name=sfn.JsonPath.execution_name, jar="command-runner.jar",
            args=sfn.JsonPath.list_at("$.stepArgs"), action_on_failure=tasks.ActionOnFailure.CONTINUE,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB, result_path="$.step",
            task_timeout=sfn.Timeout.at("$.timeoutSeconds"))  # by the job's stage (contract.STAGE_TIMEOUT_MINUTES)
        terminate_after_failure = tasks.EmrTerminateCluster(
            self, "TerminateAfterFailure", cluster_id=cluster_id, result_path=sfn.JsonPath.DISCARD,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB)
        terminate_after_failure.next(sfn.Fail(self, "StepFailed", cause="the predictd step failed or timed out"))
        step.add_catch(terminate_after_failure, result_path="$.error")
        terminate = tasks.EmrTerminateCluster(
            self, "Terminate", cluster_id=cluster_id, result_path=sfn.JsonPath.DISCARD,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB)

        definition = build_args.next(create).next(step).next(terminate).next(sfn.Succeed(self, "Done"))
        log_group = logs.LogGroup(self, "ExecutionLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
        machine = sfn.StateMachine(
            self, "StateMachine", definition_body=sfn.DefinitionBody.from_chainable(definition),
            tracing_enabled=True, comment="predictd: one command on a transient EMR-on-EC2 cluster",
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True))
        self._acknowledge_state_machine_role(machine.role)
        return machine

    @staticmethod
    def _acknowledge_state_machine_role(role: iam.IRole) -> None:
        """The wildcard resources CDK's EMR tasks, execution logging and tracing need, each for its reason."""
        account = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>"
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="elasticmapreduce:RunJobFlow creates a cluster that has no ARN yet (and AddTags tags it); "
                       "the CloudWatch Logs delivery and X-Ray actions of execution logging and tracing support "
                       "no resource-level permissions."),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{account.format(service='elasticmapreduce')}:cluster/*]",
                reason="Clusters are created per execution: AddJobFlowSteps, DescribeStep and TerminateJobFlows "
                       "can only name them by the account's cluster ARN pattern."),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/aws-service-role/"
                   "elasticmapreduce.amazonaws.com*/AWSServiceRoleForEMRCleanup*]",
                reason="EMR's cleanup service-linked role, created on first use; the statement is conditioned on "
                       "iam:AWSServiceName elasticmapreduce.amazonaws.com."))

