"""Run notifications on the deployment's SNS topic."""

from __future__ import annotations

import json
from typing import Any


class SnsNotifier:
    """``Notifier`` publishing to ``topic_arn`` (subscribe by email to hear when runs end)."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def publish(self, subject: str, body: dict[str, Any]) -> None:
        self.client.publish(TopicArn=self.topic_arn, Subject=subject[:100], Message=json.dumps(body, indent=2))
