"""Synthesized predictd apps shared by the infra tests: a synth costs seconds, so each variant is built once."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, assertions  # noqa: E402  (after the environment jsii reads at import)

from infra.app import build_app  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# cdk.json's context plus the image tag every deploy must name (`-c image-tag=...`: there is no default).
TEST_IMAGE_TAG = "v1"
CDK_CONTEXT = {**json.loads((REPO / "cdk.json").read_text())["context"], "image-tag": TEST_IMAGE_TAG}


@dataclass
class SynthesizedApp:
    """One synthesized app: its App, its cloud assembly folder and the templates of its two stacks."""

    app: App
    outdir: Path
    main: assertions.Template
    images: assertions.Template

    @property
    def resources(self) -> dict:
        """The main stack's resources by logical id."""
        return self.main.to_json()["Resources"]


def synthesize(outdir: Path, **context: str) -> SynthesizedApp:
    """Build and synthesize the app as cdk.json configures it, plus ``context`` (cdk-nag runs in synth)."""
    app = build_app(App(outdir=str(outdir), context={**CDK_CONTEXT, **context}))
    assembly = app.synth()
    templates = {stack.stack_name: assertions.Template.from_json(stack.template) for stack in assembly.stacks}
    return SynthesizedApp(app=app, outdir=outdir, main=templates["Predictd"], images=templates["PredictdImages"])


@pytest.fixture(scope="session")
def serverless_app(tmp_path_factory) -> SynthesizedApp:
    """The default deployment: engine emr-serverless, ``-c image-tag=v1``."""
    return synthesize(tmp_path_factory.mktemp("cdk-serverless"))


@pytest.fixture(scope="session")
def emr_ec2_app(tmp_path_factory) -> SynthesizedApp:
    """``cdk deploy -c engine=emr-ec2 -c image-tag=v7``."""
    return synthesize(tmp_path_factory.mktemp("cdk-emr-ec2"), engine="emr-ec2", **{"image-tag": "v7"})
