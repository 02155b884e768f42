"""Lambda: an object created under ``data/`` reprocesses every config that uses it.

A config uses an object when it names it (tracks table, chrom sizes, regions, evaluation BEDs) or when
its tracks table lists it (a bigWig; rows are relative to the table's folder). Each such config gets a
new run keyed by the config version and the data object version, so a re-delivered event starts
nothing; the run then goes exactly as a run of a dropped config.
"""

from __future__ import annotations

from typing import Any

from handlers.aws.events import created_objects
from handlers.aws.runtime import current_runtime
from predictd_core.cloud.contract import is_data_key
from predictd_core.cloud.runs import reprocess


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start a reprocessing run for every (created data object, config using it) pair."""
    rt = current_runtime()
    return {"runs": [run for data in created_objects(event, is_data_key) for run in reprocess(rt, data)]}
