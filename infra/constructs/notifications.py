"""The SNS topic on which runs (and the alarms of the handlers) are announced."""

from __future__ import annotations

import jsii
from aws_cdk import Aws, IStableListProducer, Lazy, aws_cloudwatch as cloudwatch, aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam, aws_kms as kms, aws_sns as sns
from constructs import Construct

from infra.constructs.messaging_key import CLOUDWATCH, PUBLISH_ACTIONS, alarm_arn_pattern


@jsii.implements(IStableListProducer)
class _AlarmArns:
    """The ARNs of the alarms registered with :meth:`RunNotifications.notify_on`, read when the stack synthesizes."""

    def __init__(self, scope: Construct) -> None:
        self.arns: list[str] = []
        self._scope = scope

    def produce(self, context=None) -> list[str]:  # noqa: ARG002  (jsii passes the resolve context)
        # Without alarms the statement still names only this account's and region's alarms.
        return self.arns or [alarm_arn_pattern(self._scope)]


class RunNotifications(Construct):
    """An encrypted, TLS-only topic: run SUCCEEDED/FAILED messages and handler alarms.

    The topic policy (instead of ``enforce_ssl``, whose denial has no exception):

    - ``DenyPublishWithoutTls``: sns:Publish without TLS is denied to everyone except CloudWatch's alarm
      service, which publishes from inside AWS (``aws:PrincipalServiceName`` is set only on requests a
      service principal makes itself; for every other caller ``StringNotEquals`` on the absent key holds, so
      they are denied as before);
    - ``CloudWatchAlarmsPublish``: CloudWatch may publish for exactly the alarms registered with
      :meth:`notify_on` (``aws:SourceArn``) of this account (``aws:SourceAccount``).

    The key's policy lets CloudWatch encrypt for the topic (MessagingKey).

    Attributes
    ----------
    topic : aws_sns.Topic
    """

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self._key = key
        self.topic = sns.Topic(self, "Topic", display_name="predictd runs", master_key=key)
        self._alarms = _AlarmArns(self)
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="DenyPublishWithoutTls", effect=iam.Effect.DENY, actions=["sns:Publish"],
            principals=[iam.AnyPrincipal()], resources=[self.topic.topic_arn],
            conditions={"Bool": {"aws:SecureTransport": "false"},
                        "StringNotEquals": {"aws:PrincipalServiceName": CLOUDWATCH}}))
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish", actions=["sns:Publish"], principals=[iam.ServicePrincipal(CLOUDWATCH)],
            resources=[self.topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                        "ArnLike": {"aws:SourceArn": Lazy.list(self._alarms)}}))

    def notify_on(self, alarm: cloudwatch.Alarm) -> None:
        """Make ``alarm`` publish its state changes to the topic, and let it through the topic policy."""
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        self._alarms.arns.append(alarm.alarm_arn)

    def publish_statements(self) -> list[iam.PolicyStatement]:
        """What a publisher needs: sns:Publish on the topic and the two KMS actions on its key."""
        return [iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]),
                iam.PolicyStatement(actions=PUBLISH_ACTIONS, resources=[self._key.key_arn])]
