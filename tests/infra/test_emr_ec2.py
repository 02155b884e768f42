"""The EMR-on-EC2 variant (``-c engine=emr-ec2 -c image-tag=v7``): state machine, fleets, encryption, routing."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography import x509

from infra.config import EMR_RELEASE_LABEL
from infra.constructs.emr_ec2_runner import BOOTSTRAP_SCRIPT, ENTRY_POINT, node_requirements
from tests.infra.test_stack import _role_statements, functions_by_handler, of_type, one_of_type


def state_machine_definition(resources: dict) -> tuple[str, dict]:
    """(logical id, definition) of the state machine; Fn::Sub parts as their text, other tokens ``<token>``."""
    name, machine = one_of_type(resources, "AWS::StepFunctions::StateMachine")
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else part.get("Fn::Sub", "<token>") for part in parts)
    return name, json.loads(text)


def staged_asset(app, url: str) -> Path:
    """The file a ``s3://cdk-...-assets-.../HASH.ext`` URL of the template uploads (staged in cdk.out)."""
    manifest = json.loads((app.outdir / "Predictd.assets.json").read_text())
    object_key = url.rsplit("/", 1)[1]
    [asset] = [asset for asset in manifest["files"].values()
               if any(d["objectKey"] == object_key for d in asset["destinations"].values())]
    return app.outdir / asset["source"]["path"]


def test_cluster_has_on_demand_primary_and_core_fleets_and_a_spot_task_fleet(emr_ec2_app):
    _, definition = state_machine_definition(emr_ec2_app.resources)
    create = definition["States"]["CreateCluster"]
    assert create["Resource"].endswith(":elasticmapreduce:createCluster.sync")
    params = create["Parameters"]
    assert params["ReleaseLabel"] == EMR_RELEASE_LABEL
    assert params["Applications"] == [{"Name": "Spark"}]
    fleets = {fleet["InstanceFleetType"]: fleet for fleet in params["Instances"]["InstanceFleets"]}
    assert set(fleets) == {"MASTER", "CORE", "TASK"}
    assert fleets["MASTER"]["TargetOnDemandCapacity"] == 1 and "TargetSpotCapacity" not in fleets["MASTER"]
    # Core nodes (HDFS, the driver's application master in cluster mode) on demand, task nodes on spot.
    core = fleets["CORE"]
    assert core["TargetOnDemandCapacity"] >= 1 and "TargetSpotCapacity" not in core
    assert set(core["LaunchSpecifications"]) == {"OnDemandSpecification"}
    task = fleets["TASK"]
    assert task["TargetSpotCapacity"] >= 1 and "TargetOnDemandCapacity" not in task
    assert set(task["LaunchSpecifications"]) == {"SpotSpecification"}
    spot = task["LaunchSpecifications"]["SpotSpecification"]
    assert spot["AllocationStrategy"] == "price-capacity-optimized"
    assert spot["TimeoutAction"] == "SWITCH_TO_ON_DEMAND"
    for fleet in (core, task):
        assert len({config["InstanceType"] for config in fleet["InstanceTypeConfigs"]}) >= 4
    assert len(params["Instances"]["Ec2SubnetIds"]) == 2
    [bootstrap] = params["BootstrapActions"]
    script, (wheel_url, wheel_name, *requirements) = (bootstrap["ScriptBootstrapAction"][key]
                                                     for key in ("Path", "Args"))
    assert staged_asset(emr_ec2_app, script).read_bytes() == BOOTSTRAP_SCRIPT.read_bytes()
    # The nodes install predictd's pinned dependencies without pyspark: the cluster's Spark runs the jobs.
    assert requirements == node_requirements()
    assert not [r for r in requirements if r.lower().startswith("pyspark")]
    assert "numpy==" in " ".join(requirements) and "s3fs==" in " ".join(requirements)
    assert all("==" in requirement for requirement in requirements)
    assert re.fullmatch(r"predictd-0\.1\.0-py3-none-any\.whl", wheel_name)
    with zipfile.ZipFile(staged_asset(emr_ec2_app, wheel_url)) as wheel:
        assert "predictd_core/config.py" in wheel.namelist()
    [spark_env] = params["Configurations"]
    assert spark_env["Configurations"][0]["Properties"]["PYSPARK_PYTHON"] == "/usr/bin/python3.11"
    assert params["AutoTerminationPolicy"] == {"IdleTimeout": 3600}


def test_one_step_then_terminate_also_on_failure(emr_ec2_app):
    _, definition = state_machine_definition(emr_ec2_app.resources)
    states = definition["States"]
    assert definition["StartAt"] == "BuildStepArgs"
    # The step's command line is spark-submit, the uploaded entry point, then the execution's args.
    outputs = states["BuildStepArgs"]["Output"]
    assert states["BuildStepArgs"]["QueryLanguage"] == "JSONata"
    command = re.fullmatch(r"\{% \$append\(\['spark-submit', '--deploy-mode', 'cluster', '(s3://[^']+\.py)'\], "
                           r"\$states\.input\.args\) %\}", outputs["stepArgs"])
    assert command, outputs["stepArgs"]
    assert staged_asset(emr_ec2_app, command.group(1)).read_bytes() == ENTRY_POINT.read_bytes()
    step = states["RunPredictd"]
    assert step["Resource"].endswith(":elasticmapreduce:addStep.sync")
    assert step["Parameters"]["Step"]["HadoopJarStep"] == {"Jar": "command-runner.jar", "Args.$": "$.stepArgs"}
    assert step["TimeoutSecondsPath"] == "$.timeoutSeconds"  # the job's stage limit, from the execution input
    assert outputs["timeoutSeconds"] == "{% $states.input.timeoutSeconds %}"
    assert step["Next"] == "Terminate" and states["Terminate"]["Next"] == "Done"
    [catch] = step["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "TerminateAfterFailure"
    assert states["TerminateAfterFailure"]["Resource"].endswith(":elasticmapreduce:terminateCluster.sync")
    assert states[states["TerminateAfterFailure"]["Next"]]["Type"] == "Fail"


def test_handlers_start_executions_and_hear_their_status(emr_ec2_app):
    resources = emr_ec2_app.resources
    machine, _ = one_of_type(resources, "AWS::StepFunctions::StateMachine")
    for _, function in functions_by_handler(resources).values():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["PREDICTD_ENGINE"] == "emr-ec2"
        assert env["PREDICTD_STATE_MACHINE_ARN"] == {"Ref": machine}
    patterns = [rule["Properties"]["EventPattern"] for rule in of_type(resources, "AWS::Events::Rule").values()
                if "EventPattern" in rule["Properties"]]  # the other rule is the tick's schedule
    assert {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
            "detail": {"stateMachineArn": [{"Ref": machine}]}} in patterns
    assert any(pattern["source"] == ["aws.emr-serverless"] for pattern in patterns)
    starters = [body["Properties"]["PolicyDocument"]["Statement"]
                for body in of_type(resources, "AWS::IAM::Policy").values()]
    assert sum({"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": machine}} in statements
               for statements in starters) == 3  # on_config, on_job_state, on_schedule (not on_data)


def _run_bootstrap(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the bootstrap script with sudo, dnf, aws and python3.11 replaced by recorders: (result, calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for command in ("dnf", "aws", "python3.11"):
        (bin_dir / command).write_text(f'#!/bin/bash\necho "{command} $*" >> "{log}"\n')
        (bin_dir / command).chmod(0o755)
    (bin_dir / "sudo").write_text('#!/bin/bash\nexec "$@"\n')
    (bin_dir / "sudo").chmod(0o755)
    result = subprocess.run(["bash", str(BOOTSTRAP_SCRIPT), *args], capture_output=True, text=True,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    return result, (log.read_text().splitlines() if log.exists() else [])


def test_bootstrap_installs_the_wheel_without_dependencies_and_never_pyspark(tmp_path):
    wheel = "predictd-0.1.0-py3-none-any.whl"
    result, calls = _run_bootstrap(tmp_path, f"s3://assets/{wheel}", wheel, *node_requirements())
    assert result.returncode == 0, result.stderr
    pip_calls = [call for call in calls if call.startswith("python3.11 -m pip install")]
    assert pip_calls == [
        "python3.11 -m pip install --quiet --no-cache-dir " + " ".join(node_requirements()),
        f"python3.11 -m pip install --quiet --no-cache-dir --no-deps /tmp/{wheel}"]
    assert not [call for call in calls if "pyspark" in call]


@pytest.mark.parametrize("requirements", [["pyspark==3.5.7"], ["numpy==2.4.6", "pyspark"], []])
def test_bootstrap_refuses_pyspark_and_an_empty_list(tmp_path, requirements):
    result, calls = _run_bootstrap(tmp_path, "s3://assets/w.whl", "w.whl", *requirements)
    assert result.returncode == 2 and "install-predictd.sh:" in result.stderr
    assert calls == []


def test_security_configuration_encrypts_local_disks_and_traffic(emr_ec2_app):
    resources = emr_ec2_app.resources
    name, configuration = one_of_type(resources, "AWS::EMR::SecurityConfiguration")
    _, definition = state_machine_definition(resources)
    # CreateCluster names it (the Ref of a security configuration is its name).
    assert definition["States"]["CreateCluster"]["Parameters"]["SecurityConfiguration"] == "<token>"
    machine = one_of_type(resources, "AWS::StepFunctions::StateMachine")[1]
    assert {"Ref": name} in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    encryption = configuration["Properties"]["SecurityConfiguration"]["EncryptionConfiguration"]
    assert encryption["EnableAtRestEncryption"] is True and encryption["EnableInTransitEncryption"] is True
    disks = encryption["AtRestEncryptionConfiguration"]["LocalDiskEncryptionConfiguration"]
    assert disks["EncryptionKeyProviderType"] == "AwsKms" and disks["EnableEbsEncryption"] is True
    key = disks["AwsKmsKey"]["Fn::GetAtt"][0]
    assert resources[key]["Type"] == "AWS::KMS::Key" and resources[key]["Properties"]["EnableKeyRotation"] is True
    assert encryption["AtRestEncryptionConfiguration"]["S3EncryptionConfiguration"] == {"EncryptionMode": "SSE-S3"}
    tls = encryption["InTransitEncryptionConfiguration"]["TLSCertificateConfiguration"]
    assert tls["CertificateProviderType"] == "PEM"
    with zipfile.ZipFile(staged_asset(emr_ec2_app, tls["S3Object"]["Fn::Sub"])) as archive:
        assert sorted(archive.namelist()) == ["certificateChain.pem", "privateKey.pem", "trustedCertificates.pem"]
        certificate = x509.load_pem_x509_certificate(archive.read("certificateChain.pem"))
        assert archive.read("trustedCertificates.pem") == archive.read("certificateChain.pem")
        assert b"PRIVATE KEY" in archive.read("privateKey.pem")
    hosts = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    assert {"*.ec2.internal", "*.us-west-2.compute.internal", "*.eu-west-1.compute.internal"} <= set(hosts)


def test_cluster_roles_may_use_the_disk_key_and_read_the_certificates(emr_ec2_app):
    resources = emr_ec2_app.resources
    _, configuration = one_of_type(resources, "AWS::EMR::SecurityConfiguration")
    encryption = configuration["Properties"]["SecurityConfiguration"]["EncryptionConfiguration"]
    key = encryption["AtRestEncryptionConfiguration"]["LocalDiskEncryptionConfiguration"]["AwsKmsKey"]
    certificates = encryption["InTransitEncryptionConfiguration"]["TLSCertificateConfiguration"]["S3Object"]
    roles = {body["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]: name
             for name, body in of_type(resources, "AWS::IAM::Role").items()}

    def statements(service):
        return [statement for body in of_type(resources, "AWS::IAM::Policy").values()
                if {"Ref": roles[service]} in body["Properties"]["Roles"]
                for statement in body["Properties"]["PolicyDocument"]["Statement"]]

    def actions_on(service, resource):
        return {action for statement in statements(service) if statement["Resource"] == resource
                for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}

    # The nodes unlock their LUKS volumes; the EMR service role launches EBS-encrypted volumes via grants.
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions_on("ec2.amazonaws.com", key)
    assert {"kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"} <= \
        actions_on("elasticmapreduce.amazonaws.com", key)
    [grant] = [s for s in statements("elasticmapreduce.amazonaws.com") if "kms:CreateGrant" in s["Action"]]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    object_key = certificates["Fn::Sub"].rsplit("/", 1)[1]
    reads = [statement for statement in statements("ec2.amazonaws.com") if statement["Action"] == "s3:GetObject"]
    assert object_key in json.dumps(reads)


def test_handlers_describe_and_stop_only_this_machines_executions(emr_ec2_app):
    resources = emr_ec2_app.resources
    machine, _ = one_of_type(resources, "AWS::StepFunctions::StateMachine")
    for handler, (_, function) in functions_by_handler(resources).items():
        statements = _role_statements(resources, function)
        if handler == "handlers.on_data.handler":  # it only queues reprocessing: the tick starts the runs
            assert not [s for s in statements if "states:" in json.dumps(s["Action"])]
            continue
        [control] = [s for s in statements if s["Action"] == ["states:DescribeExecution", "states:StopExecution"]]
        parts = control["Resource"]["Fn::Join"][1]
        assert ":states:" in parts[2] and parts[-2:] == [{"Fn::GetAtt": [machine, "Name"]}, ":*"]
        assert ":execution:" in json.dumps(parts)


def test_image_tag_comes_from_context(emr_ec2_app):
    _, application = one_of_type(emr_ec2_app.resources, "AWS::EMRServerless::Application")
    assert application["Properties"]["ImageConfiguration"]["ImageUri"]["Fn::Join"][1][-1] == ":v7"


def test_cluster_roles(emr_ec2_app):
    resources = emr_ec2_app.resources
    roles = {body["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]: body
             for body in of_type(resources, "AWS::IAM::Role").values()}
    assert roles["elasticmapreduce.amazonaws.com"]["Properties"]["ManagedPolicyArns"][0]["Fn::Join"][1][-1] == \
        ":iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
    assert "ManagedPolicyArns" not in roles["ec2.amazonaws.com"]["Properties"]
    _, profile = one_of_type(resources, "AWS::IAM::InstanceProfile")
    assert len(profile["Properties"]["Roles"]) == 1
    # The VPC is tagged so that the v2 service policy may launch into it.
    _, vpc = one_of_type(resources, "AWS::EC2::VPC")
    assert {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in vpc["Properties"]["Tags"]
    assert of_type(resources, "AWS::EC2::FlowLog")
    assert not of_type(resources, "AWS::EC2::NatGateway")
