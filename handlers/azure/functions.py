"""The Azure Functions of a deployment (Python v2 programming model), thin over the run logic.

- ``on_blob_created``: Event Grid ``Microsoft.Storage.BlobCreated`` on the ``configs`` container
  (``*.yaml``, ``*.yml``: start a run) and the ``data`` container (reprocess the configs that use it).
  Event Grid delivers at least once: a run is keyed by the blob's ETag, so a repeat starts nothing.
- ``advance_runs``: every minute, ``tick``: ask Batch for the state of every attempt the ledger holds as
  unfinished and move the runs on (Batch sends no task events; on AWS the same tick recovers lost events),
  cancel the runs people asked to cancel, start the reprocessing runs of new data that are due.

The deployed package's ``function_app.py`` imports ``app`` from here.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from handlers.azure.events import created_blob
from handlers.azure.runtime import current_runtime
from predictd_core.cloud.contract import is_config_key, is_data_key
from predictd_core.cloud.logs import configure_handler_logging
from predictd_core.cloud.runs import start_run
from predictd_core.cloud.schedule import reprocess, tick

RECONCILE_SCHEDULE = "0 */1 * * * *"  # NCRONTAB: every minute
logger = logging.getLogger(__name__)
configure_handler_logging()  # JSON lines with the run id, through the Functions worker's own handler
app = func.FunctionApp()


def handle_blob_created(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Start the run of a created config, or the reprocessing runs of created data; returns the runs."""
    blob = created_blob(event)
    if blob is None:
        return []
    rt = current_runtime()
    if blob.store != rt.store.name:
        logger.warning("event for account %s ignored: this deployment is %s", blob.store, rt.store.name)
        return []
    if is_config_key(blob.key):
        return [start_run(rt, blob)]
    if is_data_key(blob.key):
        return reprocess(rt, blob)
    return []


@app.function_name("on_blob_created")
@app.event_grid_trigger(arg_name="event")
def on_blob_created(event: func.EventGridEvent) -> None:
    """Event Grid trigger: one BlobCreated event."""
    configure_handler_logging()  # cheap; in case the worker set up its logging after the import
    runs = handle_blob_created({"topic": event.topic, "subject": event.subject, "eventType": event.event_type,
                                "data": event.get_json()})
    logger.info("blob %s: runs %s", event.subject, runs)


@app.function_name("advance_runs")
@app.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False, use_monitor=True)
def advance_runs(timer: func.TimerRequest) -> None:
    """Timer trigger: move every unfinished run on from Batch's task states, cancel the runs people asked
    to cancel, start the reprocessing runs that are due."""
    configure_handler_logging()
    for outcome in tick(current_runtime()):
        logger.info("advanced: %s", outcome)
