"""The stack of the image repository, deployed first: the EMR Serverless application needs its image."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.constructs.image_repository import ImageRepository


class ImagesStack(Stack):
    """The predictd image repository (EMR Serverless validates an application's image when it is created).

    Attributes
    ----------
    repository : aws_ecr.Repository
    """

    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.repository = ImageRepository(self, "Images").repository
        CfnOutput(self, "RepositoryUri", value=self.repository.repository_uri,
                  description="push the image of containers/emr-serverless/Dockerfile here")
