"""Lambda: an object created under ``data/`` reprocesses every config that uses it.

A config uses an object when it names it (tracks table, chrom sizes, regions, evaluation BEDs) or when
its tracks table lists it (a bigWig; rows are relative to the table's folder). Each such config gets a
new run keyed by the config version and the data object version, so a re-delivered event starts
nothing; the run then goes exactly as a run of a dropped config.
"""

from __future__ import annotations

import logging
from typing import Any

from handlers._shared.events import ObjectVersion, created_objects
from handlers._shared.runs import Runtime, named_inputs, object_keys, runtime, start_run
from handlers._shared.settings import load_settings
from handlers.on_config import CONFIG_PREFIX, CONFIG_SUFFIXES
from predictd_core.config import parse_config
from predictd_core.errors import PredictdInputError
from predictd_core.tracks.table import parse_tracks_table

DATA_PREFIX = "data/"
logger = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start a reprocessing run for every (created data object, config using it) pair."""
    rt = runtime(load_settings())
    runs = []
    for data in created_objects(event, DATA_PREFIX):
        users = configs_using(rt, data)
        logger.info("%s is used by %d config(s)", data.url, len(users))
        runs += [start_run(rt, config, text, data) for config, text in users]
    return {"runs": runs}


def configs_using(rt: Runtime, data: ObjectVersion) -> list[tuple[ObjectVersion, str]]:
    """The current version (and text) of every valid config under ``configs/`` that uses ``data``."""
    tables: dict[str, list[str]] = {}
    users = []
    for key in object_keys(rt, data.bucket, CONFIG_PREFIX):
        if not key.endswith(CONFIG_SUFFIXES):
            continue
        response = rt.s3.get_object(Bucket=data.bucket, Key=key)
        config = ObjectVersion(bucket=data.bucket, key=key, version_id=response["VersionId"])
        text = response["Body"].read().decode()
        try:
            parsed = parse_config(text, config.url)
        except PredictdInputError:
            continue  # its own upload recorded the error; nothing can be reprocessed from it
        if data.url in named_inputs(parsed).values() or data.url in _listed_tracks(rt, parsed.tracks, tables):
            users.append((config, text))
    return users


def _listed_tracks(rt: Runtime, table_url: str, cache: dict[str, list[str]]) -> list[str]:
    """The signal files a tracks table in the bucket lists, absolute (rows are relative to the table's
    folder); empty for a table elsewhere or absent."""
    if table_url not in cache:
        bucket, _, key = table_url.removeprefix("s3://").partition("/")
        if not table_url.startswith("s3://") or bucket != rt.settings.bucket:
            cache[table_url] = []
        else:
            present = key in object_keys(rt, bucket, key)  # a config may name a table not uploaded yet
            text = rt.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() if present else ""
            cache[table_url] = track_locations(text, table_url)
    return cache[table_url]


def track_locations(text: str, table_url: str) -> list[str]:
    """The signal files listed by the tracks table ``text`` at ``table_url``, absolute; none for a table
    that is not valid (validating it is the prepare job's work, which reports the error)."""
    try:
        return [track.path for track in parse_tracks_table(text, table_url)]
    except PredictdInputError:
        return []
