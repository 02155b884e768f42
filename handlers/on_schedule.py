"""Lambda: the deployment's scheduled tick (an EventBridge rule, every few minutes).

Asks EMR Serverless (``GetJobRun``) about every attempt the ledger holds as unfinished and moves its run on,
so a run whose state event was lost or whose handler was dead-lettered still finishes; cancels the runs
people asked to cancel (``predictd cancel``); starts the reprocessing runs of new data that are due.
"""

from __future__ import annotations

from typing import Any

from handlers.aws.runtime import current_runtime
from predictd_core.cloud.logs import configure_handler_logging
from predictd_core.cloud.schedule import tick

configure_handler_logging()  # JSON lines with the run id, through the Lambda runtime's own handler


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One tick; returns what was done."""
    return {"done": tick(current_runtime())}
