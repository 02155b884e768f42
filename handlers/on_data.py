"""Lambda: an object created under ``data/`` reprocesses every config that uses it.

A config uses an object when it names it (tracks table, chrom sizes, regions, evaluation BEDs) or when
its tracks table lists it (a bigWig; rows are relative to the table's folder). Each such config's waiting
batch of new data gains the object (a re-delivered event adds nothing); the scheduled tick
(``on_schedule``) starts one run per batch once it is due, which then goes as a run of a dropped config.
"""

from __future__ import annotations

from typing import Any

from handlers.aws.events import created_objects
from handlers.aws.runtime import current_runtime
from predictd_core.cloud.contract import is_data_key
from predictd_core.cloud.logs import configure_handler_logging
from predictd_core.cloud.schedule import reprocess

configure_handler_logging()  # JSON lines with the run id, through the Lambda runtime's own handler


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Queue a reprocessing of every config that uses a created data object; returns the batches."""
    rt = current_runtime()
    return {"queued": [batch for data in created_objects(event, is_data_key) for batch in reprocess(rt, data)]}
