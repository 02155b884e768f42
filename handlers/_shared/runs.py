"""The life of a run: a config version becomes a run, its jobs start, and job state changes move it on.

    config event -> validate -> run PREPARING, runs/RUN_ID/config.yaml, prepare job
    prepare SUCCESS -> TRAINING, every fold job
    fold FAILED     -> the next attempt (own prefix, own client token), or the run FAILED past the limit
    fold SUCCESS    -> its model copied to runs/RUN_ID/models/; all folds there -> FINISHING, the finish job
    finish SUCCESS  -> manifest.json checked, run.json written, SUCCEEDED, notification

Every step is idempotent (conditional ledger writes, stable client tokens, overwrites of the same
content), so a re-delivered or retried event repeats nothing and a step interrupted half-way is
completed by the retry.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import boto3
import yaml

from handlers._shared.events import FAILURE_STATES, STATE_RANKS, SUCCESS, JobStateChange, ObjectVersion
from handlers._shared.jobs import (FINISH, FOLD, PREPARE, EmrServerlessLauncher, Job, JobSpec, Launcher, RunLayout,
                                   StepFunctionsLauncher, fold_jobs)
from handlers._shared.ledger import (ACTIVE_RUN_STATES, FAILED, FINISHING, PREPARING, SUCCEEDED, TRAINING, Ledger,
                                     run_summary)
from handlers._shared.settings import Settings
from predictd_core.config import SPARK_SUBMIT_MASTER, EngineSettings, RunConfig, parse_config
from predictd_core.errors import PredictdInputError
from predictd_core.io import is_remote

logger = logging.getLogger(__name__)

MODEL_FILES = ("factors.npz", "model.json")  # what a fold job writes; model.json last (it marks a whole model)
# The tag whose objects the bucket's lifecycle expires (infra.config.SCRATCH_TAG): fold attempts once their
# model is copied to models/, or once they failed. Attempts sit mid-key, out of reach of prefix rules.
SCRATCH_TAG = ("predictd:retention", "scratch")


@dataclass(frozen=True)
class Runtime:
    """The settings and the AWS clients one invocation works with."""

    settings: Settings
    s3: Any
    ledger: Ledger
    launcher: Launcher
    sns: Any


@functools.lru_cache(maxsize=4)
def runtime(settings: Settings) -> Runtime:
    """The clients for ``settings``, built once per warm Lambda container (``AWS_ENDPOINT_URL`` is honoured,
    which is how the tests point them at moto)."""
    session = boto3.session.Session()
    if settings.engine == "emr-serverless":
        launcher: Launcher = EmrServerlessLauncher(session.client("emr-serverless"), settings.application_id,
                                                   settings.job_role_arn, settings.entry_point,
                                                   settings.spark_parameters)
    else:
        launcher = StepFunctionsLauncher(session.client("stepfunctions"), settings.state_machine_arn)
    return Runtime(settings, session.client("s3"), Ledger(session.client("dynamodb"), settings.ledger_table),
                   launcher, session.client("sns"))


# ------------------------------------------------------------------------------------------ starting runs

def run_id_for(config: ObjectVersion, data: ObjectVersion | None = None) -> str:
    """``{config stem}-{sha256(bucket/key/versionId)[:12]}``; a reprocessing run also hashes the data
    object version that triggered it, so each (config, data) version pair is one run."""
    identity = f"{config.bucket}/{config.key}/{config.version_id}"
    if data is not None:
        identity += f"|{data.bucket}/{data.key}/{data.version_id}"
    return f"{PurePosixPath(config.key).stem}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def error_key(config_key: str) -> str:
    """``configs/NAME.error.json`` beside ``configs/NAME.yaml``."""
    return str(PurePosixPath(config_key).with_suffix(".error.json"))


def read_version(rt: Runtime, obj: ObjectVersion) -> str:
    """The text of exactly the object version an event named."""
    response = rt.s3.get_object(Bucket=obj.bucket, Key=obj.key, VersionId=obj.version_id)
    return response["Body"].read().decode()


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
            raise PredictdInputError(config.source, field, f"a cloud run reads its inputs from URLs (s3://...); "
                                     f"got the local path {value!r}")
    engine = EngineSettings(kind="spark", master=SPARK_SUBMIT_MASTER, spark_conf=config.engine.spark_conf)
    return config.model_copy(update={"output": layout.output_url, "store": layout.store_url, "engine": engine})


def named_inputs(config: RunConfig) -> dict[str, str]:
    """The input files a config names itself, by field (absolute: ``parse_config`` resolved them)."""
    named = {"tracks": config.tracks, "chrom_sizes": config.chrom_sizes, "regions": config.regions}
    named |= {f"evaluation.{name}": path for name, path in config.evaluation.region_beds().items()}
    return {field: value for field, value in named.items() if value}


def dump_config(config: RunConfig) -> str:
    """The config as YAML that ``parse_config`` reads back to the same config."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def start_run(rt: Runtime, config: ObjectVersion, text: str, data: ObjectVersion | None = None) -> dict[str, Any]:
    """Start the run of one config version (``text``), or of it reprocessing the new ``data`` object.

    An invalid config records the run FAILED with the message, writes ``configs/NAME.error.json`` and
    starts nothing. A run already in the ledger (a re-delivered event) starts nothing new; only a run
    still PREPARING completes its first steps, in case an earlier delivery stopped half-way.
    Returns ``{"run_id", "state", "created"}``.
    """
    run_id = run_id_for(config, data)
    layout = RunLayout(rt.settings.bucket, run_id)
    origin = {"config": {"url": config.url, "version_id": config.version_id},
              "trigger": {"url": (data or config).url, "version_id": (data or config).version_id,
                          "kind": "data" if data else "config"}}
    try:
        run_config = cloud_run_config(parse_config(text, config.url), layout)
    except PredictdInputError as error:
        return _record_invalid(rt, run_id, config, error, origin)
    n_test, n_valid = run_config.cv.n_test, run_config.cv.n_valid
    created = rt.ledger.create_run(run_id, PREPARING, n_test=n_test, n_valid=n_valid,
                                   run_config=layout.url(layout.config_key), **origin)
    run = rt.ledger.run(run_id)
    if run["state"] == PREPARING:
        rt.s3.put_object(Bucket=layout.bucket, Key=layout.config_key, Body=dump_config(run_config).encode(),
                         ContentType="application/yaml")
        if data is None and error_key(config.key) in object_keys(rt, config.bucket, error_key(config.key)):
            # a valid version of the config replaces the error of an older one (checked first: in a
            # versioned bucket every delete adds a delete marker)
            rt.s3.delete_object(Bucket=config.bucket, Key=error_key(config.key))
        start_attempt(rt, layout, Job(PREPARE), 1)
    logger.info("run %s %s (%s x %s folds, %s)", run_id, "created" if created else "already recorded",
                n_test, n_valid, origin["trigger"]["url"])
    return {"run_id": run_id, "state": run["state"], "created": created}


def _record_invalid(rt: Runtime, run_id: str, config: ObjectVersion, error: PredictdInputError,
                    origin: dict[str, Any]) -> dict[str, Any]:
    """An invalid config: ``configs/NAME.error.json`` (file, field, message), the run FAILED, a notification."""
    document = {"file": error.source, "field": error.field, "message": error.message, "run_id": run_id,
                "version_id": config.version_id}
    rt.s3.put_object(Bucket=config.bucket, Key=error_key(config.key), Body=json.dumps(document, indent=2).encode(),
                     ContentType="application/json")
    created = rt.ledger.create_run(run_id, FAILED, message=str(error), **origin)
    if created:
        notify(rt, run_id, FAILED, str(error))
    logger.info("run %s: invalid config %s: %s", run_id, config.url, error)
    return {"run_id": run_id, "state": FAILED, "created": created}


def start_attempt(rt: Runtime, layout: RunLayout, job: Job, attempt: int) -> dict[str, Any]:
    """Start ``attempt`` of ``job`` unless it has started: claim it in the ledger, start it on the engine
    with its client token, record its job run id. Returns the attempt item.

    A claim without a job run id (another delivery is starting it, or one stopped before recording) starts
    again with the same client token, which the engine answers with the same job run.
    """
    spec = JobSpec.for_attempt(layout, job, attempt)
    extra = {"model_dir": layout.url(layout.attempt_prefix(job, attempt))} if job.stage == FOLD else {}
    item = rt.ledger.claim_attempt(spec, **extra)
    if item.get("job_run_id"):
        return item
    job_run_id = rt.launcher.start(spec)
    rt.ledger.record_job_run(spec, job_run_id)
    logger.info("run %s: started %s attempt %d as %s", layout.run_id, job.name, attempt, job_run_id)
    return {**item, "job_run_id": job_run_id}


# ----------------------------------------------------------------------------------- job state changes

def advance(rt: Runtime, change: JobStateChange) -> dict[str, Any]:
    """Record a job's state change and take the step it calls for. Returns what was done.

    Raises
    ------
    LookupError
        For the end of a job run of our engine that the ledger does not know yet (its start is being
        recorded): the event is retried. Progress of such a job is ignored (the ledger starts it SUBMITTED).
    """
    if change.state not in STATE_RANKS:
        return {"action": "ignored", "reason": f"unknown state {change.state}"}
    found = rt.ledger.find_job_run(change.job_run_id)
    if found is None:
        if change.owner == rt.launcher.owner and change.is_terminal:
            raise LookupError(f"job run {change.job_run_id} is not in the ledger yet")
        return {"action": "ignored", "reason": f"not a job of {rt.launcher.owner} recorded in the ledger"}
    run_id, job, attempt = found
    layout = RunLayout(rt.settings.bucket, run_id)
    state, details = change.state, change.details
    if state == SUCCESS and (missing := _missing_outputs(rt, layout, job, attempt)):
        state, details = "FAILED", f"the job succeeded without writing {', '.join(missing)}"
    recorded = rt.ledger.record_state(run_id, job, attempt, state, details)
    outcome = {"run_id": run_id, "job": job.name, "attempt": attempt, "state": recorded["state"]}
    if recorded["state"] != state or not change.is_terminal:
        return outcome | {"action": "recorded"}  # progress, or an event older than what the ledger holds
    run = rt.ledger.run(run_id)
    if run["state"] not in ACTIVE_RUN_STATES:
        return outcome | {"action": f"none, the run is {run['state']}"}
    if state in FAILURE_STATES:
        return outcome | _after_failure(rt, layout, job, attempt, details)
    if job.stage == PREPARE:
        if not _enter(rt, run_id, TRAINING, PREPARING):
            return outcome | {"action": "none, the run moved on"}
        for fold in fold_jobs(run["n_test"], run["n_valid"]):
            start_attempt(rt, layout, fold, 1)
        return outcome | {"action": "started the fold jobs"}
    if job.stage == FOLD:
        return outcome | _after_fold_success(rt, layout, run, job, attempt, recorded)
    return outcome | _after_finish_success(rt, layout)


def _missing_outputs(rt: Runtime, layout: RunLayout, job: Job, attempt: int) -> list[str]:
    """The files a successful ``job`` must have written that are absent (a fold's model, the manifest)."""
    if job.stage == FOLD:
        prefix = layout.attempt_prefix(job, attempt)
        expected = [f"{prefix}/{name}" for name in MODEL_FILES]
        found = set(object_keys(rt, layout.bucket, f"{prefix}/"))
    elif job.stage == FINISH:
        expected = [layout.manifest_key]
        found = set(object_keys(rt, layout.bucket, layout.manifest_key))
    else:
        return []
    return [layout.url(key) for key in expected if key not in found]


def object_keys(rt: Runtime, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``. Existence is asked by listing, not HEAD: the handlers' role may list
    the bucket's prefixes, and without that grant on the object S3 answers a HEAD of a missing key 403."""
    pages = rt.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _after_failure(rt: Runtime, layout: RunLayout, job: Job, attempt: int, details: str | None) -> dict[str, str]:
    """The next attempt of a failed job, or the run FAILED when the job used all its attempts."""
    if job.stage == FOLD:
        _tag_scratch(rt, layout.bucket, layout.attempt_prefix(job, attempt))
    if attempt < rt.settings.max_attempts:
        start_attempt(rt, layout, job, attempt + 1)
        return {"action": f"started attempt {attempt + 1}"}
    message = f"{job.name} failed {attempt} times; last: {details or 'no details'}"
    if rt.ledger.transition_run(layout.run_id, FAILED, ACTIVE_RUN_STATES, message=message):
        notify(rt, layout.run_id, FAILED, message)
    return {"action": "run failed"}


def _after_fold_success(rt: Runtime, layout: RunLayout, run: dict[str, Any], job: Job, attempt: int,
                        recorded: dict[str, Any]) -> dict[str, str]:
    """Copy the attempt's model to ``models/``; once every fold's model is there, start the finish job."""
    if not recorded.get("promoted"):
        _copy_folder(rt, layout.bucket, layout.attempt_prefix(job, attempt), layout.model_prefix(job))
        rt.ledger.mark_promoted(layout.run_id, job, attempt)
        _tag_scratch(rt, layout.bucket, layout.attempt_prefix(job, attempt))
    promoted = {item["job"] for item in rt.ledger.attempts(layout.run_id) if item.get("promoted")}
    waiting = [fold.name for fold in fold_jobs(run["n_test"], run["n_valid"]) if fold.name not in promoted]
    if waiting:
        return {"action": f"model promoted; {len(waiting)} fold(s) to go"}
    if not _enter(rt, layout.run_id, FINISHING, TRAINING):
        return {"action": "model promoted; the run moved on"}
    start_attempt(rt, layout, Job(FINISH), 1)
    return {"action": "model promoted; started the finish job"}


def _enter(rt: Runtime, run_id: str, state: str, previous: str) -> bool:
    """Move the run from ``previous`` to ``state``; True when it is in ``state`` now (moved by this call,
    or by an earlier delivery whose next step this call completes), False when it ended meanwhile."""
    return rt.ledger.transition_run(run_id, state, (previous,)) or rt.ledger.run(run_id)["state"] == state


def _copy_folder(rt: Runtime, bucket: str, source: str, target: str) -> None:
    """Server-side copy of every object under ``source/`` to ``target/``, ``model.json`` last (a readable
    model.json marks a whole model). The copies carry no tags: a scratch tag on the source must not expire them."""
    keys = object_keys(rt, bucket, f"{source}/")
    for key in sorted(keys, key=lambda key: key.endswith("/model.json")):
        rt.s3.copy_object(Bucket=bucket, Key=f"{target}/{key[len(source) + 1:]}",
                          CopySource={"Bucket": bucket, "Key": key}, TaggingDirective="REPLACE")


def _tag_scratch(rt: Runtime, bucket: str, prefix: str) -> None:
    """Tag every object under ``prefix/`` for the lifecycle rule that expires scratch objects."""
    key_name, value = SCRATCH_TAG
    for key in object_keys(rt, bucket, f"{prefix}/"):
        rt.s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": key_name, "Value": value}]})


def _after_finish_success(rt: Runtime, layout: RunLayout) -> dict[str, str]:
    """``run.json`` (the ledger summary and the outputs the manifest lists), the run SUCCEEDED, a notification."""
    manifest = json.loads(rt.s3.get_object(Bucket=layout.bucket, Key=layout.manifest_key)["Body"].read())
    outputs = [layout.url(layout.prefix + path) for path in manifest.get("outputs", [])]
    outputs.append(layout.url(layout.manifest_key))
    summary = run_summary(rt.ledger.run(layout.run_id), rt.ledger.attempts(layout.run_id))
    summary |= {"state": SUCCEEDED, "outputs": outputs}
    rt.s3.put_object(Bucket=layout.bucket, Key=layout.run_json_key, Body=json.dumps(summary, indent=2).encode(),
                     ContentType="application/json")
    if rt.ledger.transition_run(layout.run_id, SUCCEEDED, (FINISHING,), outputs=outputs):
        notify(rt, layout.run_id, SUCCEEDED, f"outputs under {layout.output_url}/")
    return {"action": "run succeeded"}


def notify(rt: Runtime, run_id: str, state: str, message: str) -> None:
    """Publish the end of a run to the SNS topic (once: only the call that ended the run publishes)."""
    body = {"run_id": run_id, "state": state, "message": message,
            "status": f"predictd status {run_id} --bucket {rt.settings.bucket}"}
    rt.sns.publish(TopicArn=rt.settings.topic_arn, Subject=f"predictd run {state}: {run_id}"[:100],
                   Message=json.dumps(body, indent=2))
