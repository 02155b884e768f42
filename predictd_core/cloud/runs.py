"""The life of a run, written once for every cloud: a config version becomes a run, its jobs start, and
job state changes move it on.

    config event -> validate -> run PREPARING, runs/RUN_ID/config.yaml, prepare job
    prepare SUCCESS -> TRAINING, every fold job
    fold FAILED     -> the next attempt (own folder, own client token), or the run FAILED past the limit
    fold SUCCESS    -> its model copied to runs/RUN_ID/models/; all folds there -> FINISHING, the finish job
    finish SUCCESS  -> manifest.json checked, run.json written, SUCCEEDED, notification

A state change comes from an engine's event (EventBridge on AWS) or from asking the engine
(:func:`reconcile`: Azure Batch sends no events; on AWS it recovers lost ones). Every step is
idempotent (compare-and-swap ledger writes, stable client tokens, overwrites of the same content), so a
repeated or retried report repeats nothing and a step interrupted half-way is completed by the retry.
The clouds differ only in the adapters of ``ports``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import yaml

from predictd_core.cloud.contract import (FINISH, FOLD, MODEL_FILES, PREPARE, REPROCESS_DELAY_SECONDS, Job,
                                          JobSpec, ObjectVersion, RunLayout, error_key, fold_jobs, run_id_for)
from predictd_core.cloud.ledger import Ledger, claim_is_stale, run_summary
from predictd_core.cloud.logs import bind_run
from predictd_core.cloud.ports import JobRunner, Notifier, ObjectStore
from predictd_core.cloud.states import (ACTIVE_RUN_STATES, CANCELLED, FAILED, FAILURE_STATES, FINISHING,
                                        PREPARING, STATE_RANKS, SUCCEEDED, SUCCESS, TERMINAL_STATES, TRAINING,
                                        JobStateChange)
from predictd_core.config import SPARK_SUBMIT_MASTER, RunConfig, parse_config
from predictd_core.errors import PredictdInputError
from predictd_core.io import is_remote

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """One deployment as the run logic sees it: its store, ledger, job runner and notifier.

    ``status_hint`` completes ``predictd status RUN_ID`` in notifications (``--bucket B``, ``--account A``);
    ``reprocess_delay`` is how long new data waits for more before its reprocessing runs start.
    """

    store: ObjectStore
    ledger: Ledger
    runner: JobRunner
    notifier: Notifier
    max_attempts: int
    status_hint: str
    reprocess_delay: int = REPROCESS_DELAY_SECONDS

    def layout(self, run_id: str) -> RunLayout:
        return RunLayout(self.store.root, run_id)


# ------------------------------------------------------------------------------------------ starting runs

def cloud_run_config(config: RunConfig, layout: RunLayout) -> RunConfig:
    """The config the run's jobs read: the user's, with output and store under ``runs/RUN_ID`` and Spark
    taking its master from spark-submit. Its paths are already absolute (``parse_config`` resolved them
    against the config's folder).

    Raises
    ------
    PredictdInputError
        When an input is a local path: a job in the cloud reads its inputs from URLs.
    """
    for field, value in named_inputs(config).items():
        if not is_remote(value):
            raise PredictdInputError(config.source, field, f"a cloud run reads its inputs from URLs "
                                     f"(s3://..., az://...); got the local path {value!r}")
    engine = config.engine.model_copy(update={"kind": "spark", "master": SPARK_SUBMIT_MASTER})
    return config.model_copy(update={"output": layout.output_url, "store": layout.store_url, "engine": engine})


def named_inputs(config: RunConfig) -> dict[str, str]:
    """The input files a config names itself, by field (absolute: ``parse_config`` resolved them)."""
    named = {"tracks": config.tracks, "chrom_sizes": config.chrom_sizes, "regions": config.regions}
    named |= {f"evaluation.{name}": path for name, path in config.evaluation.region_beds().items()}
    return {field: value for field, value in named.items() if value}


def dump_config(config: RunConfig) -> str:
    """The config as YAML that ``parse_config`` reads back to the same config."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def start_run(rt: Runtime, config: ObjectVersion, data: ObjectVersion | None = None,
              text: str | None = None, data_objects: list[str] | None = None) -> dict[str, Any]:
    """Start the run of one config version, or of it reprocessing the new ``data`` object.

    ``text`` is the config version's text when the caller has read it; otherwise it is read here;
    ``data_objects`` the new objects a reprocessing run answers (``data`` names its batch). A
    version that is gone (replaced before its event arrived) starts nothing: the new version's own event
    starts its run. An invalid config records the run FAILED with the message, writes
    ``configs/NAME.error.json`` and starts nothing. A run already in the ledger (a repeated event) starts
    nothing new; only a run still PREPARING completes its first steps, in case an earlier delivery stopped
    half-way. Returns ``{"run_id", "state", "created"}``.
    """
    run_id = run_id_for(config, data)
    with bind_run(run_id):
        return _start_run(rt, run_id, config, data, text, data_objects)


def _start_run(rt: Runtime, run_id: str, config: ObjectVersion, data: ObjectVersion | None, text: str | None,
               data_objects: list[str] | None) -> dict[str, Any]:
    if text is None:
        text = rt.store.read_version(config)
        if text is None:
            logger.info("run %s: %s version %s was replaced before its event arrived; nothing to start",
                        run_id, config.url, config.version_id)
            return {"run_id": run_id, "state": None, "created": False}
    layout = rt.layout(run_id)
    origin = {"config": {"url": config.url, "version_id": config.version_id},
              "trigger": {"url": (data or config).url, "version_id": (data or config).version_id,
                          "kind": "data" if data else "config"}}
    if data_objects:
        origin["trigger"]["objects"] = data_objects
    try:
        run_config = cloud_run_config(parse_config(text, config.url), layout)
    except PredictdInputError as error:
        return _record_invalid(rt, run_id, config, error, origin)
    cloud = run_config.cloud
    created = rt.ledger.create_run(run_id, PREPARING, n_test=run_config.cv.n_test, n_valid=run_config.cv.n_valid,
                                   nodes={stage: cloud.nodes_for(stage) for stage in (PREPARE, FOLD, FINISH)},
                                   run_config=layout.url(layout.config_key), **origin)
    run = rt.ledger.run(run_id)
    if run["state"] == PREPARING:
        rt.store.put(layout.config_key, dump_config(run_config).encode(), "application/yaml")
        if data is None and error_key(config.key) in rt.store.keys(error_key(config.key)):
            # a valid version of the config replaces the error of an older one (asked first: in a
            # versioned store every delete adds a version)
            rt.store.delete(error_key(config.key))
        start_attempt(rt, run, Job(PREPARE), 1)
    logger.info("run %s %s (%s x %s folds, %s)", run_id, "created" if created else "already recorded",
                run_config.cv.n_test, run_config.cv.n_valid, origin["trigger"]["url"])
    return {"run_id": run_id, "state": run["state"], "created": created}


def _record_invalid(rt: Runtime, run_id: str, config: ObjectVersion, error: PredictdInputError,
                    origin: dict[str, Any]) -> dict[str, Any]:
    """An invalid config: ``configs/NAME.error.json`` (file, field, message), the run FAILED, a notification."""
    document = {"file": error.source, "field": error.field, "message": error.message, "run_id": run_id,
                "version_id": config.version_id}
    rt.store.put(error_key(config.key), json.dumps(document, indent=2).encode(), "application/json")
    created = rt.ledger.create_run(run_id, FAILED, message=str(error), **origin)
    if created:
        notify(rt, run_id, FAILED, str(error))
    logger.info("run %s: invalid config %s: %s", run_id, config.url, error)
    return {"run_id": run_id, "state": FAILED, "created": created}


def start_attempt(rt: Runtime, run: dict[str, Any], job: Job, attempt: int,
                  depends_on: tuple[str, ...] = ()) -> dict[str, Any]:
    """Start ``attempt`` of ``job`` of ``run`` unless it has started: claim it in the ledger, start it on
    the engine with its client token, record its job run id. Returns the attempt item.

    Only the caller holding the claim starts the attempt (a concurrent caller returns at once), and never
    for a run that has ended: checked before starting, and again once the job run is recorded, when a job
    started while the run failed is cancelled (the caller failing the run may not have seen it yet).
    """
    layout = rt.layout(run["run_id"])
    nodes = (run.get("nodes") or {}).get(job.stage, 1)
    spec = JobSpec.for_attempt(layout, job, attempt, nodes=nodes, depends_on=depends_on)
    extra = {"model_dir": layout.url(layout.attempt_prefix(job, attempt))} if job.stage == FOLD else {}
    item, claimed = rt.ledger.claim_attempt(spec, **extra)
    if not claimed:
        return item
    if not _active(rt, layout.run_id):
        return rt.ledger.record_state(layout.run_id, job, attempt, CANCELLED, "the run ended before it started")
    job_run_id = rt.runner.start(spec)
    rt.ledger.record_job_run(spec, job_run_id)
    logger.info("run %s: started %s attempt %d as %s", layout.run_id, job.name, attempt, job_run_id)
    if not _active(rt, layout.run_id):
        rt.runner.cancel(job_run_id)
    return {**item, "job_run_id": job_run_id}


def _active(rt: Runtime, run_id: str) -> bool:
    return rt.ledger.run(run_id)["state"] in ACTIVE_RUN_STATES


def fail_run(rt: Runtime, run_id: str, message: str) -> bool:
    """End an active run FAILED: its unfinished jobs cancelled, ``run.json`` written, its Batch job closed
    and a notification sent, by the one call that moved it. Returns whether this call moved it."""
    if not rt.ledger.transition_run(run_id, FAILED, ACTIVE_RUN_STATES, message=message):
        return False
    for item in rt.ledger.attempts(run_id):
        if item.get("job_run_id") and item["state"] not in TERMINAL_STATES:
            rt.runner.cancel(item["job_run_id"])
    _ended(rt, run_id, FAILED, message)
    return True


# ----------------------------------------------------------------------------------- job state changes

def advance(rt: Runtime, change: JobStateChange) -> dict[str, Any]:
    """Record a job's state change and take the step it calls for. Returns what was done.

    Raises
    ------
    LookupError
        For the end of a job run of our engine that the ledger does not know yet (its start is being
        recorded): the report is retried. Progress of such a job is ignored (the ledger starts it SUBMITTED).
    """
    if change.state not in STATE_RANKS:
        return {"action": "ignored", "reason": f"unknown state {change.state}"}
    found = rt.ledger.find_job_run(change.job_run_id)
    if found is None:
        if change.owner == rt.runner.owner and change.is_terminal:
            raise LookupError(f"job run {change.job_run_id} is not in the ledger yet")
        return {"action": "ignored", "reason": f"not a job of {rt.runner.owner} recorded in the ledger"}
    run_id, job, attempt = found
    with bind_run(run_id):
        return _advance_attempt(rt, change, run_id, job, attempt)


def _advance_attempt(rt: Runtime, change: JobStateChange, run_id: str, job: Job, attempt: int) -> dict[str, Any]:
    layout = rt.layout(run_id)
    state, details = change.state, change.details
    if state in FAILURE_STATES and not details:  # EMR Serverless' events carry no reason: ask the engine
        details = rt.runner.status(change.job_run_id).details
    if state == SUCCESS and (missing := _missing_outputs(rt, layout, job, attempt)):
        state, details = "FAILED", f"the job succeeded without writing {', '.join(missing)}"
    recorded = rt.ledger.record_state(run_id, job, attempt, state, details)
    outcome = {"run_id": run_id, "job": job.name, "attempt": attempt, "state": recorded["state"]}
    if recorded["state"] != state or not change.is_terminal:
        return outcome | {"action": "recorded"}  # progress, or a report older than what the ledger holds
    run = rt.ledger.run(run_id)
    if run["state"] not in ACTIVE_RUN_STATES:
        return outcome | {"action": f"none, the run is {run['state']}"}
    if state in FAILURE_STATES:
        return outcome | _after_failure(rt, run, job, attempt, state, details, change.exit_code)
    if job.stage == PREPARE:
        if not _enter(rt, run_id, TRAINING, PREPARING):
            return outcome | {"action": "none, the run moved on"}
        for fold in fold_jobs(run["n_test"], run["n_valid"]):
            start_attempt(rt, run, fold, 1)
        return outcome | {"action": "started the fold jobs"}
    if job.stage == FOLD:
        return outcome | _after_fold_success(rt, run, job, attempt, recorded)
    return outcome | _after_finish_success(rt, layout)


def reconcile(rt: Runtime) -> list[dict[str, Any]]:
    """Bring the ledger and the engine back in step; safe to run at any time, as often as wanted.

    For every attempt the ledger holds as unfinished: of an active run, ask the engine for its state and
    feed any news into :func:`advance` (Azure Batch sends no events; on AWS an event may be lost), and
    start a claimed attempt whose claimer died before starting it; of a failed run, cancel it (a job
    started while the run failed). Returns what was done, per attempt.
    """
    done = []
    for run, attempts in rt.ledger.unfinished():
        with bind_run(run["run_id"]):
            done += _reconcile_run(rt, run, attempts)
    return done


def _reconcile_run(rt: Runtime, run: dict[str, Any], attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = []
    for item in attempts:
        job = Job.from_name(item["job"])
        if run["state"] not in ACTIVE_RUN_STATES:
            if item.get("job_run_id"):
                rt.runner.cancel(item["job_run_id"])
            rt.ledger.record_state(run["run_id"], job, item["attempt"], CANCELLED, f"the run is {run['state']}")
            done.append({"run_id": run["run_id"], "job": job.name, "action": "cancelled"})
        elif item.get("job_run_id"):
            status = rt.runner.status(item["job_run_id"])
            if STATE_RANKS.get(status.state, -1) > item["state_rank"]:
                done.append(advance(rt, JobStateChange(job_run_id=item["job_run_id"], owner=rt.runner.owner,
                                                       state=status.state, details=status.details,
                                                       exit_code=status.exit_code)))
        elif claim_is_stale(item):
            depends_on = _finish_dependencies(rt, run) if job.stage == FINISH else ()
            start_attempt(rt, run, job, item["attempt"], depends_on)
            done.append({"run_id": run["run_id"], "job": job.name, "action": "started a stale claim"})
    return done


def _missing_outputs(rt: Runtime, layout: RunLayout, job: Job, attempt: int) -> list[str]:
    """The files a successful ``job`` must have written that are absent (a fold's model, the manifest)."""
    if job.stage == FOLD:
        prefix = layout.attempt_prefix(job, attempt)
        expected = [f"{prefix}/{name}" for name in MODEL_FILES]
        found = set(rt.store.keys(f"{prefix}/"))
    elif job.stage == FINISH:
        expected = [layout.manifest_key]
        found = set(rt.store.keys(layout.manifest_key))
    else:
        return []
    return [layout.url(key) for key in expected if key not in found]


def _after_failure(rt: Runtime, run: dict[str, Any], job: Job, attempt: int, state: str, details: str | None,
                   exit_code: int | None) -> dict[str, str]:
    """The next attempt of a failed job; or the run FAILED at once when the job's input is bad (a retry
    would fail alike) or a person cancelled it, or when the job used all its attempts."""
    layout = rt.layout(run["run_id"])
    if job.stage == FOLD:
        _tag_scratch(rt, layout.attempt_prefix(job, attempt))
    bad_input = _bad_input(rt, layout, job, attempt, exit_code)
    if bad_input:
        fail_run(rt, layout.run_id, f"{job.name}: bad input (not retried): {bad_input}")
        return {"action": "run failed: bad input"}
    if state == CANCELLED:
        fail_run(rt, layout.run_id, f"{job.name} attempt {attempt} was cancelled (not retried)"
                                    + (f": {details}" if details else ""))
        return {"action": "run failed: cancelled"}
    if attempt < rt.max_attempts:
        start_attempt(rt, run, job, attempt + 1, _finish_dependencies(rt, run) if job.stage == FINISH else ())
        return {"action": f"started attempt {attempt + 1}"}
    fail_run(rt, layout.run_id, f"{job.name} failed {attempt} times; last: {details or 'no details'}")
    return {"action": "run failed"}


def _bad_input(rt: Runtime, layout: RunLayout, job: Job, attempt: int, exit_code: int | None) -> str | None:
    """The one-line error of an attempt that stopped on bad input (the error file the CLI writes, or exit
    code 2 where the engine reports exit codes), else None."""
    found = rt.store.read_current(layout.error_key(job, attempt))
    if found is not None:
        try:
            return json.loads(found[1])["error"]
        except (ValueError, KeyError):
            return found[1].decode(errors="replace")[:500]
    return "the job exited with code 2 (bad input); its log names the file and field" if exit_code == 2 else None


def _after_fold_success(rt: Runtime, run: dict[str, Any], job: Job, attempt: int,
                        recorded: dict[str, Any]) -> dict[str, str]:
    """Copy the attempt's model to ``models/``; once every fold's model is there, start the finish job."""
    layout = rt.layout(run["run_id"])
    if not recorded.get("promoted"):
        _copy_folder(rt, layout.attempt_prefix(job, attempt), layout.model_prefix(job))
        rt.ledger.mark_promoted(layout.run_id, job, attempt)
        _tag_scratch(rt, layout.attempt_prefix(job, attempt))
    promoted = {item["job"] for item in rt.ledger.attempts(layout.run_id) if item.get("promoted")}
    waiting = [fold.name for fold in fold_jobs(run["n_test"], run["n_valid"]) if fold.name not in promoted]
    if waiting:
        return {"action": f"model promoted; {len(waiting)} fold(s) to go"}
    if not _enter(rt, layout.run_id, FINISHING, TRAINING):
        return {"action": "model promoted; the run moved on"}
    start_attempt(rt, run, Job(FINISH), 1, _finish_dependencies(rt, run))
    return {"action": "model promoted; started the finish job"}


def _finish_dependencies(rt: Runtime, run: dict[str, Any]) -> tuple[str, ...]:
    """The client tokens of the fold attempts whose models the finish job reads (Batch task dependencies)."""
    return tuple(sorted(item["client_token"] for item in rt.ledger.attempts(run["run_id"]) if item.get("promoted")))


def _enter(rt: Runtime, run_id: str, state: str, previous: str) -> bool:
    """Move the run from ``previous`` to ``state``; True when it is in ``state`` now (moved by this call,
    or by an earlier delivery whose next step this call completes), False when it ended meanwhile."""
    return rt.ledger.transition_run(run_id, state, (previous,)) or rt.ledger.run(run_id)["state"] == state


def _copy_folder(rt: Runtime, source: str, target: str) -> None:
    """Server-side copy of every object under ``source/`` to ``target/``, ``model.json`` last (a readable
    model.json marks a whole model). The copies carry no tags: a scratch tag on the source must not expire them."""
    keys = rt.store.keys(f"{source}/")
    for key in sorted(keys, key=lambda key: key.endswith("/model.json")):
        rt.store.copy(key, f"{target}/{key[len(source) + 1:]}")


def _tag_scratch(rt: Runtime, prefix: str) -> None:
    """Tag every object under ``prefix/`` for the lifecycle rule that expires scratch objects."""
    for key in rt.store.keys(f"{prefix}/"):
        rt.store.tag_scratch(key)


def _after_finish_success(rt: Runtime, layout: RunLayout) -> dict[str, str]:
    """``run.json`` (the ledger summary and the outputs the manifest lists), the run SUCCEEDED, a notification."""
    current = rt.store.read_current(layout.manifest_key)
    manifest = json.loads(current[1]) if current else {}
    outputs = [layout.url(layout.prefix + path) for path in manifest.get("outputs", [])]
    outputs.append(layout.url(layout.manifest_key))
    _write_run_json(rt, layout, state=SUCCEEDED, outputs=outputs)
    if rt.ledger.transition_run(layout.run_id, SUCCEEDED, (FINISHING,), outputs=outputs):
        _ended(rt, layout.run_id, SUCCEEDED, f"outputs under {layout.output_url}/")
    return {"action": "run succeeded"}


def _write_run_json(rt: Runtime, layout: RunLayout, **overrides: Any) -> None:
    """``runs/RUN_ID/run.json``: the ledger's summary of the run (what ``predictd status --json`` prints)."""
    summary = run_summary(rt.ledger.run(layout.run_id), rt.ledger.attempts(layout.run_id)) | overrides
    rt.store.put(layout.run_json_key, json.dumps(summary, indent=2).encode(), "application/json")


def _ended(rt: Runtime, run_id: str, state: str, message: str) -> None:
    """What the call that ended a run does once: ``run.json`` of a failed run (a successful one wrote it
    before), the engine's hold on the run released, the end announced."""
    if state == FAILED:
        _write_run_json(rt, rt.layout(run_id))
    rt.runner.close_run(run_id)
    notify(rt, run_id, state, message)


def notify(rt: Runtime, run_id: str, state: str, message: str) -> None:
    """Announce the end of a run (once: only the call that ended the run publishes)."""
    body = {"run_id": run_id, "state": state, "message": message,
            "status": f"predictd status {run_id} {rt.status_hint}"}
    rt.notifier.publish(f"predictd run {state}: {run_id}"[:100], body)
