"""`cdk synth` through the npm CLI (aws-cdk@2 from node_modules) on cdk.json, without AWS credentials."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.infra.conftest import REPO

CDK = REPO / "node_modules" / ".bin" / "cdk"


def offline_environment(home) -> dict[str, str]:
    """The caller's environment without AWS credentials or profiles, and with every CLI call home switched off."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(home / "config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"), CDK_DISABLE_CLI_TELEMETRY="true",
               CDK_DISABLE_VERSION_CHECK="true", JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    return env


def test_npm_cli_synthesizes_both_stacks(tmp_path):
    if not CDK.is_file():
        pytest.fail(f"{CDK} is missing: `make test` installs it (npm ci)")
    version = subprocess.run([str(CDK), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("2."), version  # the v2 CLI: aws-cdk-lib 2.x cloud assemblies
    outdir = tmp_path / "cdk.out"
    result = subprocess.run([str(CDK), "synth", "--quiet", "-c", "image-tag=v1", "--output", str(outdir)], cwd=REPO,
                            env=offline_environment(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = {name for name, artifact in manifest["artifacts"].items()
              if artifact["type"] == "aws:cloudformation:stack"}
    assert stacks == {"Predictd", "PredictdImages"}
    template = json.loads((outdir / "Predictd.template.json").read_text())
    assert any(body["Type"] == "AWS::EMRServerless::Application" for body in template["Resources"].values())
