"""Lambda: an EMR Serverless job run (or, with the emr-ec2 engine, a Step Functions execution) changed
state; record it and move its run on (next attempt, fold jobs, finish job, SUCCEEDED or FAILED).

EventBridge invokes it with ``EMR Serverless Job Run State Change`` or ``Step Functions Execution Status
Change`` events; duplicates and out-of-order deliveries are harmless.
"""

from __future__ import annotations

from typing import Any

from handlers.aws.events import job_state_change
from handlers.aws.runtime import current_runtime
from predictd_core.cloud.logs import configure_handler_logging
from predictd_core.cloud.runs import advance

configure_handler_logging()  # JSON lines with the run id, through the Lambda runtime's own handler


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Apply one job state-change event; returns the run, job, attempt and what was done."""
    return advance(current_runtime(), job_state_change(event))
