"""Run notifications as messages of a Queue storage queue (the deployment's ``predictd-run-notices``).

One message per notice: the JSON object ``{"subject": ..., "body": {...}}``, Base64-encoded, which is what an
Azure Functions queue trigger decodes by default (``messageEncoding: base64``); a Logic App's queue trigger
hands the text over as it is, so a Logic App reads it with ``json(base64ToString(...))``.
"""

from __future__ import annotations

import json
from typing import Any

from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from predictd_core.cloud.settings import AzureSettings

MAX_MESSAGE = 64 * 1024  # Queue storage's limit on one message, after Base64
_TRIMMED_FIELD = 2000  # characters kept of each text field of a notice too large for one message


def notice(subject: str, body: dict[str, Any]) -> str:
    """The JSON text of one notice; a body too large for one message keeps its scalar fields, trimmed, and
    says ``"truncated": true`` (a run's end must be announced even if its message is long)."""
    text = json.dumps({"subject": subject, "body": body})
    if len(text.encode()) * 4 / 3 + 4 <= MAX_MESSAGE:
        return text
    short = {name: value[:_TRIMMED_FIELD] if isinstance(value, str) else value for name, value in body.items()
             if value is None or isinstance(value, (str, int, float, bool))}
    return json.dumps({"subject": subject, "body": {**short, "truncated": True}})


class QueueNotifier:
    """``Notifier`` sending one message per published notice to a Storage queue.

    Parameters
    ----------
    queue_endpoint : str
        The account's queue endpoint (``https://ACCOUNT.queue.core.windows.net``; Azurite's in the tests).
    queue : str
        The queue's name (``settings.notice_queue``).
    credential : object
        An azure-identity credential in the cloud, an ``AzureNamedKeyCredential`` for Azurite.
    """

    def __init__(self, queue_endpoint: str, queue: str, credential: Any) -> None:
        self.queue = queue
        self.client = QueueClient(account_url=queue_endpoint, queue_name=queue, credential=credential,
                                  message_encode_policy=TextBase64EncodePolicy())

    @classmethod
    def from_settings(cls, settings: AzureSettings, credential: Any) -> QueueNotifier:
        """The notice queue of ``settings`` at its account's queue endpoint."""
        return cls(settings.endpoint("queue"), settings.notice_queue, credential)

    def publish(self, subject: str, body: dict[str, Any]) -> None:
        """Send ``{"subject": subject, "body": body}`` as one message."""
        self.client.send_message(notice(subject, body))
