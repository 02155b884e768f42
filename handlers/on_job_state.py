"""Lambda: an EMR Serverless job run (or, with the emr-ec2 engine, a Step Functions execution) changed
state; record it and move its run on (next attempt, fold jobs, finish job, SUCCEEDED or FAILED).

EventBridge invokes it with ``EMR Serverless Job Run State Change`` or ``Step Functions Execution Status
Change`` events; duplicates and out-of-order deliveries are harmless.
"""

from __future__ import annotations

from typing import Any

from handlers._shared.events import job_state_change
from handlers._shared.runs import advance, runtime
from handlers._shared.settings import load_settings


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Apply one job state-change event; returns the run, job, attempt and what was done."""
    return advance(runtime(load_settings()), job_state_change(event))
