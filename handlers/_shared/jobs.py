"""The jobs of a run, where they read and write, and the engines that start them.

A run is one prepare job (``predictd folds``: ingest the store, deal the folds), one job per fold model
(``predictd train --test-fold i --valid-fold j --model-dir ATTEMPT_URL``) and one finish job
(``predictd cv``: ensemble, impute, evaluate, report, manifest). Each try of a job is an attempt with
its own client token, so a re-delivered event can never start a second copy of the same attempt.

Two engines run a job, behind one ``Launcher`` interface: EMR Serverless (``StartJobRun``) and, for
``-c engine=emr-ec2``, a Step Functions state machine that runs one predictd command on a transient
EMR-on-EC2 cluster (``StartExecution``, named by the client token).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

PREPARE, FOLD, FINISH = "prepare", "fold", "finish"
STAGES = (PREPARE, FOLD, FINISH)
_FOLD_NAME = re.compile(r"test(\d+)-valid(\d+)")


def fold_name(test_fold: int, valid_fold: int) -> str:
    """``test{i}-valid{j}``: the same name as ``predictd_core.crossval.model_name`` (which imports numpy,
    so the handlers cannot import it; a test checks that the two agree)."""
    return f"test{test_fold}-valid{valid_fold}"


@dataclass(frozen=True)
class Job:
    """One job of a run: ``prepare``, fold model (i, j), or ``finish``."""

    stage: str
    test_fold: int | None = None
    valid_fold: int | None = None

    @property
    def name(self) -> str:
        """``prepare``, ``test{i}-valid{j}`` or ``finish``: the job's name in the ledger and in paths."""
        return fold_name(self.test_fold, self.valid_fold) if self.stage == FOLD else self.stage

    @classmethod
    def from_name(cls, name: str) -> Job:
        """The job called ``name`` (the inverse of ``name``)."""
        if name in (PREPARE, FINISH):
            return cls(name)
        match = _FOLD_NAME.fullmatch(name)
        if not match:
            raise ValueError(f"not a job name: {name!r}")
        return cls(FOLD, int(match[1]), int(match[2]))


def fold_jobs(n_test: int, n_valid: int) -> list[Job]:
    """The fold model jobs of an ``n_test`` x ``n_valid`` cross-validation, in order."""
    return [Job(FOLD, i, j) for i in range(n_test) for j in range(n_valid)]


def planned_jobs(n_test: int, n_valid: int) -> list[Job]:
    """Every job of a run, in the order they run."""
    return [Job(PREPARE), *fold_jobs(n_test, n_valid), Job(FINISH)]


@dataclass(frozen=True)
class RunLayout:
    """Where one run's files live in the bucket (``runs/RUN_ID/``, see the cloud contract)."""

    bucket: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"runs/{self.run_id}/"

    def url(self, key: str) -> str:
        """``s3://BUCKET/KEY``."""
        return f"s3://{self.bucket}/{key}"

    @property
    def output_url(self) -> str:
        """The run config's ``output``: every output of the run goes below it."""
        return self.url(self.prefix.rstrip("/"))

    @property
    def store_url(self) -> str:
        return self.url(f"{self.prefix}store.zarr")

    @property
    def config_key(self) -> str:
        return f"{self.prefix}config.yaml"

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}manifest.json"

    @property
    def run_json_key(self) -> str:
        return f"{self.prefix}run.json"

    def attempt_prefix(self, job: Job, attempt: int) -> str:
        """``runs/RUN_ID/attempts/test{i}-valid{j}/attempt-{n}``: one fold attempt's own model folder."""
        return f"{self.prefix}attempts/{job.name}/attempt-{attempt}"

    def model_prefix(self, job: Job) -> str:
        """``runs/RUN_ID/models/test{i}-valid{j}``: where the finish job finds fold model (i, j)."""
        return f"{self.prefix}models/{job.name}"


def job_arguments(layout: RunLayout, job: Job, attempt: int) -> list[str]:
    """The predictd command line (argv without ``predictd``) that ``attempt`` of ``job`` runs."""
    config_url = layout.url(layout.config_key)
    if job.stage == PREPARE:
        return ["folds", config_url]
    if job.stage == FINISH:
        return ["cv", config_url]
    return ["train", config_url, "--test-fold", str(job.test_fold), "--valid-fold", str(job.valid_fold),
            "--model-dir", layout.url(layout.attempt_prefix(job, attempt))]


def client_token(run_id: str, job: Job, attempt: int) -> str:
    """The idempotency token of one attempt: stable for the attempt, different for every other.

    Also a valid Step Functions execution name (letters, digits, ``-``; at most 80 characters) and EMR
    Serverless client token (at most 64).
    """
    digest = hashlib.sha256(f"{run_id}/{job.name}/{attempt}".encode()).hexdigest()[:16]
    return f"{job.name}-a{attempt}-{digest}"


@dataclass(frozen=True)
class JobSpec:
    """Everything an engine needs to start one attempt of one job."""

    run_id: str
    job: Job
    attempt: int
    arguments: list[str]
    client_token: str

    @classmethod
    def for_attempt(cls, layout: RunLayout, job: Job, attempt: int) -> JobSpec:
        return cls(layout.run_id, job, attempt, job_arguments(layout, job, attempt),
                   client_token(layout.run_id, job, attempt))

    @property
    def display_name(self) -> str:
        return f"{self.run_id} {self.job.name} attempt {self.attempt}"


class Launcher(Protocol):
    """Starts one attempt of a job on an engine."""

    owner: str
    """The application id or state machine ARN whose state-change events report our jobs."""

    def start(self, spec: JobSpec) -> str:
        """Start ``spec`` (idempotently: the same client token starts nothing new) and return its job
        run id, the id its state-change events carry."""
        ...


class EmrServerlessLauncher:
    """EMR Serverless ``StartJobRun`` of the predictd entry point in the custom image."""

    def __init__(self, client: Any, application_id: str, role_arn: str, entry_point: str,
                 spark_parameters: str | None = None) -> None:
        self.client = client
        self.owner = application_id
        self.role_arn = role_arn
        self.entry_point = entry_point
        self.spark_parameters = spark_parameters

    def start(self, spec: JobSpec) -> str:
        """``StartJobRun`` with the attempt's client token; returns the job run id."""
        spark_submit: dict[str, Any] = {"entryPoint": self.entry_point, "entryPointArguments": spec.arguments}
        if self.spark_parameters:
            spark_submit["sparkSubmitParameters"] = self.spark_parameters
        response = self.client.start_job_run(
            applicationId=self.owner, clientToken=spec.client_token, executionRoleArn=self.role_arn,
            name=spec.display_name, jobDriver={"sparkSubmit": spark_submit},
            tags={"predictd:run": spec.run_id, "predictd:stage": spec.job.stage, "predictd:job": spec.job.name,
                  "predictd:attempt": str(spec.attempt)})
        return response["jobRunId"]


class StepFunctionsLauncher:
    """Step Functions ``StartExecution`` of the emr-ec2 state machine: input ``{"args": [predictd argv]}``."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self.client = client
        self.owner = state_machine_arn

    def start(self, spec: JobSpec) -> str:
        """Start the execution named by the client token; returns its ARN.

        Step Functions refuses a second execution of the same name; the name (hence the ARN) is known, so
        an attempt already started answers with its ARN instead of starting anything.
        """
        try:
            response = self.client.start_execution(stateMachineArn=self.owner, name=spec.client_token,
                                                   input=json.dumps({"args": spec.arguments}))
        except self.client.exceptions.ExecutionAlreadyExists:
            return self.execution_arn(spec.client_token)
        return response["executionArn"]

    def execution_arn(self, name: str) -> str:
        """``arn:...:execution:MACHINE:NAME``, the ARN of the execution ``name`` of this state machine."""
        return f"{self.owner.replace(':stateMachine:', ':execution:', 1)}:{name}"
