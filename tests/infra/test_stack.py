"""Template assertions on the default deployment (engine emr-serverless)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import pytest
from aws_cdk import App
from aws_cdk.assertions import Match

from infra.app import build_app
from infra.config import EMR_RELEASE_LABEL, LEDGER_TABLE_TAG, DeploySettings, SettingsError
from predictd_core.cloud.contract import REPROCESS_DELAY_SECONDS
from tests.infra.conftest import CDK_CONTEXT, REPO, TEST_IMAGE_TAG

CONTRACT_ENV = {"PREDICTD_BUCKET", "PREDICTD_LEDGER_TABLE", "PREDICTD_APPLICATION_ID", "PREDICTD_JOB_ROLE_ARN",
                "PREDICTD_TOPIC_ARN", "PREDICTD_MAX_ATTEMPTS", "PREDICTD_ENTRY_POINT", "PREDICTD_ENGINE",
                "PREDICTD_SPARK_PARAMETERS", "PREDICTD_REPROCESS_DELAY"}
HANDLERS = {"handlers.on_config.handler", "handlers.on_data.handler", "handlers.on_job_state.handler",
            "handlers.on_schedule.handler"}
# The handlers that start, read and cancel jobs and publish run notifications (on_data only queues).
JOB_HANDLERS = HANDLERS - {"handlers.on_data.handler"}


def of_type(resources: dict, kind: str) -> dict:
    """The resources of CloudFormation type ``kind`` by logical id."""
    return {name: body for name, body in resources.items() if body["Type"] == kind}


def one_of_type(resources: dict, kind: str) -> tuple[str, dict]:
    """The only resource of type ``kind``: (logical id, body)."""
    found = of_type(resources, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))


def data_bucket(resources: dict) -> tuple[str, dict]:
    """The versioned bucket of the contract (the other bucket receives its access logs)."""
    buckets = {name: body for name, body in of_type(resources, "AWS::S3::Bucket").items()
               if "VersioningConfiguration" in body["Properties"]}
    assert len(buckets) == 1
    return next(iter(buckets.items()))


def functions_by_handler(resources: dict) -> dict[str, tuple[str, dict]]:
    """The predictd Lambda functions keyed by handler path."""
    return {body["Properties"]["Handler"]: (name, body)
            for name, body in of_type(resources, "AWS::Lambda::Function").items()
            if body["Properties"].get("Handler", "").startswith("handlers.")}


def test_buckets_encrypted_versioned_private_and_logged(serverless_app):
    resources = serverless_app.resources
    name, bucket = data_bucket(resources)
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    log_bucket = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert log_bucket != name and resources[log_bucket]["Type"] == "AWS::S3::Bucket"
    for bucket_props in (props, resources[log_bucket]["Properties"]):
        assert bucket_props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        assert bucket_props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert bucket["DeletionPolicy"] == "Retain" and resources[log_bucket]["DeletionPolicy"] == "Retain"


def test_buckets_refuse_requests_without_tls(serverless_app):
    resources = serverless_app.resources
    policies = of_type(resources, "AWS::S3::BucketPolicy")
    protected = set()
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                    "Bool": {"aws:SecureTransport": "false"}}:
                protected.add(policy["Properties"]["Bucket"]["Ref"])
    assert protected == set(of_type(resources, "AWS::S3::Bucket"))


def test_bucket_lifecycle_rules(serverless_app):
    _, bucket = data_bucket(serverless_app.resources)
    rules = {rule["Id"]: rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rules["expire-noncurrent-versions"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert "Prefix" not in rules["expire-noncurrent-versions"]  # the whole bucket
    assert rules["expire-scratch-objects"]["TagFilters"] == [{"Key": "predictd:retention", "Value": "scratch"}]
    assert rules["expire-scratch-objects"]["ExpirationInDays"] == 14
    assert rules["expire-cluster-logs"]["Prefix"] == "logs/"
    assert all(rule["Status"] == "Enabled" for rule in rules.values())


def test_bucket_names_the_ledger_table_in_its_tag(serverless_app):
    resources = serverless_app.resources
    table, _ = one_of_type(resources, "AWS::DynamoDB::Table")
    _, bucket = data_bucket(resources)
    assert {"Key": LEDGER_TABLE_TAG, "Value": {"Ref": table}} in bucket["Properties"]["Tags"]


def test_ledger_table(serverless_app):
    _, table = one_of_type(serverless_app.resources, "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == [
        {"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert "GlobalSecondaryIndexes" not in props and "LocalSecondaryIndexes" not in props
    assert table["DeletionPolicy"] == "Retain"


def test_emr_release_runs_the_spark_line_predictd_pins():
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pyspark = next(spec for spec in dependencies if spec.startswith("pyspark=="))
    # EMR 7.x is the Spark 3.5 line: the pin must stay on it for this release label to be right.
    assert re.fullmatch(r"pyspark==3\.5\.\d+", pyspark), pyspark
    assert re.fullmatch(r"emr-7\.\d+\.\d+", EMR_RELEASE_LABEL)


def test_spark_application(serverless_app):
    resources = serverless_app.resources
    _, application = one_of_type(resources, "AWS::EMRServerless::Application")
    props = application["Properties"]
    assert props["ReleaseLabel"] == EMR_RELEASE_LABEL
    assert props["Type"] == "Spark"
    assert props["AutoStartConfiguration"] == {"Enabled": True}
    assert props["AutoStopConfiguration"] == {"Enabled": True, "IdleTimeoutMinutes": 15}
    assert props["MaximumCapacity"] == {"Cpu": "400 vCPU", "Memory": "3000 GB", "Disk": "20000 GB"}
    assert "NetworkConfiguration" not in props
    image = props["ImageConfiguration"]["ImageUri"]["Fn::Join"][1]
    assert image[-1] == f":{TEST_IMAGE_TAG}"
    assert "PredictdImages:ExportsOutput" in json.dumps(image)  # the repository of the PredictdImages stack
    logging = props["MonitoringConfiguration"]["CloudWatchLoggingConfiguration"]
    assert logging["Enabled"] is True and resources[logging["LogGroupName"]["Ref"]]["Type"] == "AWS::Logs::LogGroup"


def test_image_repository_lets_emr_serverless_pull(serverless_app):
    _, repository = one_of_type(serverless_app.images.to_json()["Resources"], "AWS::ECR::Repository")
    props = repository["Properties"]
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert props["ImageTagMutability"] == "IMMUTABLE"
    # One lifecycle rule, and it selects untagged images only: no tagged image (deployable) ever expires.
    [rule] = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert rule["selection"]["tagStatus"] == "untagged"
    assert rule["selection"]["countType"] == "sinceImagePushed" and rule["action"] == {"type": "expire"}
    [statement] = props["RepositoryPolicyText"]["Statement"]
    assert statement["Principal"] == {"Service": "emr-serverless.amazonaws.com"}
    assert sorted(statement["Action"]) == ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer"]
    assert "aws:SourceArn" in statement["Condition"]["StringLike"]


def test_lambda_functions_handlers_runtime_and_environment(serverless_app):
    resources = serverless_app.resources
    functions = functions_by_handler(resources)
    assert set(functions) == HANDLERS
    table, _ = one_of_type(resources, "AWS::DynamoDB::Table")
    bucket, _ = data_bucket(resources)
    application, _ = one_of_type(resources, "AWS::EMRServerless::Application")
    topic, _ = one_of_type(resources, "AWS::SNS::Topic")
    for _, function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.12"
        env = props["Environment"]["Variables"]
        assert set(env) == CONTRACT_ENV
        assert env["PREDICTD_BUCKET"] == {"Ref": bucket}
        assert env["PREDICTD_LEDGER_TABLE"] == {"Ref": table}
        assert env["PREDICTD_APPLICATION_ID"] == {"Fn::GetAtt": [application, "ApplicationId"]}
        assert resources[env["PREDICTD_JOB_ROLE_ARN"]["Fn::GetAtt"][0]]["Type"] == "AWS::IAM::Role"
        assert env["PREDICTD_TOPIC_ARN"] == {"Ref": topic}
        assert env["PREDICTD_MAX_ATTEMPTS"] == "3"
        assert env["PREDICTD_ENTRY_POINT"] == "local:///opt/predictd/entrypoint.py"
        assert env["PREDICTD_ENGINE"] == "emr-serverless"
        assert env["PREDICTD_REPROCESS_DELAY"] == str(REPROCESS_DELAY_SECONDS)
        assert env["PREDICTD_SPARK_PARAMETERS"].split() == [
            "--conf", "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON=/usr/bin/python3.11",
            "--conf", "spark.emr-serverless.driverEnv.PYSPARK_PYTHON=/usr/bin/python3.11",
            "--conf", "spark.executorEnv.PYSPARK_PYTHON=/usr/bin/python3.11"]


def test_each_function_has_an_encrypted_tls_only_dead_letter_queue(serverless_app):
    resources = serverless_app.resources
    queue_policies = [policy["Properties"] for policy in of_type(resources, "AWS::SQS::QueuePolicy").values()]
    queues = set()
    for name, function in functions_by_handler(resources).values():
        queue = function["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
        assert resources[queue]["Properties"]["SqsManagedSseEnabled"] is True
        assert any({"Ref": queue} in policy["Queues"] and any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["PolicyDocument"]["Statement"]) for policy in queue_policies)
        invoke_configs = [c["Properties"] for c in of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
                          if c["Properties"]["FunctionName"] == {"Ref": name}]
        assert [c["MaximumRetryAttempts"] for c in invoke_configs] == [2]
        queues.add(queue)
    assert len(queues) == 4


def test_alarms_on_errors_and_dead_letters_publish_to_the_topic(serverless_app):
    resources = serverless_app.resources
    topic, topic_body = one_of_type(resources, "AWS::SNS::Topic")
    alarms = [alarm["Properties"] for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    watched = {(alarm["Namespace"], alarm["MetricName"], json.dumps(alarm["Dimensions"])) for alarm in alarms}
    expected = set()
    for name, function in functions_by_handler(resources).values():
        queue = function["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
        expected.add(("AWS/Lambda", "Errors", json.dumps([{"Name": "FunctionName", "Value": {"Ref": name}}])))
        expected.add(("AWS/SQS", "ApproximateNumberOfMessagesVisible", json.dumps(
            [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}])))
    assert watched == expected
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": topic}]
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # The topic is encrypted with a rotating customer managed key that CloudWatch may use.
    key = topic_body["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    assert resources[key]["Properties"]["EnableKeyRotation"] is True
    [cloudwatch] = [s for s in resources[key]["Properties"]["KeyPolicy"]["Statement"]
                    if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch["Effect"] == "Allow"
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # Alarms of this account and region only (the key cannot name the alarms: they depend on it).
    pattern = json.dumps(cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"])
    assert ":cloudwatch:" in pattern and "AWS::Region" in pattern and pattern.endswith(':alarm:*"]]}')


def _topic_policy(resources: dict) -> dict[str, dict]:
    """The statements of the topic's policy by Sid."""
    topic, _ = one_of_type(resources, "AWS::SNS::Topic")
    [policy] = [body["Properties"] for body in of_type(resources, "AWS::SNS::TopicPolicy").values()]
    assert policy["Topics"] == [{"Ref": topic}]
    statements = policy["PolicyDocument"]["Statement"]
    assert all(statement["Resource"] == {"Ref": topic} for statement in statements)
    return {statement["Sid"]: statement for statement in statements}


def test_topic_refuses_publishing_without_tls_except_to_cloudwatch(serverless_app):
    deny = _topic_policy(serverless_app.resources)["DenyPublishWithoutTls"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "sns:Publish" and deny["Principal"] == {"AWS": "*"}
    # Everyone publishing without TLS is denied, except CloudWatch's alarm service (the key is absent from
    # every other request, and StringNotEquals on an absent key holds: the denial applies to them).
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"},
                                 "StringNotEquals": {"aws:PrincipalServiceName": "cloudwatch.amazonaws.com"}}


def test_topic_lets_exactly_the_alarms_of_the_stack_publish(serverless_app):
    resources = serverless_app.resources
    allow = _topic_policy(resources)["CloudWatchAlarmsPublish"]
    assert allow["Effect"] == "Allow" and allow["Action"] == "sns:Publish"
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    sources = allow["Condition"]["ArnLike"]["aws:SourceArn"]
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 8  # errors and dead letters of each of the four handlers
    assert sorted(json.dumps(source) for source in sources) == sorted(
        json.dumps({"Fn::GetAtt": [name, "Arn"]}) for name in alarms)


def test_job_state_rule_routes_this_applications_job_runs_to_on_job_state(serverless_app):
    resources = serverless_app.resources
    application, _ = one_of_type(resources, "AWS::EMRServerless::Application")
    [rule] = [body for body in of_type(resources, "AWS::Events::Rule").values() if "EventPattern" in body["Properties"]]
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.emr-serverless"], "detail-type": ["EMR Serverless Job Run State Change"],
        "detail": {"applicationId": [{"Fn::GetAtt": [application, "ApplicationId"]}]}}
    [target] = rule["Properties"]["Targets"]
    on_job_state, function = functions_by_handler(resources)["handlers.on_job_state.handler"]
    assert target["Arn"] == {"Fn::GetAtt": [on_job_state, "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == function["Properties"]["DeadLetterConfig"]["TargetArn"]


def test_schedule_runs_the_tick_every_five_minutes(serverless_app):
    resources = serverless_app.resources
    [(name, rule)] = [(name, body) for name, body in of_type(resources, "AWS::Events::Rule").items()
                      if "ScheduleExpression" in body["Properties"]]
    props = rule["Properties"]
    assert props["ScheduleExpression"] == "rate(5 minutes)" and props["State"] == "ENABLED"
    assert "EventPattern" not in props
    [target] = props["Targets"]
    on_schedule, function = functions_by_handler(resources)["handlers.on_schedule.handler"]
    assert target["Arn"] == {"Fn::GetAtt": [on_schedule, "Arn"]}
    assert "Input" not in target  # the handler ignores the event: the scheduled event as EventBridge sends it
    # Undelivered ticks go to the function's own dead-letter queue (its alarm watches it), retried within
    # the five minutes before the next tick.
    assert target["DeadLetterConfig"]["Arn"] == function["Properties"]["DeadLetterConfig"]["TargetArn"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 300, "MaximumRetryAttempts": 2}
    # EventBridge may invoke the function for this rule only (a resource policy: no role for the rule).
    [permission] = [body["Properties"] for body in of_type(resources, "AWS::Lambda::Permission").values()
                    if body["Properties"]["FunctionName"] == {"Fn::GetAtt": [on_schedule, "Arn"]}]
    assert permission["Principal"] == "events.amazonaws.com" and permission["Action"] == "lambda:InvokeFunction"
    assert permission["SourceArn"] == {"Fn::GetAtt": [name, "Arn"]}
    assert not of_type(resources, "AWS::Scheduler::Schedule")


def test_s3_notifications_route_configs_and_data(serverless_app):
    resources = serverless_app.resources
    bucket, _ = data_bucket(resources)
    _, notifications = one_of_type(resources, "Custom::S3BucketNotifications")
    assert notifications["Properties"]["BucketName"] == {"Ref": bucket}
    functions = {name: handler for handler, (name, _) in functions_by_handler(resources).items()}
    routes = set()
    for config in notifications["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]:
        rules = {rule["Name"]: rule["Value"] for rule in config["Filter"]["Key"]["FilterRules"]}
        routes.add((config["Events"][0], rules.get("prefix"), rules.get("suffix"),
                    functions[config["LambdaFunctionArn"]["Fn::GetAtt"][0]]))
    assert routes == {("s3:ObjectCreated:*", "configs/", ".yaml", "handlers.on_config.handler"),
                      ("s3:ObjectCreated:*", "configs/", ".yml", "handlers.on_config.handler"),
                      ("s3:ObjectCreated:*", "data/", None, "handlers.on_data.handler")}


def _policy_documents(template: dict):
    """(where, document) for every policy document in a template: identity, trust and resource policies."""
    for name, body in template["Resources"].items():
        props = body.get("Properties", {})
        for key in ("PolicyDocument", "AssumeRolePolicyDocument", "KeyPolicy", "RepositoryPolicyText"):
            if key in props:
                yield f"{name}.{key}", props[key]
        for policy in props.get("Policies", []):
            yield f"{name}.Policies", policy["PolicyDocument"]


@pytest.mark.parametrize("variant", ["serverless_app", "emr_ec2_app"])
def test_no_allow_statement_has_a_wildcard_action(variant, request):
    app = request.getfixturevalue(variant)
    checked = 0
    for template in (app.main.to_json(), app.images.to_json()):
        for where, document in _policy_documents(template):
            for statement in document["Statement"]:
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                if statement["Effect"] == "Allow":
                    assert "NotAction" not in statement, where
                    assert not [a for a in actions if "*" in a], (where, actions)
                    checked += 1
                else:  # the only denials are the TLS-only policies (the topic's lets CloudWatch alarms through)
                    condition = dict(statement["Condition"])
                    assert condition.pop("Bool") == {"aws:SecureTransport": "false"}, where
                    assert condition in ({}, {"StringNotEquals": {
                        "aws:PrincipalServiceName": "cloudwatch.amazonaws.com"}}), where
    assert checked > 20


def test_job_role_reads_configs_and_data_and_writes_runs_only(serverless_app):
    resources = serverless_app.resources
    bucket, _ = data_bucket(resources)
    application_name, _ = one_of_type(resources, "AWS::EMRServerless::Application")
    role = next(name for name, body in of_type(resources, "AWS::IAM::Role").items()
                if body["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
                == {"Service": "emr-serverless.amazonaws.com"})
    policy = next(body["Properties"]["PolicyDocument"] for body in of_type(resources, "AWS::IAM::Policy").values()
                  if body["Properties"]["Roles"] == [{"Ref": role}])
    granted: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        for resource in statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]:
            if isinstance(resource, dict) and "Fn::Join" in resource and \
                    resource["Fn::Join"][1][0] == {"Fn::GetAtt": [bucket, "Arn"]}:
                for action in statement["Action"]:
                    granted.setdefault(action, set()).add(resource["Fn::Join"][1][1])
    assert granted["s3:GetObject"] == {"/configs/*", "/data/*", "/runs/*"}
    assert granted["s3:PutObject"] == {"/runs/*"} and granted["s3:DeleteObject"] == {"/runs/*"}
    # Nothing else of the bucket: every granted object pattern is one of the contract's three prefixes.
    assert set().union(*granted.values()) == {"/configs/*", "/data/*", "/runs/*"}
    [listing] = [statement for statement in policy["Statement"] if statement["Action"] == "s3:ListBucket"]
    assert sorted(listing["Condition"]["StringLike"]["s3:prefix"]) == ["configs/*", "data/*", "runs/*"]
    # Only this application's job runs, in this account, may assume the role.
    [trust] = of_type(resources, "AWS::IAM::Role")[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    sources = trust["Condition"]["ArnLike"]["aws:SourceArn"]
    application_arn = {"Fn::GetAtt": [application_name, "Arn"]}
    assert sources == [application_arn, {"Fn::Join": ["", [application_arn, "/*"]]}]


def test_outputs(serverless_app):
    outputs = serverless_app.main.to_json()["Outputs"]
    assert {"BucketName", "LedgerTableName", "ApplicationId", "TopicArn", "RepositoryUri"} <= set(outputs)
    assert "StateMachineArn" not in outputs
    assert "RepositoryUri" in serverless_app.images.to_json()["Outputs"]


def test_unknown_engine_is_refused():
    with pytest.raises(SettingsError, match=r"'engine' context value must be one of emr-serverless, emr-ec2\. "
                                            r"Got 'emr-eks' instead"):
        DeploySettings(engine="emr-eks", image_tag="v1")


@pytest.mark.parametrize("tag", [None, "", "v1:latest", "-v1", "a" * 129])
def test_image_tag_is_required_and_must_be_a_tag(tag):
    with pytest.raises(SettingsError, match=r"The 'image-tag' context value") as error:
        DeploySettings(image_tag=tag)
    assert "\n" not in str(error.value)


def test_app_without_image_tag_is_refused(tmp_path):
    context = {key: value for key, value in CDK_CONTEXT.items() if key != "image-tag"}
    with pytest.raises(SettingsError, match=r"'image-tag' context value is required.*-c image-tag=v1"):
        build_app(App(outdir=str(tmp_path), context=context))


def test_synth_without_image_tag_exits_with_one_line_naming_the_key(tmp_path):
    """What `cdk synth` without ``-c image-tag`` prints: the app's own line, no traceback (cdk.json has no tag)."""
    assert "image-tag" not in json.loads((REPO / "cdk.json").read_text())["context"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("CDK_")}
    env.update(CDK_OUTDIR=str(tmp_path), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    result = subprocess.run([sys.executable, "-m", "infra.app"], cwd=REPO, capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [line for line in lines if "Traceback" not in line]
    assert lines[-1].startswith("predictd CDK app: The 'image-tag' context value is required")
    assert "-c image-tag=" in lines[-1]


def _role_statements(resources: dict, function: dict) -> list[dict]:
    """The statements of the policies attached to a function's role."""
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [statement for body in of_type(resources, "AWS::IAM::Policy").values()
            if body["Properties"]["Roles"] == [{"Ref": role}]
            for statement in body["Properties"]["PolicyDocument"]["Statement"]]


def _statements_by_action(resources: dict, function: dict) -> dict[str, list[dict]]:
    """A function's role statements by each action they allow."""
    by_action: dict[str, list[dict]] = {}
    for statement in _role_statements(resources, function):
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            by_action.setdefault(action, []).append(statement)
    return by_action


def test_handlers_start_jobs_of_this_application_as_the_job_role_only(serverless_app):
    resources = serverless_app.resources
    application, _ = one_of_type(resources, "AWS::EMRServerless::Application")
    table, _ = one_of_type(resources, "AWS::DynamoDB::Table")
    job_role = next(name for name, body in of_type(resources, "AWS::IAM::Role").items()
                    if body["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
                    == {"Service": "emr-serverless.amazonaws.com"})
    for handler, (_, function) in functions_by_handler(resources).items():
        by_action = _statements_by_action(resources, function)
        if handler not in JOB_HANDLERS:
            continue
        [start] = by_action["emr-serverless:StartJobRun"]
        assert start["Resource"] == {"Fn::GetAtt": [application, "Arn"]}
        [pass_role] = by_action["iam:PassRole"]
        assert pass_role["Resource"] == {"Fn::GetAtt": [job_role, "Arn"]}
        assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}
        [ledger] = by_action["dynamodb:PutItem"]
        assert ledger["Resource"] == {"Fn::GetAtt": [table, "Arn"]}
        # The reconciler reads job runs, a failed run cancels its jobs: this application's job runs only.
        job_runs = {"Fn::Join": ["", [{"Fn::GetAtt": [application, "Arn"]}, "/jobruns/*"]]}
        for action in ("emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"):
            [statement] = by_action[action]
            assert statement["Resource"] == job_runs and "Condition" not in statement
        assert not [action for action in by_action if action.startswith("states:")]


def test_only_the_tick_scans_the_ledger(serverless_app):
    resources = serverless_app.resources
    table, _ = one_of_type(resources, "AWS::DynamoDB::Table")
    for handler, (_, function) in functions_by_handler(resources).items():
        [ledger] = _statements_by_action(resources, function)["dynamodb:PutItem"]
        assert ledger["Resource"] == {"Fn::GetAtt": [table, "Arn"]} and "Condition" not in ledger
        expected = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
        if handler == "handlers.on_schedule.handler":
            expected.append("dynamodb:Scan")
        assert sorted(ledger["Action"]) == expected, handler
        assert not [action for action in _statements_by_action(resources, function)
                    if action.startswith("dynamodb:") and action not in expected], handler


def test_on_data_only_reads_inputs_and_queues_in_the_ledger(serverless_app):
    """on_data no longer starts runs (the tick does): no job, write or publish permission."""
    resources = serverless_app.resources
    bucket, _ = data_bucket(resources)
    _, function = functions_by_handler(resources)["handlers.on_data.handler"]
    by_action = _statements_by_action(resources, function)
    services = {action.split(":")[0] for action in by_action}
    assert services == {"s3", "dynamodb", "logs", "sqs"}, sorted(by_action)  # sqs: its dead-letter queue
    assert [action for action in by_action if action.startswith("sqs:")] == ["sqs:SendMessage"]
    assert sorted(action for action in by_action if action.startswith("s3:")) == [
        "s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:ListBucket"]
    [read] = by_action["s3:GetObject"]
    assert read["Resource"] == [{"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{prefix}*"]]}
                                for prefix in ("configs/", "data/")]
    [listing] = by_action["s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["configs/*", "data/*"]}}


def test_the_tick_may_do_what_reconciling_cancelling_and_reprocessing_need(serverless_app):
    resources = serverless_app.resources
    bucket, _ = data_bucket(resources)
    topic, _ = one_of_type(resources, "AWS::SNS::Topic")
    application, _ = one_of_type(resources, "AWS::EMRServerless::Application")
    _, function = functions_by_handler(resources)["handlers.on_schedule.handler"]
    by_action = _statements_by_action(resources, function)

    def objects(*patterns: str) -> list[dict]:
        return [{"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, pattern]]} for pattern in patterns]

    # Reads the configs and tracks tables of due batches and the runs it advances.
    [read] = by_action["s3:GetObject"]
    assert read["Resource"] == objects("/configs/*", "/data/*", "/runs/*")
    [listing] = by_action["s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["configs/*", "data/*", "runs/*"]}}
    # Writes run files and error files, as on_config does.
    assert sorted(json.dumps(s["Resource"]) for s in by_action["s3:PutObject"]) == sorted(
        json.dumps(resource) for resource in (objects("/runs/*")[0], objects("/configs/*.error.json")[0]))
    [delete] = by_action["s3:DeleteObject"]
    assert delete["Resource"] == objects("/configs/*.error.json")[0]
    # Starts, reads and cancels this application's job runs, passing the job role only.
    [start] = by_action["emr-serverless:StartJobRun"]
    assert start["Resource"] == {"Fn::GetAtt": [application, "Arn"]}
    for action in ("emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"):
        [statement] = by_action[action]
        assert statement["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [application, "Arn"]}, "/jobruns/*"]]}
    [pass_role] = by_action["iam:PassRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}
    [publish] = by_action["sns:Publish"]
    assert publish["Resource"] == {"Ref": topic}
    assert "dynamodb:Scan" in by_action


def test_handlers_write_only_error_files_under_configs_and_run_files_under_runs(serverless_app):
    resources = serverless_app.resources
    bucket, _ = data_bucket(resources)
    writes = {"s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"}
    for handler, (_, function) in functions_by_handler(resources).items():
        written = set()
        for statement in _role_statements(resources, function):
            actions = {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])
            if actions & writes:
                resources_ = statement["Resource"] if isinstance(statement["Resource"], list) \
                    else [statement["Resource"]]
                for resource in resources_:
                    assert resource["Fn::Join"][1][0] == {"Fn::GetAtt": [bucket, "Arn"]}, statement
                    written |= {(action, resource["Fn::Join"][1][1]) for action in actions & writes}
        prefixes = {pattern for _, pattern in written}
        if handler == "handlers.on_data.handler":
            assert prefixes == set()
        elif handler == "handlers.on_job_state.handler":
            assert prefixes == {"/runs/*"}
        else:
            assert prefixes == {"/runs/*", "/configs/*.error.json"}
            assert {action for action, pattern in written if pattern.startswith("/configs/")} == {
                "s3:PutObject", "s3:DeleteObject"}
