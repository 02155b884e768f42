"""What a deployment does between events: new data batched per config, and the scheduled tick.

New or replaced data does not start runs itself: each config that uses it has a batch of new objects,
due ``Runtime.reprocess_delay`` seconds after its first, so an upload of 100 bigWigs is one run per
config. The tick (every minute on Azure's timer, every 5 minutes on AWS's ``on_schedule``) starts the
batches that are due, carries out ``predictd cancel`` requests and reconciles the ledger with the engine.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from predictd_core.cloud.contract import CONFIGS_PREFIX, ObjectVersion, is_config_key, key_of
from predictd_core.cloud.logs import bind_run
from predictd_core.cloud.runs import Runtime, fail_run, named_inputs, reconcile, start_run
from predictd_core.cloud.states import ACTIVE_RUN_STATES
from predictd_core.config import parse_config
from predictd_core.errors import PredictdInputError
from predictd_core.tracks.table import parse_tracks_table

logger = logging.getLogger(__name__)


def configs_using(rt: Runtime, data: ObjectVersion) -> list[tuple[ObjectVersion, str]]:
    """The current version (and text) of every valid config under ``configs/`` that uses ``data``: names it
    (tracks table, chrom sizes, regions, evaluation BEDs) or lists it in its tracks table."""
    tables: dict[str, list[str]] = {}
    users = []
    for key in rt.store.keys(CONFIGS_PREFIX):
        if not is_config_key(key) or (current := rt.store.read_current(key)) is None:
            continue
        config, payload = current
        text = payload.decode()
        try:
            parsed = parse_config(text, config.url)
        except PredictdInputError:
            continue  # its own upload recorded the error; nothing can be reprocessed from it
        if data.url in named_inputs(parsed).values() or data.url in _listed_tracks(rt, parsed.tracks, tables):
            users.append((config, text))
    return users


def reprocess(rt: Runtime, data: ObjectVersion) -> list[dict[str, Any]]:
    """Queue a reprocessing of every config that uses the new ``data`` object version: the config's
    waiting batch gains the object, or a new batch is due in ``rt.reprocess_delay`` seconds. Runs start
    from :func:`tick`, so 100 replaced bigWigs make one run per config. Returns the batches touched."""
    users = configs_using(rt, data)
    logger.info("%s is used by %d config(s)", data.url, len(users))
    queued = []
    for config, _ in users:
        batch = rt.ledger.queue_reprocessing(config.key, data.url, rt.reprocess_delay)
        queued.append({"config": config.url, "batch": batch["batch"], "objects": len(batch["data"]),
                       "due_at": batch["due_at"]})
    return queued


def start_due_reprocessing(rt: Runtime) -> list[dict[str, Any]]:
    """Start the run of every reprocessing batch that is due, one per config: of the config's current
    version, keyed by the batch (a repeated tick finds the run started). A batch whose config has a run
    in flight waits for it to end: queued, never a second run beside it."""
    started = []
    now = time.time()
    in_flight = {run["config"]["url"] for run in rt.ledger.runs()
                 if run["state"] in ACTIVE_RUN_STATES and run.get("config")}
    for batch in rt.ledger.waiting_reprocessing():
        if batch["due_at"] > now:
            continue
        current = rt.store.read_current(batch["config_key"])
        if current is None:  # the config was deleted: nothing to reprocess
            rt.ledger.mark_reprocessing_started(batch["config_key"], batch["batch"], "")
            continue
        config, payload = current
        if config.url in in_flight:
            continue
        last = key_of(batch["data"][-1], rt.store.root) or batch["data"][-1]
        trigger = ObjectVersion(cloud=config.cloud, store=config.store, key=last, version_id=batch["batch"])
        run = start_run(rt, config, trigger, payload.decode(), data_objects=batch["data"])
        rt.ledger.mark_reprocessing_started(batch["config_key"], batch["batch"], run["run_id"])
        started.append(run | {"objects": len(batch["data"])})
    return started


def tick(rt: Runtime) -> list[dict[str, Any]]:
    """What the deployment's schedule runs (every minute on Azure, every few minutes on AWS): cancel the
    runs a person asked to cancel, :func:`reconcile`, and start the reprocessing runs that are due."""
    done = []
    for run in rt.ledger.runs():
        if run["state"] in ACTIVE_RUN_STATES and run.get("cancel_requested"):
            by = run["cancel_requested"].get("by") or "a user"
            with bind_run(run["run_id"]):
                if fail_run(rt, run["run_id"], f"cancelled by {by} (predictd cancel)"):
                    done.append({"run_id": run["run_id"], "action": "cancelled"})
    return done + reconcile(rt) + start_due_reprocessing(rt)


def _listed_tracks(rt: Runtime, table_url: str, cache: dict[str, list[str]]) -> list[str]:
    """The signal files a tracks table in the store lists, absolute (rows are relative to the table's
    folder); empty for a table elsewhere or absent."""
    if table_url not in cache:
        key = key_of(table_url, rt.store.root)
        current = rt.store.read_current(key) if key is not None else None  # a config may name a table not uploaded yet
        cache[table_url] = track_locations(current[1].decode(), table_url) if current else []
    return cache[table_url]


def track_locations(text: str, table_url: str) -> list[str]:
    """The signal files listed by the tracks table ``text`` at ``table_url``, absolute; none for a table
    that is not valid (validating it is the prepare job's work, which reports the error)."""
    try:
        return [track.path for track in parse_tracks_table(text, table_url)]
    except PredictdInputError:
        return []
