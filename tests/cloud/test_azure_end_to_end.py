"""End to end on Azure with the real pilot tracks: a config dropped into the ``configs`` container ends as a
SUCCEEDED run with 25 imputed bigWigs, metrics, report and manifest in Blob storage, and a fold job killed
mid-way changes none of them.

Azurite serves Blob, Table and Queue storage; the local Batch service records the tasks the function app
adds; ``BatchExecutor`` plays the pool's nodes: it runs each task's command line (``spark-submit`` of the
image's entry point, here the repository's) against Azurite, the finish job as a multi-instance task on a
local Spark standalone master and worker started by the task's own coordination command, and records
each exit in the service; the timer function then reads the task states and moves the run on.

Faults: the config event delivered twice, and spot loss: the first attempt of fold (0, 1) is killed
mid-way, its whole process tree SIGKILLed once its Spark job runs Python tasks (the executor's
deterministic trigger), and Batch records exit code 137. The run logic retries it into a folder of its
own (``attempts/test0-valid1/attempt-2``), and the run's 25 imputed bigWigs equal, value for value over
the whole pilot contig and block for block (every data block and zoom record, inflated), those of an
undisturbed ``predictd cv`` of the same config on this machine (Spark ``local[*]``, as every single-node task
runs; the same tracks from local files; ``cloud`` does not apply locally). An exact comparison is fair here:
Spark's partitions are the store's chunks whatever the cores or nodes, the folds train on single-node tasks
with the cores the local run has, and on its 2-node cluster the finish job's imputation maps chunks (no sums
across them) while the refinement is fitted in the driver.

The cloud run and the reference run happen once (module fixture ``runs``), side by side: the cloud run's
tasks leave the cores idle between them (JVM starts, storage calls), and neither run's results depend on the
other. About 1.5 minutes on 2 busy cores (93 s, against 105 s on the whole contig); the tests read what
they left.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from tests.bigwig_layout import rtree_leaves
from tests.cloud.deployments import AzureDeployment, Job

pytestmark = pytest.mark.spark  # each task is a spark-submit of its own

# 2 Mb of the pilot contig (80,000 bins of its 563,234): this test checks the jobs, the retry and the outputs,
# not the model
REGIONS = "pilotA\t0\t1500000\npilotA\t7000000\t7500000\n"
CONFIG = """\
# the pilot tracks on two regions, cross-validated 2 x 2 (paths relative to this file); the finish job on 2
# nodes; the refinement fitted on a small sample (in the finish job and the local run alike)
tracks: ../data/pilot/tracks.tsv
chrom_sizes: ../data/pilot/chrom.sizes
regions: ../data/pilot/regions.bed
model: {rank: 4, solver: als, max_iters: 3, refine: {sample_bins: 32768, inner_tracks: 2}}
cv: {n_test: 2, n_valid: 2}
cloud: {nodes: 2, stages: [finish]}
output: ignored-the-run-writes-under-runs
"""
KILLED_FOLD = "test0-valid1"  # its first attempt loses its node mid-way
CONTIG = ("pilotA", 14_080_850)


@dataclass
class Runs:
    """What the module's two runs left: the cloud run (deployment, run id, executor) and the local one."""

    azure: AzureDeployment
    run_id: str
    executor: object  # tests.azure.executor.BatchExecutor
    local_output: Path
    work: Path
    seconds: dict[str, float]

    @property
    def prefix(self) -> str:
        return f"runs/{self.run_id}/"

    def keys(self, under: str = "") -> list[str]:
        return self.azure.store.keys(self.prefix + under)

    def text(self, key: str) -> str:
        return self.azure.store.read_current(key)[1].decode()

    def bigwig(self, key: str) -> Path:
        """The blob ``key`` (a bigWig) as a local file."""
        local = self.work / "downloaded" / key
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(self.azure.store.read_current(key)[1])
        return local


def run_in_the_cloud(azure: AzureDeployment, pilot_dir: Path, work: Path):
    """Upload the pilot tracks and the config, then play Batch and the timer function until nothing is
    left to run; the first attempt of ``KILLED_FOLD`` is killed once its Spark job computes."""
    from handlers.azure.functions import advance_runs
    from tests.azure.executor import BatchExecutor, spark_is_computing

    for path in sorted(pilot_dir.iterdir()):
        if path.suffix in (".bigWig", ".tsv", ".sizes"):
            azure.deliver(azure.put(f"data/pilot/{path.name}", path.read_bytes()))  # no config uses them yet
    azure.deliver(azure.put("data/pilot/regions.bed", REGIONS.encode()))
    events = azure.put("configs/pilot.yaml", CONFIG)
    azure.deliver(events)
    azure.deliver(events)  # Event Grid delivers at least once
    [run] = azure.ledger.runs()

    def node_lost(running) -> bool:  # the task ids are the attempts' client tokens: JOB-aN-DIGEST
        return running.task["id"].startswith(f"{KILLED_FOLD}-a1-") and spark_is_computing(running)

    executor = BatchExecutor(azure.service, work / "nodes", worker_cores=1, worker_memory="2g", kill=node_lost,
                             extra_env={"AZURE_STORAGE_CONNECTION_STRING": azure.emulator.connection_string})
    while True:
        ran = executor.run_pending()
        advance_runs(None)
        if not ran and not [t for t in azure.service.tasks() if t["state"] == "active"]:
            break
    return run["run_id"], executor


def start_local_run(pilot_dir: Path, work: Path) -> tuple[subprocess.Popen, Path]:
    """Start the undisturbed reference: ``predictd cv`` of the same config with local paths, in a process of
    its own, on Spark ``local[*]`` (the config's default engine, the master of every single-node task);
    ``cloud`` does not apply to a local run. It runs beside the cloud run (its results do not depend on what
    else the machine does); returns the process and its output folder."""
    output = work / "local"
    config = work / "local.yaml"
    (work / "regions.bed").write_text(REGIONS)
    config.write_text(CONFIG.replace("../data/pilot/regions.bed", str(work / "regions.bed"))
                      .replace("../data/pilot/", f"{pilot_dir}/")
                      .replace("ignored-the-run-writes-under-runs", str(output)))
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    with open(work / "local.log", "wb") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "predictd"), "cv", str(config)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    return process, output


def stop(process: subprocess.Popen) -> None:
    """Kill ``process`` unless it ended (a failed cloud run leaves no reason to wait for the reference)."""
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def runs(azurite, pilot_dir, tmp_path_factory):
    from tests.azure.batch_service import BatchService

    work = tmp_path_factory.mktemp("azure-end-to-end")
    seconds = {}
    with pytest.MonkeyPatch.context() as monkeypatch, BatchService() as service:
        azure = AzureDeployment(azurite, service, monkeypatch)
        started = time.monotonic()
        local_run, local_output = start_local_run(pilot_dir, work)
        try:
            run_id, executor = run_in_the_cloud(azure, pilot_dir, work)
            seconds["cloud run"] = time.monotonic() - started
            returncode = local_run.wait(timeout=900)
            seconds["both runs"] = time.monotonic() - started
        finally:
            stop(local_run)
        assert returncode == 0, (work / "local.log").read_text(errors="replace")[-3000:]
        print("\nazure end to end: " + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()))
        yield Runs(azure, run_id, executor, local_output, work, seconds)


def jobs(runs: Runs, stage: str) -> list[Job]:
    return [job for job in runs.azure.jobs() if job.args[0] == stage]


def test_a_config_dropped_in_the_configs_container_ends_with_imputations_metrics_report_and_manifest(
        runs, capsys, monkeypatch):
    from predictd_core.cli.main import main

    azure, prefix = runs.azure, runs.prefix
    for execution in runs.executor.executed:
        assert execution.exit_code == 0 or execution.killed, execution.log[-3000:]
    stages = [job.args[0] for job in azure.jobs()]
    assert stages == ["folds", "train", "train", "train", "train", "train", "cv"]  # one fold ran twice
    [finish] = jobs(runs, "cv")
    assert finish.nodes == 2 and len(finish.depends_on) == 4
    assert any(log.read_text() for execution in runs.executor.executed for log in execution.spark_logs)

    keys = runs.keys()
    imputed = [key for key in keys if key.startswith(prefix + "imputed/")]
    assert len(imputed) == 25
    for name in ("folds.json", "metrics.tsv", "metrics.parquet", "summary.tsv", "report.html", "manifest.json",
                 "run.json"):
        assert prefix + name in keys, name

    manifest = json.loads(runs.text(prefix + "manifest.json"))
    assert len(manifest["metrics"]) == 25  # every observed track, scored out of sample in its test fold
    assert {Path(key).name for key in imputed} <= {Path(output).name for output in manifest["outputs"]}
    metrics = runs.text(prefix + "metrics.tsv").splitlines()
    assert len(metrics) == 26 and metrics[0].startswith("cell_type\tassay\tkind")
    assert "data:image/png;base64," in runs.text(prefix + "report.html")

    handle = pyBigWig.open(str(runs.bigwig(prefix + "imputed/E065.H3K4me3.bigWig")))
    assert handle.chroms() == dict([CONTIG])
    values = handle.values(CONTIG[0], 0, 25 * 4000, numpy=True)
    handle.close()
    assert np.isfinite(values).all() and (values >= 0).all() and values.max() > 0

    assert json.loads(runs.text(prefix + "run.json"))["state"] == "SUCCEEDED"
    [notice] = azure.notifications()
    assert notice["run_id"] == runs.run_id and notice["state"] == "SUCCEEDED"

    monkeypatch.setenv("PREDICTD_TABLE_ENDPOINT", azure.emulator.table_endpoint)
    capsys.readouterr()
    assert main(["status", runs.run_id, "--account", azure.emulator.account, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "SUCCEEDED"
    assert [(job["job"], job["state"], job["attempts"]) for job in status["jobs"]] == [
        ("prepare", "SUCCESS", 1),
        *((f"test{i}-valid{j}", "SUCCESS", 2 if f"test{i}-valid{j}" == KILLED_FOLD else 1)
          for i in (0, 1) for j in (0, 1)),
        ("finish", "SUCCESS", 1)]


def test_a_fold_job_killed_mid_way_is_retried_into_its_own_attempt_folder(runs):
    azure, prefix = runs.azure, runs.prefix
    [killed] = [execution for execution in runs.executor.executed if execution.killed]
    assert killed.task_id.startswith(f"{KILLED_FOLD}-a1-") and killed.exit_code == 137
    assert "best sweep" not in killed.log  # killed before the CLI's last line: "model: URL (rank 4, best sweep ...)"
    info = azure.service.task(killed.job_id, killed.task_id)["executionInfo"]  # what the timer function read
    assert (info["result"], info["exitCode"]) == ("failure", 137)
    folds = jobs(runs, "train")
    model_dirs = [job.args[job.args.index("--model-dir") + 1] for job in folds]
    assert [d.split("/attempts/")[1] for d in model_dirs] == [
        "test0-valid0/attempt-1", f"{KILLED_FOLD}/attempt-1", "test1-valid0/attempt-1", "test1-valid1/attempt-1",
        f"{KILLED_FOLD}/attempt-2"]
    assert [job.id.split("/")[1] for job in folds][1] == killed.task_id

    first, retry = f"{prefix}attempts/{KILLED_FOLD}/attempt-1/", f"{prefix}attempts/{KILLED_FOLD}/attempt-2/"
    assert first + "model.json" not in runs.keys(f"attempts/{KILLED_FOLD}/attempt-1/")  # no whole model
    assert sorted(runs.keys(f"attempts/{KILLED_FOLD}/attempt-2/")) == [retry + "factors.npz", retry + "model.json"]
    models = {key.split("/")[3] for key in runs.keys("models/")}
    assert models == {"test0-valid0", "test0-valid1", "test1-valid0", "test1-valid1"}
    for name in ("factors.npz", "model.json"):  # models/ holds the retry's model
        assert runs.azure.store.read_current(f"{prefix}models/{KILLED_FOLD}/{name}")[1] == \
            runs.azure.store.read_current(retry + name)[1]
    # the retried fold fitted the same model as the undisturbed run
    assert runs.azure.store.read_current(f"{prefix}models/{KILLED_FOLD}/factors.npz")[1] == \
        (runs.local_output / "models" / KILLED_FOLD / "factors.npz").read_bytes()


def test_the_imputed_bigwigs_are_identical_to_an_undisturbed_run(runs):
    imputed = sorted(key for key in runs.keys("imputed/"))
    local = sorted((runs.local_output / "imputed").glob("*.bigWig"))
    assert [Path(key).name for key in imputed] == [path.name for path in local] and len(local) == 25
    for key, reference in zip(imputed, local):
        cloud = runs.bigwig(key)
        assert np.array_equal(whole_contig(cloud), whole_contig(reference), equal_nan=True), key
        # the files too, block for block: every data block and zoom record as the file holds it, inflated. Not
        # byte for byte: ISA-L's deflate of a block is not always the same bytes in two processes (seen: 3 small
        # zoom blocks of one track, the same records; any inflate reads either)
        assert bigwig_contents(cloud) == bigwig_contents(reference), key


def bigwig_contents(path: Path) -> dict:
    """What the bigWig ``path`` holds, read from its bytes by the format's layout (independently of predictd's
    writer): the header's fields other than offsets, the contig tree, the total summary, and for the data and each
    zoom level the inflated blocks with their index entries' bounds, in the index's order (offsets left out)."""
    data = path.read_bytes()
    (magic, version, n_zooms, tree, full_data, full_index, fields, defined, _, summary, buffer,
     _) = struct.unpack_from("<IHHQQQHHQQIQ", data)
    zooms = [struct.unpack_from("<IIQQ", data, 64 + 24 * level) for level in range(n_zooms)]
    levels = [full_index] + [index for *_, index in zooms]
    return {"header": (magic, version, n_zooms, fields, defined, buffer),
            "reductions": [reduction for reduction, *_ in zooms],
            "contigs": data[tree:full_data],  # the contig tree lies just before the data
            "summary": data[summary:summary + 40],
            "levels": [[(bounds, zlib.decompress(data[offset:offset + size]))
                        for offset, size, bounds in rtree_leaves(data, index)] for index in levels]}


def whole_contig(path: Path) -> np.ndarray:
    """The values of the bigWig ``path`` over the whole pilot contig (one per base)."""
    handle = pyBigWig.open(str(path))
    try:
        assert handle.chroms() == dict([CONTIG])
        return handle.values(CONTIG[0], 0, CONTIG[1], numpy=True)
    finally:
        handle.close()
