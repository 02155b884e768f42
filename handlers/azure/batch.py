"""The Azure Batch job runner: one Batch job per run, one task per attempt.

A run is one Batch job (``predictd-{run_id}``, in the deployment's pool, task dependencies on, left
active when its tasks end: the run logic decides when a run is over). Each attempt of a contract job is
one task whose id is the attempt's client token, so adding it again is a no-op (``TaskExists``), and
whose command line runs the image's entry point under ``spark-submit``:

    spark-submit --master 'local[*]' /opt/predictd/entrypoint.py train az://runs/R/config.yaml ...

A job that asks for ``nodes`` > 1 becomes a multi-instance task: Batch runs the coordination command on
every node (Spark's own ``spark-daemon.sh`` starts a standalone master on the primary node and a worker
on each node, then returns), then the application command on the primary node, ``spark-submit --master
spark://PRIMARY_IP:7077 ...``.

Batch retries nothing itself (``maxTaskRetryCount`` 0): a failed attempt is retried by the run logic as
a new attempt with its own task and model folder. A task whose spot node is preempted is requeued by
Batch, which is not a retry.

The job run id this runner hands out is ``{job_id}/{task_id}``.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from datetime import timedelta
from typing import Any

from azure.batch import BatchClient
from azure.batch import models as batch_models
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from predictd_core.cloud.contract import ERROR_URL_VARIABLE, STAGE_TIMEOUT_MINUTES, JobSpec
from predictd_core.cloud.ports import JobStatus
from predictd_core.cloud.settings import AzureSettings
from predictd_core.cloud.states import CANCELLED, FAILED_JOB, SUCCESS

# Where the image keeps the job entry point (containers/emr-serverless/entrypoint.py, copied there).
ENTRY_POINT = "/opt/predictd/entrypoint.py"
JOB_ID_PREFIX = "predictd-"
MAX_ID_LENGTH = 64  # Batch job and task ids: at most 64 letters, digits, '-' and '_'
# The longest an attempt may run before Batch ends it (a stuck node must not hold a run forever).
MAX_WALL_CLOCK = {stage: timedelta(minutes=minutes) for stage, minutes in STAGE_TIMEOUT_MINUTES.items()}
# Spark's standalone master port; the nodes may override it with SPARK_MASTER_PORT (the local tests do).
SPARK_MASTER_PORT = 7077
# Batch task state -> the contract's job state (states.py); completed is decided by the execution result.
TASK_STATES = {"active": "QUEUED", "preparing": "SCHEDULED", "running": "RUNNING"}
# failureInfo.code of a task ended by a terminate request (cancel), rather than by its own exit.
TERMINATED_CODE = "TaskEnded"

_INVALID_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")

# Runs on every node of a multi-instance task, then returns (Batch starts the application command on the
# primary only once the coordination command has returned on every node). AZ_BATCH_MASTER_NODE is the
# primary's "ip:port" (that port is Batch's own, not Spark's). spark-daemon.sh is what start-master.sh and
# start-worker.sh call; unlike them it also ships in pyspark's wheel, so one command serves both a Spark
# distribution and a pip-installed Spark. The worker retries its registration until the master is up.
_COORDINATION_SCRIPT = (
    'set -e; master_ip="${AZ_BATCH_MASTER_NODE%:*}"; port="${SPARK_MASTER_PORT:-' + str(SPARK_MASTER_PORT) + '}"; '
    'if [ "$AZ_BATCH_IS_CURRENT_NODE_MASTER" = true ]; then '
    '"$SPARK_HOME/sbin/spark-daemon.sh" start org.apache.spark.deploy.master.Master 1 '
    '--host "$master_ip" --port "$port"; fi; '
    '"$SPARK_HOME/sbin/spark-daemon.sh" start org.apache.spark.deploy.worker.Worker 1 "spark://$master_ip:$port"'
)
_APPLICATION_SCRIPT = (
    'master_ip="${AZ_BATCH_MASTER_NODE%:*}"; '
    'exec spark-submit --master "spark://$master_ip:${SPARK_MASTER_PORT:-' + str(SPARK_MASTER_PORT) + '}" '
)


def batch_job_id(run_id: str) -> str:
    """The Batch job of run ``run_id``: ``predictd-{run_id}``, made a valid Batch id.

    Characters Batch refuses become ``-``; an id over 64 characters keeps its first 51 and ends with 12
    hex digits of the run id's hash, so two long run ids that share a beginning still name two jobs.
    """
    job_id = _INVALID_ID_CHARACTERS.sub("-", JOB_ID_PREFIX + run_id)
    if len(job_id) <= MAX_ID_LENGTH:
        return job_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return f"{job_id[:MAX_ID_LENGTH - len(digest) - 1]}-{digest}"


def job_run_id(job_id: str, task_id: str) -> str:
    """``{job_id}/{task_id}``: the id a task's state reports carry (neither id can contain ``/``)."""
    return f"{job_id}/{task_id}"


def split_job_run_id(run: str) -> tuple[str, str]:
    """The (job id, task id) of a job run id; raises ValueError for anything else."""
    job_id, slash, task_id = run.partition("/")
    if not (slash and job_id and task_id) or "/" in task_id:
        raise ValueError(f"not a Batch job run id (expected JOB_ID/TASK_ID): {run!r}")
    return job_id, task_id


def command_line(arguments: list[str], nodes: int = 1) -> str:
    """The task command line that runs the predictd argv ``arguments`` under spark-submit.

    One node: ``spark-submit --master 'local[*]' ENTRY_POINT ARGS`` (Batch splits it as a shell would).
    More: the primary node's application command, which needs a shell to read the primary's address.
    """
    if nodes <= 1:
        return shlex.join(["spark-submit", "--master", "local[*]", ENTRY_POINT, *arguments])
    return "/bin/sh -c " + shlex.quote(_APPLICATION_SCRIPT + shlex.join([ENTRY_POINT, *arguments]))


def coordination_command_line() -> str:
    """The multi-instance coordination command: a Spark standalone master on the primary node and a
    worker on every node, started in the background by Spark's scripts."""
    return "/bin/sh -c " + shlex.quote(_COORDINATION_SCRIPT)


class BatchRunner:
    """Starts attempts as Azure Batch tasks and answers for their state (the ``JobRunner`` port).

    Parameters
    ----------
    client : azure.batch.BatchClient
        A client of the deployment's Batch account.
    pool_id : str
        The pool every run's job runs in; also the runner's ``owner``.
    image : str
        The predictd container image the tasks run in (the pool must have it among its container images).
    storage_account : str
        The deployment's storage account, given to tasks as ``AZURE_STORAGE_ACCOUNT_NAME``.
    identity_client_id : str or None
        The client id of the user-assigned managed identity the nodes carry, given to tasks as
        ``AZURE_CLIENT_ID`` so that azure-identity in the task picks that identity.
    python : str
        The image's Python, given to tasks as ``PYSPARK_PYTHON``.
    """

    def __init__(self, client: BatchClient, pool_id: str, image: str, storage_account: str,
                 identity_client_id: str | None = None, python: str = "python3") -> None:
        self.client = client
        self.owner = pool_id
        self.image = image
        self.storage_account = storage_account
        self.identity_client_id = identity_client_id
        self.python = python
        self._jobs: set[str] = set()  # jobs known to exist: a warm handler adds tasks without re-adding them
        self._pool_checked = False

    @classmethod
    def from_settings(cls, settings: AzureSettings, credential: Any, image: str | None = None,
                      **client_options: Any) -> BatchRunner:
        """The runner of the deployment ``settings`` describe.

        Parameters
        ----------
        settings : AzureSettings
            Batch endpoint and pool, storage account, job identity.
        credential : azure.core.credentials.TokenCredential
            How the client signs in (a managed identity in the function app).
        image : str, optional
            The predictd container image, e.g. ``REGISTRY.azurecr.io/predictd:TAG`` (default: the
            settings' ``image``).
        **client_options
            Passed to ``BatchClient`` (the tests add a policy there); production passes none.
        """
        client = BatchClient(settings.batch_endpoint, credential, **client_options)
        return cls(client, settings.batch_pool, image or settings.image, settings.storage_account,
                   settings.job_identity_client_id)

    # ------------------------------------------------------------------------------------- starting

    def start(self, spec: JobSpec) -> str:
        """Add the task of attempt ``spec`` to its run's job (adding the job first if need be).

        Idempotent: the task id is the attempt's client token, and a task that exists already is the
        attempt already started. Returns the job run id ``{job_id}/{task_id}``.
        """
        job_id = batch_job_id(spec.run_id)
        self._ensure_job(job_id, spec.run_id)
        try:
            self.client.create_task(job_id, self.task(spec))
        except ResourceExistsError as error:
            if _error_code(error) != "TaskExists":
                raise
        return job_run_id(job_id, spec.client_token)

    def task(self, spec: JobSpec) -> batch_models.BatchTaskCreateOptions:
        """The Batch task that runs attempt ``spec``."""
        environment = {"AZURE_STORAGE_ACCOUNT_NAME": self.storage_account, "PYSPARK_PYTHON": self.python}
        if self.identity_client_id:
            environment["AZURE_CLIENT_ID"] = self.identity_client_id
        if spec.error_url:  # the CLI writes a bad input's error there (the run logic then retries nothing)
            environment[ERROR_URL_VARIABLE] = spec.error_url
        multi_instance = None
        if spec.nodes > 1:
            multi_instance = batch_models.MultiInstanceSettings(
                number_of_instances=spec.nodes, coordination_command_line=coordination_command_line())
        return batch_models.BatchTaskCreateOptions(
            id=spec.client_token,
            display_name=spec.display_name,
            command_line=command_line(spec.arguments, spec.nodes),
            container_settings=self._container(spec.nodes),
            environment_settings=[batch_models.EnvironmentSetting(name=name, value=value)
                                  for name, value in environment.items()],
            # Batch retries nothing: the run logic retries a failed attempt as a new attempt.
            constraints=batch_models.BatchTaskConstraints(
                max_task_retry_count=0, max_wall_clock_time=MAX_WALL_CLOCK[spec.job.stage]),
            depends_on=(batch_models.BatchTaskDependencies(task_ids=list(spec.depends_on))
                        if spec.depends_on else None),
            multi_instance_settings=multi_instance,
        )

    def _container(self, nodes: int) -> batch_models.BatchTaskContainerSettings:
        """The image every task runs in. A cluster's Spark daemons talk between nodes on their own ports and
        outlive the coordination command: its subtasks share the host's network."""
        if nodes > 1:
            return batch_models.BatchTaskContainerSettings(image_name=self.image,
                                                           container_run_options="--network host")
        return batch_models.BatchTaskContainerSettings(image_name=self.image)

    def _ensure_job(self, job_id: str, run_id: str) -> None:
        if job_id in self._jobs:
            return
        self._check_pool()
        job = batch_models.BatchJobCreateOptions(
            id=job_id, display_name=run_id, pool_info=batch_models.BatchPoolInfo(pool_id=self.owner),
            uses_task_dependencies=True, all_tasks_complete_mode="noaction",
            metadata=[batch_models.BatchMetadataItem(name="predictd:run", value=run_id)])
        try:
            self.client.create_job(job)
        except ResourceExistsError as error:
            if _error_code(error) != "JobExists":
                raise
        self._jobs.add(job_id)

    def _check_pool(self) -> None:
        # Batch accepts a job for a pool that does not exist, and its tasks then wait forever: say so now.
        if self._pool_checked:
            return
        try:
            self.client.get_pool(self.owner, select=["id", "state"])
        except ResourceNotFoundError:
            raise LookupError(f"Batch pool {self.owner!r} not found in the Batch account: deploy infra/azure "
                              "first, or set PREDICTD_BATCH_POOL to the pool's id") from None
        self._pool_checked = True

    # ------------------------------------------------------------------------------------ answering

    def status(self, job_run_id: str) -> JobStatus:
        """The state of the task ``job_run_id`` names, in the contract's vocabulary.

        active -> QUEUED, preparing -> SCHEDULED, running -> RUNNING; completed -> SUCCESS, or FAILED
        with ``"exit code N: failure message"`` and the exit code (2: bad input), or CANCELLED when the
        task was terminated. A task that no longer exists (its job deleted) is FAILED.
        """
        job_id, task_id = split_job_run_id(job_run_id)
        try:
            task = self.client.get_task(job_id, task_id, select=["id", "state", "executionInfo"])
        except ResourceNotFoundError:
            return JobStatus(FAILED_JOB, details=f"Batch task {job_run_id} not found (its job was deleted?)")
        state = _value(task.state)
        if state != "completed":
            return JobStatus(TASK_STATES.get(state, "QUEUED"))
        info = task.execution_info
        exit_code = info.exit_code if info else None
        if info is not None and _value(info.result) == "success":
            return JobStatus(SUCCESS, exit_code=exit_code)
        failure = info.failure_info if info else None
        message = (failure.message or failure.code) if failure else "failed"
        reason = f"exit code {exit_code}" if exit_code is not None else (failure.code if failure else "no exit code")
        terminated = failure is not None and failure.code == TERMINATED_CODE
        return JobStatus(CANCELLED if terminated else FAILED_JOB, details=f"{reason}: {message}",
                         exit_code=exit_code)

    def cancel(self, job_run_id: str) -> None:
        """Terminate the task ``job_run_id`` names; a task already ended (or gone) is left as it is."""
        job_id, task_id = split_job_run_id(job_run_id)
        try:
            self.client.terminate_task(job_id, task_id)
        except ResourceNotFoundError:
            pass
        except ResourceExistsError as error:
            if _error_code(error) != "TaskCompleted":
                raise

    def close_run(self, run_id: str) -> None:
        """Terminate the Batch job of run ``run_id`` once the run is over.

        Jobs are left active when their tasks end (a failed fold is retried as a new task in the same
        job), and active jobs count against the account's quota; the run logic calls this at the end.
        """
        try:
            # The options as JSON: azure-batch 15.1.0 keeps BatchJobTerminateOptions private, and sends a
            # terminate without options with no content type (ValueError before any request).
            self.client.begin_terminate_job(batch_job_id(run_id), {"terminateReason": "RunEnded"})
        except ResourceNotFoundError:
            pass
        except ResourceExistsError as error:
            if _error_code(error) not in ("JobCompleted", "JobBeingTerminated"):
                raise


def _value(enum_or_text: Any) -> str | None:
    """The wire value of a Batch enum field (the client gives an enum member for a known value, else text)."""
    return getattr(enum_or_text, "value", enum_or_text)


def _error_code(error: HttpResponseError) -> str | None:
    """The Batch error code (``TaskExists``, ``JobExists``, ...) of a failed request."""
    return getattr(error.error, "code", None)
