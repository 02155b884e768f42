"""The CDK app (cdk.json runs ``python -m infra.app``): composition only.

``-c engine=emr-ec2`` adds the EMR-on-EC2 engine; ``-c image-tag=TAG`` (required) names the image EMR
Serverless runs. A missing or bad context value ends the synth with one line naming the key. cdk-nag's
AwsSolutions pack validates every synth: a finding fails it.
"""

from __future__ import annotations

import sys

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import DeploySettings, SettingsError
from infra.stacks.images_stack import ImagesStack
from infra.stacks.predictd_stack import PredictdStack


def build_app(app: App) -> App:
    """Add predictd's two stacks (images first) and the AwsSolutions checks to ``app``."""
    settings = DeploySettings.from_context(app.node)
    images = ImagesStack(app, "PredictdImages", description="predictd: the EMR Serverless image repository")
    PredictdStack(app, "Predictd", repository=images.repository, settings=settings,
                  description=f"predictd: config-driven imputation runs on {settings.engine}")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    """Synthesize the app; a settings error exits non-zero with its one-line message (no traceback)."""
    try:
        app = build_app(App())
    except SettingsError as error:
        sys.exit(f"predictd CDK app: {error}")
    app.synth()


if __name__ == "__main__":
    main()
