"""Lambda: a config created under ``configs/`` (``*.yaml``, ``*.yml``) starts a cross-validated run.

S3 invokes it with the standard notification event. Each created config version is validated with the
CLI's own parser; a valid one becomes a run (prepare job first), an invalid one a FAILED run and
``configs/NAME.error.json``. The run is keyed by the object version, so a re-delivered event starts
nothing.
"""

from __future__ import annotations

from typing import Any

from handlers._shared.events import created_objects
from handlers._shared.runs import read_version, runtime, start_run
from handlers._shared.settings import load_settings

CONFIG_PREFIX = "configs/"
CONFIG_SUFFIXES = (".yaml", ".yml")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start (or find already started) the run of every config version the event reports created."""
    rt = runtime(load_settings())
    return {"runs": [start_run(rt, config, read_version(rt, config))
                     for config in created_objects(event, CONFIG_PREFIX, CONFIG_SUFFIXES)]}
