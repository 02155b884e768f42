"""Lambda: a config created under ``configs/`` (``*.yaml``, ``*.yml``) starts a cross-validated run.

S3 invokes it with the standard notification event. Each created config version is validated with the
CLI's own parser; a valid one becomes a run (prepare job first), an invalid one a FAILED run and
``configs/NAME.error.json``. The run is keyed by the object version, so a re-delivered event starts
nothing.
"""

from __future__ import annotations

from typing import Any

from handlers.aws.events import created_objects
from handlers.aws.runtime import current_runtime
from predictd_core.cloud.contract import is_config_key
from predictd_core.cloud.logs import configure_handler_logging
from predictd_core.cloud.runs import start_run

configure_handler_logging()  # JSON lines with the run id, through the Lambda runtime's own handler


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start (or find already started) the run of every config version the event reports created."""
    rt = current_runtime()
    return {"runs": [start_run(rt, config) for config in created_objects(event, is_config_key)]}
