"""The SNS topic on which runs (and the alarms of the handlers) are announced."""

from __future__ import annotations

from aws_cdk import aws_iam as iam, aws_kms as kms, aws_sns as sns
from constructs import Construct

from infra.constructs.messaging_key import PUBLISH_ACTIONS


class RunNotifications(Construct):
    """An encrypted, TLS-only topic: run SUCCEEDED/FAILED messages and handler alarms.

    Attributes
    ----------
    topic : aws_sns.Topic
    """

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self._key = key
        self.topic = sns.Topic(self, "Topic", display_name="predictd runs", master_key=key, enforce_ssl=True)

    def publish_statements(self) -> list[iam.PolicyStatement]:
        """What a publisher needs: sns:Publish on the topic and the two KMS actions on its key."""
        return [iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]),
                iam.PolicyStatement(actions=PUBLISH_ACTIONS, resources=[self._key.key_arn])]
