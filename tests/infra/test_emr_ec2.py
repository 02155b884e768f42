"""The EMR-on-EC2 variant (``-c engine=emr-ec2 -c image-tag=v7``): state machine, spot fleets, routing."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from infra.config import EMR_RELEASE_LABEL
from infra.constructs.emr_ec2_runner import BOOTSTRAP_SCRIPT, ENTRY_POINT
from tests.infra.test_stack import functions_by_handler, of_type, one_of_type


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


def test_cluster_has_an_on_demand_primary_and_spot_core_and_task_fleets(emr_ec2_app):
    _, definition = state_machine_definition(emr_ec2_app.resources)
    create = definition["States"]["CreateCluster"]
    assert create["Resource"].endswith(":elasticmapreduce:createCluster.sync")
    params = create["Parameters"]
    assert params["ReleaseLabel"] == EMR_RELEASE_LABEL
    assert params["Applications"] == [{"Name": "Spark"}]
    fleets = {fleet["InstanceFleetType"]: fleet for fleet in params["Instances"]["InstanceFleets"]}
    assert set(fleets) == {"MASTER", "CORE", "TASK"}
    assert fleets["MASTER"]["TargetOnDemandCapacity"] == 1 and "TargetSpotCapacity" not in fleets["MASTER"]
    for kind in ("CORE", "TASK"):
        fleet = fleets[kind]
        assert fleet["TargetSpotCapacity"] >= 1 and "TargetOnDemandCapacity" not in fleet
        assert len({config["InstanceType"] for config in fleet["InstanceTypeConfigs"]}) >= 4
        spot = fleet["LaunchSpecifications"]["SpotSpecification"]
        assert spot["AllocationStrategy"] == "price-capacity-optimized"
        assert spot["TimeoutAction"] == "SWITCH_TO_ON_DEMAND"
    assert len(params["Instances"]["Ec2SubnetIds"]) == 2
    [bootstrap] = params["BootstrapActions"]
    script, (wheel_url, wheel_name) = (bootstrap["ScriptBootstrapAction"][key] for key in ("Path", "Args"))
    assert staged_asset(emr_ec2_app, script).read_bytes() == BOOTSTRAP_SCRIPT.read_bytes()
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
    patterns = [rule["Properties"]["EventPattern"] for rule in of_type(resources, "AWS::Events::Rule").values()]
    assert {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
            "detail": {"stateMachineArn": [{"Ref": machine}]}} in patterns
    assert any(pattern["source"] == ["aws.emr-serverless"] for pattern in patterns)
    starters = [body["Properties"]["PolicyDocument"]["Statement"]
                for body in of_type(resources, "AWS::IAM::Policy").values()]
    assert sum({"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": machine}} in statements
               for statements in starters) == 3


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
