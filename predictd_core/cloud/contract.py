"""The cloud contract: what a deployment stores where, what its jobs run, and how runs are named.

One contract for both clouds. A deployment has one object store whose keys start with three folders:

    configs/NAME.yaml            a config dropped here starts a run (``configs/NAME.error.json``: why not)
    data/...                     tracks tables, bigWigs, chrom sizes, BEDs; a new object reprocesses configs
    runs/RUN_ID/...              everything of one run: config.yaml, store.zarr, folds.json, attempts/,
                                 models/, imputed/, metrics, report.html, manifest.json, run.json

On AWS the store is one S3 bucket (``s3://BUCKET/configs/...``); on Azure one storage account whose
containers are the three folders (``az://configs/...``, the account named by the environment). Either way
a config's relative paths (``../data/pilot/tracks.tsv``) reach the same object, and a key names the same
thing on both clouds.

A run is one ``prepare`` job (``predictd folds``), one job per fold model (``predictd train``) and one
``finish`` job (``predictd cv``). Every try of a job is an attempt with its own client token and, for a
fold, its own model folder, so a repeated event never starts a second copy and a retried fold never
overwrites what an earlier try wrote.

Nothing here imports a cloud SDK: the adapters (``handlers/aws``, ``handlers/azure``) do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict

CONFIGS_PREFIX = "configs/"
DATA_PREFIX = "data/"
RUNS_PREFIX = "runs/"
FOLDERS = (CONFIGS_PREFIX, DATA_PREFIX, RUNS_PREFIX)
CONFIG_SUFFIXES = (".yaml", ".yml")

# What a fold job writes; model.json last (a readable model.json marks a whole model).
MODEL_FILES = ("factors.npz", "model.json")
# Objects tagged so expire by the store's lifecycle rule (fold attempts once copied to models/ or failed):
# attempts sit mid-key, out of reach of prefix rules. S3 tags and Azure blob index tags both take it.
SCRATCH_TAG = ("predictd:retention", "scratch")
SCRATCH_EXPIRY_DAYS = 14
MAX_ATTEMPTS = 3

PREPARE, FOLD, FINISH = "prepare", "fold", "finish"
STAGES = (PREPARE, FOLD, FINISH)
# The longest an attempt may run before its engine ends it (a stuck node must not hold a run, or bill,
# forever): ingest and the finish job scale with tracks x bins, a fold model with sweeps x bins.
STAGE_TIMEOUT_MINUTES = {PREPARE: 6 * 60, FOLD: 12 * 60, FINISH: 12 * 60}
# A job whose input is bad (exit code 2) writes its one-line error here as JSON (file, field, message), so
# that the run logic fails the run at once instead of retrying: engines report no exit code to events.
ERROR_URL_VARIABLE = "PREDICTD_ERROR_URL"
# New data reprocesses the configs that use it after this delay, counted from the first new object: an
# upload of 100 bigWigs is one run per config, not 100 (the scheduled tick starts it).
REPROCESS_DELAY_SECONDS = 300
_FOLD_NAME = re.compile(r"test(\d+)-valid(\d+)")

Cloud = Literal["aws", "azure"]


# ------------------------------------------------------------------------------------------ objects

class ObjectVersion(BaseModel):
    """One version of one object of the deployment's store: what a run is keyed by (events arrive at least
    once). ``store`` is the bucket (AWS) or storage account (Azure); ``version_id`` the S3 version id or the
    blob's ETag."""

    model_config = ConfigDict(frozen=True)

    cloud: Cloud
    store: str
    key: str
    version_id: str

    @property
    def url(self) -> str:
        """The object's URL as configs and jobs name it."""
        return store_root(self.cloud, self.store) + self.key

    @property
    def identity(self) -> str:
        return f"{self.store}/{self.key}/{self.version_id}"


def store_root(cloud: Cloud, store: str) -> str:
    """The URL that keys are appended to: ``s3://BUCKET/`` or ``az://`` (the containers are the folders)."""
    return f"s3://{store}/" if cloud == "aws" else "az://"


def key_of(url: str, root: str) -> str | None:
    """The key of ``url`` in the store at ``root``, or None for a URL elsewhere."""
    return url[len(root):] if url.startswith(root) else None


def run_id_for(config: ObjectVersion, data: ObjectVersion | None = None) -> str:
    """``{config stem}-{sha256(store/key/version)[:12]}``; a reprocessing run also hashes the data object
    version that triggered it, so each (config, data) version pair is one run."""
    identity = config.identity
    if data is not None:
        identity += f"|{data.identity}"
    return f"{PurePosixPath(config.key).stem}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def error_key(config_key: str) -> str:
    """``configs/NAME.error.json`` beside ``configs/NAME.yaml``."""
    return str(PurePosixPath(config_key).with_suffix(".error.json"))


def is_config_key(key: str) -> bool:
    return key.startswith(CONFIGS_PREFIX) and key.endswith(CONFIG_SUFFIXES)


def is_data_key(key: str) -> bool:
    return key.startswith(DATA_PREFIX) and not key.endswith("/")


# --------------------------------------------------------------------------------------------- jobs

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
    """Where one run's files live: keys under ``runs/RUN_ID/`` of the store at ``root``."""

    root: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"{RUNS_PREFIX}{self.run_id}/"

    def url(self, key: str) -> str:
        """The URL of ``key`` (``s3://BUCKET/KEY``, ``az://KEY``)."""
        return self.root + key

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

    def error_key(self, job: Job, attempt: int) -> str:
        """``runs/RUN_ID/attempts/JOB/attempt-{n}/error.json``: the bad-input error of one attempt."""
        return f"{self.prefix}attempts/{job.name}/attempt-{attempt}/error.json"

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

    Also a valid Step Functions execution name (letters, digits, ``-``; at most 80 characters), EMR
    Serverless client token (at most 64) and Azure Batch task id (at most 64, letters, digits, ``-``).
    """
    digest = hashlib.sha256(f"{run_id}/{job.name}/{attempt}".encode()).hexdigest()[:16]
    return f"{job.name}-a{attempt}-{digest}"


@dataclass(frozen=True)
class JobSpec:
    """Everything an engine needs to start one attempt of one job.

    ``nodes`` > 1 asks for a cluster of that many machines (Azure Batch: a multi-instance task running a
    Spark standalone cluster); 1 is one machine, Spark ``local[*]`` or the engine's own executors.
    ``error_url`` goes to the job as ``PREDICTD_ERROR_URL``; ``timeout_minutes`` bounds its run.
    """

    run_id: str
    job: Job
    attempt: int
    arguments: list[str]
    client_token: str
    nodes: int = 1
    depends_on: tuple[str, ...] = field(default=())
    error_url: str | None = None

    @classmethod
    def for_attempt(cls, layout: RunLayout, job: Job, attempt: int, nodes: int = 1,
                    depends_on: tuple[str, ...] = ()) -> JobSpec:
        return cls(layout.run_id, job, attempt, job_arguments(layout, job, attempt),
                   client_token(layout.run_id, job, attempt), nodes, tuple(depends_on),
                   layout.url(layout.error_key(job, attempt)))

    @property
    def timeout_minutes(self) -> int:
        return STAGE_TIMEOUT_MINUTES[self.job.stage]

    @property
    def display_name(self) -> str:
        return f"{self.run_id} {self.job.name} attempt {self.attempt}"
