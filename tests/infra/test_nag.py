"""cdk-nag (AwsSolutions) on the synthesized apps: no finding left, and no acknowledgment without a finding."""

from __future__ import annotations

import aws_cdk
import pytest
from aws_cdk import App, Validations, assertions
from cdk_nag import AwsSolutionsChecks

from infra.app import build_app
from tests.infra.conftest import CDK_CONTEXT


def findings(app: App) -> list[tuple[str, str]]:
    """(rule id, construct path) of every AwsSolutions finding not acknowledged in ``app``."""
    report = AwsSolutionsChecks().validate_scope(app)
    return [(violation.rule_name, resource.construct_path)
            for violation in report.violations for resource in violation.violating_resources]


@pytest.mark.parametrize("variant", ["serverless_app", "emr_ec2_app"])
def test_aws_solutions_finds_nothing(variant, request):
    app = request.getfixturevalue(variant).app
    assert findings(app) == []


@pytest.mark.parametrize("variant", ["serverless_app", "emr_ec2_app"])
def test_no_warning_or_error_annotations(variant, request):
    app = request.getfixturevalue(variant).app
    for stack in (app.node.find_child("Predictd"), app.node.find_child("PredictdImages")):
        annotations = assertions.Annotations.from_stack(stack)
        assert annotations.find_warning("*", assertions.Match.any_value()) == []
        assert annotations.find_error("*", assertions.Match.any_value()) == []


@pytest.mark.parametrize("engine", ["emr-serverless", "emr-ec2"])
def test_every_acknowledgment_answers_a_finding_on_its_constructs(engine, monkeypatch, tmp_path):
    """Rebuild the app with acknowledgments recorded instead of applied: each must match a real finding.

    A stale acknowledgment (a resource renamed, a permission narrowed) would otherwise hide nothing and
    claim a reason for nothing; an unacknowledged finding would fail the synth.
    """
    acknowledged: list[tuple[str, str]] = []

    def record(self, *rules):
        acknowledged.extend((self._scope_path, rule.id) for rule in rules)

    real_of = Validations.of.__func__

    def of(cls, scope):
        validations = real_of(cls, scope)
        validations._scope_path = scope.node.path
        return validations

    monkeypatch.setattr(Validations, "acknowledge", record)
    monkeypatch.setattr(Validations, "of", classmethod(of))
    app = build_app(App(outdir=str(tmp_path), context={**CDK_CONTEXT, "engine": engine}))
    raw = findings(app)
    assert acknowledged, "the app acknowledges nothing: the monkeypatch missed"
    for scope_path, rule in acknowledged:
        matching = [path for finding, path in raw if finding == rule and path.startswith(scope_path + "/")]
        assert matching, f"{rule} acknowledged on {scope_path} answers no finding there"
    unanswered = [(rule, path) for rule, path in raw
                  if not any(rule == ack and path.startswith(scope + "/") for scope, ack in acknowledged)]
    assert unanswered == []


def test_an_unacknowledged_finding_fails_the_synth(tmp_path):
    """build_app registers the checks, so `cdk synth` and `cdk deploy` stop on a new finding."""
    app = build_app(App(outdir=str(tmp_path), context=CDK_CONTEXT))
    aws_cdk.aws_s3.Bucket(app.node.find_child("Predictd"), "UnloggedProbe")
    with pytest.raises(RuntimeError, match="ValidationFailed") as failure:
        app.synth()
    assert "Predictd/UnloggedProbe/Resource" in str(failure.value)
    assert "AwsSolutions-S1'" in str(failure.value)  # server access logs disabled
