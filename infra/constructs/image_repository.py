"""The ECR repository of the predictd EMR Serverless image (containers/emr-serverless/Dockerfile)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack, aws_ecr as ecr, aws_iam as iam
from constructs import Construct

# Untagged images are what a push leaves behind that no deploy can name (tags are immutable, so a tag is never
# moved off an image; an image loses its tags only when someone deletes them): they expire after a week.
# Tagged images never expire: a deployed application names its image by tag, and any tag may be deployed again.
UNTAGGED_EXPIRY = Duration.days(7)
# What EMR Serverless needs to pull a custom image (EMR Serverless user guide, "Customizing an image").
PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer"]


class ImageRepository(Construct):
    """A scanned repository of immutable tags that EMR Serverless applications of this account may pull from.

    Retained when the stack is destroyed (images are rebuilt only with Docker, elsewhere). Tags are immutable:
    ``-c image-tag=v1`` names one image for good, so redeploying a tag never changes what runs; a new image
    is a new tag.

    Attributes
    ----------
    repository : aws_ecr.Repository
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.repository = ecr.Repository(
            self, "Repository", image_scan_on_push=True, removal_policy=RemovalPolicy.RETAIN,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            lifecycle_rules=[ecr.LifecycleRule(description="expire untagged images only", rule_priority=1,
                                               tag_status=ecr.TagStatus.UNTAGGED, max_image_age=UNTAGGED_EXPIRY)])
        # The condition names the account's applications by pattern: naming the one application would make
        # the repository depend on it while the application's image configuration depends on the repository.
        self.repository.add_to_resource_policy(iam.PolicyStatement(
            sid="EmrServerlessPullsImages", actions=PULL_ACTIONS,
            principals=[iam.ServicePrincipal("emr-serverless.amazonaws.com")],
            conditions={"StringLike": {"aws:SourceArn": stack.format_arn(
                service="emr-serverless", resource="/applications", resource_name="*")}}))
