"""The Azure Batch job runner against a local Batch service, and the local executor that plays its nodes.

The runner uses the real azure-batch 15.x client; ``BatchService`` (tests/azure/batch_service.py) answers
the REST calls on plain HTTP and records them, so these tests check the requests on the wire (paths,
api-version, bearer token, task JSON) and the runner's reading of the answers (task states, Batch error
codes). ``BatchExecutor`` then really runs recorded tasks: spark-submit of the image's entry point, and a
multi-instance task on a local Spark standalone master and workers started by the task's own coordination
command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from azure.core.exceptions import ServiceRequestError

from handlers.azure.batch import MAX_WALL_CLOCK, BatchRunner, batch_job_id, command_line
from predictd_core.cloud.contract import FINISH, FOLD, PREPARE, Job, JobSpec, RunLayout, client_token
from predictd_core.cloud.settings import AzureSettings
from tests.azure.batch_service import BatchService
from tests.azure.executor import BatchExecutor
from tests.azure_support import AllowPlainHttp, StaticCredential
from tests.conftest import write_bigwig

IMAGE = "predictdregistry.azurecr.io/predictd:test"
IDENTITY_CLIENT_ID = "00000000-0000-0000-0000-00000000c11d"
API_VERSION = "2025-06-01"


def make_runner(service: BatchService, pool: str = "predictd") -> BatchRunner:
    settings = AzureSettings(storage_account="predictdstore", batch_endpoint=service.url, batch_pool=pool,
                             image=IMAGE, job_identity_client_id=IDENTITY_CLIENT_ID)
    return BatchRunner.from_settings(settings, StaticCredential(), per_call_policies=[AllowPlainHttp()])


@pytest.fixture(scope="module")
def service():
    with BatchService() as running:
        yield running


@pytest.fixture(scope="module")
def runner(service):
    return make_runner(service)


def spec_for(run_id: str, job: Job, attempt: int = 1, nodes: int = 1, depends_on: tuple[str, ...] = (),
             arguments: list[str] | None = None) -> JobSpec:
    spec = JobSpec.for_attempt(RunLayout("az://", run_id), job, attempt, nodes, depends_on)
    if arguments is None:
        return spec
    return JobSpec(run_id, job, attempt, arguments, spec.client_token, nodes, depends_on)


def stored_task(service: BatchService, job_run: str) -> dict:
    job_id, task_id = job_run.split("/")
    return service.task(job_id, task_id)


# ---------------------------------------------------------------------------------------- the runner

def test_starting_an_attempt_twice_adds_one_job_and_one_task_and_answers_the_same_id(service, runner):
    spec = spec_for("twice-0123456789ab", Job(PREPARE))

    first, second = runner.start(spec), runner.start(spec)
    assert first == second == f"predictd-twice-0123456789ab/{spec.client_token}"

    jobs = service.requests_to("POST", "/jobs")
    assert [r.body["id"] for r in jobs].count("predictd-twice-0123456789ab") == 1  # known since the first
    assert len(service.tasks("predictd-twice-0123456789ab")) == 1
    adds = service.requests_to("POST", "/jobs/predictd-twice-0123456789ab/tasks")
    assert len(adds) == 2  # the second add was answered TaskExists, which is the same attempt started
    assert all(r.query["api-version"] == API_VERSION for r in service.requests)
    assert all(r.headers["authorization"] == "Bearer local-batch-token" for r in service.requests)

    job = service.jobs["predictd-twice-0123456789ab"]
    assert job["poolInfo"] == {"poolId": "predictd"}
    assert job["usesTaskDependencies"] is True and job["onAllTasksComplete"] == "noaction"
    assert job["displayName"] == "twice-0123456789ab"


def test_a_job_that_exists_already_is_used_as_it_is(service):
    run_id = "exists-0123456789ab"
    make_runner(service).start(spec_for(run_id, Job(PREPARE)))
    fresh = make_runner(service)  # another handler instance: does not know the job, is answered JobExists
    fresh.start(spec_for(run_id, Job(FOLD, 0, 0)))
    assert len(service.requests_to("POST", "/jobs")) >= 2
    assert [t["id"] for t in service.tasks(batch_job_id(run_id))] == [
        client_token(run_id, Job(PREPARE), 1), client_token(run_id, Job(FOLD, 0, 0), 1)]


@pytest.mark.parametrize("job, wall_clock", [(Job(PREPARE), "PT6H"), (Job(FOLD, 1, 0), "PT12H"),
                                             (Job(FINISH), "PT12H")])
def test_the_task_runs_the_entry_point_in_the_image_as_the_job_identity_without_batch_retries(
        service, runner, job, wall_clock):
    run_id = "task-0123456789ab"
    depends_on = (client_token(run_id, Job(FOLD, 0, 0), 1),) if job.stage == FINISH else ()
    spec = spec_for(run_id, job, attempt=2, depends_on=depends_on)
    task = stored_task(service, runner.start(spec))
    body = service.requests_to("POST", f"/jobs/{batch_job_id(run_id)}/tasks")[-1].body

    assert body["id"] == spec.client_token and body["displayName"] == spec.display_name
    assert body["containerSettings"] == {"imageName": IMAGE}
    assert body["commandLine"].startswith("spark-submit --master 'local[*]' /opt/predictd/entrypoint.py ")
    assert body["commandLine"] == command_line(spec.arguments)
    assert {s["name"]: s["value"] for s in body["environmentSettings"]} == {
        "AZURE_STORAGE_ACCOUNT_NAME": "predictdstore", "AZURE_CLIENT_ID": IDENTITY_CLIENT_ID,
        "PYSPARK_PYTHON": "python3", "PREDICTD_ERROR_URL": f"az://runs/{run_id}/attempts/{job.name}/attempt-2/error.json"}
    assert body["constraints"]["maxTaskRetryCount"] == 0
    assert _hours(body["constraints"]["maxWallClockTime"]) == _hours(wall_clock)
    assert _hours(wall_clock) == MAX_WALL_CLOCK[job.stage].total_seconds() / 3600
    assert "multiInstanceSettings" not in body
    if depends_on:
        assert body["dependsOn"] == {"taskIds": list(depends_on)}
    else:
        assert "dependsOn" not in body
    assert task["state"] == "active"


def test_arguments_are_shell_quoted():
    line = command_line(["train", "az://runs/my run/config.yaml", "--model-dir", "az://x/$HOME"])
    assert line.endswith("train 'az://runs/my run/config.yaml' --model-dir 'az://x/$HOME'")


def test_a_job_on_several_nodes_is_a_multi_instance_task_running_a_spark_standalone_cluster(service, runner):
    spec = spec_for("multi-0123456789ab", Job(FOLD, 0, 1), nodes=3)
    body = stored_task(service, runner.start(spec))

    multi = body["multiInstanceSettings"]
    assert multi["numberOfInstances"] == 3
    coordination = multi["coordinationCommandLine"]
    assert coordination.startswith("/bin/sh -c ")  # Batch runs no shell of its own: variables need one
    assert "${AZ_BATCH_MASTER_NODE%:*}" in coordination and "AZ_BATCH_IS_CURRENT_NODE_MASTER" in coordination
    assert "spark-daemon.sh\" start org.apache.spark.deploy.master.Master" in coordination
    assert "spark-daemon.sh\" start org.apache.spark.deploy.worker.Worker 1 \"spark://$master_ip:$port\"" \
        in coordination
    assert "${SPARK_MASTER_PORT:-7077}" in coordination
    application = body["commandLine"]
    assert application.startswith("/bin/sh -c ")
    assert "exec spark-submit --master \"spark://$master_ip:${SPARK_MASTER_PORT:-7077}\" " \
           "/opt/predictd/entrypoint.py train az://runs/multi-0123456789ab/config.yaml" in application
    assert body["constraints"]["maxTaskRetryCount"] == 0


@pytest.mark.parametrize("drive, expected", [
    (lambda s, j, t: None, ("QUEUED", None, None)),
    (lambda s, j, t: s.set_state(j, t, "preparing"), ("SCHEDULED", None, None)),
    (lambda s, j, t: s.set_state(j, t, "running"), ("RUNNING", None, None)),
    (lambda s, j, t: s.complete(j, t, 0), ("SUCCESS", None, 0)),
    (lambda s, j, t: s.complete(j, t, 1, "Traceback: boom"), ("FAILED", "exit code 1: Traceback: boom", 1)),
    (lambda s, j, t: s.complete(j, t, 2, "tracks.tsv: row 3: no such file"),
     ("FAILED", "exit code 2: tracks.tsv: row 3: no such file", 2)),
    (lambda s, j, t: s.complete(j, t, 137),
     ("FAILED", "exit code 137: The task exited with an exit code representing a failure", 137)),
], ids=["active", "preparing", "running", "success", "failure", "bad-input", "default-message"])
def test_status_maps_the_task_state_to_the_contract(service, runner, drive, expected):
    run_id = "status-0123456789ab"
    spec = spec_for(run_id, Job(FOLD, 0, 0), attempt=len(service.tasks(batch_job_id(run_id))) + 1)
    job_run = runner.start(spec)
    drive(service, *job_run.split("/"))

    status = runner.status(job_run)
    assert (status.state, status.details, status.exit_code) == expected
    get = service.requests[-1]
    assert get.method == "GET" and get.path == "/jobs/predictd-status-0123456789ab/tasks/" + spec.client_token


def test_cancel_terminates_the_task_and_status_says_cancelled(service, runner):
    job_run = runner.start(spec_for("cancel-0123456789ab", Job(FOLD, 1, 1)))
    service.set_state(*job_run.split("/"), "running")

    runner.cancel(job_run)
    runner.cancel(job_run)  # already ended (TaskCompleted): nothing to do

    job_id, task_id = job_run.split("/")
    assert len(service.requests_to("POST", f"/jobs/{job_id}/tasks/{task_id}/terminate")) == 2
    status = runner.status(job_run)
    assert status.state == "CANCELLED" and status.details == "exit code 137: Task Was Ended by User Request"


def test_a_task_that_is_gone_is_failed_and_a_malformed_id_is_refused(runner):
    status = runner.status("predictd-none-0123456789ab/prepare-a1-0000000000000000")
    assert status.state == "FAILED" and "not found" in status.details
    with pytest.raises(ValueError, match="JOB_ID/TASK_ID"):
        runner.status("no-slash")


def test_close_run_terminates_the_runs_job_once(service, runner):
    run_id = "close-0123456789ab"
    runner.start(spec_for(run_id, Job(PREPARE)))
    runner.close_run(run_id)
    runner.close_run(run_id)  # already completed (JobCompleted): nothing to do
    assert service.jobs[batch_job_id(run_id)]["state"] == "completed"
    assert len(service.requests_to("POST", f"/jobs/{batch_job_id(run_id)}/terminate")) == 2


def test_a_missing_pool_is_named_before_any_job_is_added(service):
    with pytest.raises(LookupError, match="Batch pool 'elsewhere' not found"):
        make_runner(service, pool="elsewhere").start(spec_for("nopool-0123456789ab", Job(PREPARE)))
    assert "predictd-nopool-0123456789ab" not in service.jobs


def test_the_bearer_token_goes_over_https_only_unless_the_test_policy_allows_it(service):
    settings = AzureSettings(storage_account="predictdstore", batch_endpoint=service.url, image=IMAGE)
    production = BatchRunner.from_settings(settings, StaticCredential(), retry_total=0)  # no backoff
    with pytest.raises(ServiceRequestError, match="non-TLS"):
        production.status("predictd-x-0123456789ab/prepare-a1-0000000000000000")


@pytest.mark.parametrize("run_id", ["pilot-0123456789ab", "my.config v2-0123456789ab", "x" * 80 + "-0123456789ab"])
def test_the_batch_job_id_is_a_valid_batch_id_derived_from_the_run_id(run_id):
    job_id = batch_job_id(run_id)
    assert len(job_id) <= 64 and job_id.startswith("predictd-")
    assert all(c.isalnum() or c in "-_" for c in job_id)
    assert batch_job_id(run_id) == job_id
    assert batch_job_id(run_id[:-1] + "c") != job_id


def _hours(duration: str) -> float:
    """Hours of an ISO 8601 duration such as PT12H or PT12H00M00S."""
    import re

    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", duration)
    assert match, duration
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours + minutes / 60 + seconds / 3600


# -------------------------------------------------------------------------------------- the executor

@pytest.fixture(scope="module")
def compendium(tmp_path_factory) -> Path:
    """3 cells x 2 assays on two contigs, all observed (as tests/conftest.py's tiny_compendium)."""
    folder = tmp_path_factory.mktemp("compendium")
    rng = np.random.default_rng(7)
    contigs = {"chrA": 1000, "chrB": 510}
    rows = ["cell_type\tassay\tpath"]
    for cell in ("C1", "C2", "C3"):
        for assay in ("M1", "M2"):
            values = {name: rng.gamma(1.0, 2.0, size=-(-size // 25)) for name, size in contigs.items()}
            write_bigwig(folder / f"{cell}.{assay}.bigWig", contigs, values)
            rows.append(f"{cell}\t{assay}\t{folder / f'{cell}.{assay}.bigWig'}")
    (folder / "tracks.tsv").write_text("\n".join(rows) + "\n")
    (folder / "chrom.sizes").write_text("".join(f"{k}\t{v}\n" for k, v in contigs.items()))
    return folder


def write_run_config(folder: Path, compendium: Path, engine: dict, max_iters: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"tracks": str(compendium / "tracks.tsv"), "chrom_sizes": str(compendium / "chrom.sizes"),
              "bin_size": 25, "holdout": [], "model": {"solver": "als", "rank": 2, "max_iters": max_iters},
              "engine": engine, "output": str(folder / "out")}
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def node_service():
    """A Batch account of its own for the executor: it runs every pending task, and the runner tests leave
    tasks whose az:// arguments reach no storage."""
    with BatchService() as running:
        yield running


@pytest.fixture(scope="module")
def node_runner(node_service):
    return make_runner(node_service)


@pytest.mark.spark
def test_the_executor_runs_tasks_after_their_dependencies_and_reports_exit_codes(node_service, node_runner,
                                                                               compendium, tmp_path):
    service, runner = node_service, node_runner
    run_id = "exec-0123456789ab"
    config = write_run_config(tmp_path / "run", compendium, {"kind": "numpy"})
    ingest = spec_for(run_id, Job(PREPARE), arguments=["ingest", str(config)])
    train = spec_for(run_id, Job(FOLD, 0, 0), depends_on=(ingest.client_token,),
                     arguments=["train", str(config)])
    bad = spec_for(run_id, Job(PREPARE), attempt=2, arguments=["ingest", str(tmp_path / "missing.yaml")])
    blocked = spec_for(run_id, Job(FINISH), depends_on=(bad.client_token,), arguments=["--help"])
    # added dependants first: the executor must wait for what they depend on
    runs = {name: runner.start(spec) for name, spec in
            (("train", train), ("blocked", blocked), ("ingest", ingest), ("bad", bad))}

    executor = BatchExecutor(service, tmp_path / "nodes")
    assert executor.run_pending() == 3
    order = [e.task_id for e in executor.executed]
    assert order.index(ingest.client_token) < order.index(train.client_token)
    assert blocked.client_token not in order  # its dependency failed: Batch leaves it blocked

    logs = {e.task_id: e.log for e in executor.executed}
    assert runner.status(runs["ingest"]).state == "SUCCESS", logs[ingest.client_token][-3000:]
    assert runner.status(runs["train"]).state == "SUCCESS", logs[train.client_token][-3000:]
    failed = runner.status(runs["bad"])
    assert failed.state == "FAILED" and failed.exit_code == 2 and failed.details.startswith("exit code 2: ")
    assert runner.status(runs["blocked"]).state == "QUEUED"
    assert (tmp_path / "run" / "out" / "store.zarr").is_dir()
    assert (tmp_path / "run" / "out" / "model" / "model.json").is_file()
    assert executor.run_pending() == 0  # each task runs once


@pytest.mark.spark
def test_a_multi_instance_task_runs_spark_submit_on_a_standalone_master_and_workers(node_service, node_runner,
                                                                                 compendium, tmp_path):
    service, runner = node_service, node_runner
    run_id = "cluster-0123456789ab"
    config = write_run_config(tmp_path / "run", compendium, {"kind": "spark", "master": "spark-submit"},
                              max_iters=1)  # one sweep: the point is where it runs, and each costs seconds
    ingest = spec_for(run_id, Job(PREPARE), arguments=["ingest", str(config)])
    train = spec_for(run_id, Job(FOLD, 0, 0), nodes=2, depends_on=(ingest.client_token,),
                     arguments=["train", str(config)])
    runner.start(ingest)
    job_run = runner.start(train)

    executor = BatchExecutor(service, tmp_path / "nodes")
    assert executor.run_pending() == 2
    cluster = executor.executed[-1]
    assert cluster.task_id == train.client_token
    status = runner.status(job_run)
    assert status.state == "SUCCESS", cluster.log[-4000:]
    assert (tmp_path / "run" / "out" / "model" / "model.json").is_file()

    logs = {path.name: path.read_text() for path in cluster.spark_logs}
    [master_log] = [text for name, text in logs.items() if "deploy.master.Master" in name]
    worker_logs = [text for name, text in logs.items() if "deploy.worker.Worker" in name]
    assert len(worker_logs) == 2  # one worker per node, both registered with the primary's master
    assert master_log.count("Registering worker 127.0.0.1") == 2
    assert "Registering app predictd" in master_log
    assert all("Asked to launch executor" in text for text in worker_logs)  # spread over both nodes
