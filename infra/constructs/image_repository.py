"""The ECR repository of the predictd EMR Serverless image (containers/emr-serverless/Dockerfile)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack, aws_ecr as ecr, aws_iam as iam
from constructs import Construct

KEPT_IMAGES = 20
# What EMR Serverless needs to pull a custom image (EMR Serverless user guide, "Customizing an image").
PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer"]


class ImageRepository(Construct):
    """A scanned repository that EMR Serverless applications of this account and region may pull from.

    Retained when the stack is destroyed (images are rebuilt only with Docker, elsewhere).

    Attributes
    ----------
    repository : aws_ecr.Repository
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.repository = ecr.Repository(
            self, "Repository", image_scan_on_push=True, removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[ecr.LifecycleRule(description=f"keep the newest {KEPT_IMAGES} images",
                                               max_image_count=KEPT_IMAGES)])
        # The condition names the account's applications by pattern: naming the one application would make
        # the repository depend on it while the application's image configuration depends on the repository.
        self.repository.add_to_resource_policy(iam.PolicyStatement(
            sid="EmrServerlessPullsImages", actions=PULL_ACTIONS,
            principals=[iam.ServicePrincipal("emr-serverless.amazonaws.com")],
            conditions={"StringLike": {"aws:SourceArn": stack.format_arn(
                service="emr-serverless", resource="/applications", resource_name="*")}}))
