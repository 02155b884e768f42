"""End to end on Azure with the real pilot tracks: a config dropped into the ``configs`` container ends as a
SUCCEEDED run with 25 imputed bigWigs, metrics, report and manifest in Blob storage.

Azurite serves Blob, Table and Queue storage; the local Batch service records the tasks the function app
adds; ``BatchExecutor`` plays the pool's nodes: it runs each task's command line (``spark-submit`` of the
image's entry point, here the repository's) against Azurite, the finish job as a multi-instance task on a
local Spark standalone master and worker started by the task's own coordination command, and records
each exit in the service; the timer function then reads the task states and moves the run on. Faults:
the config event delivered twice, and one fold's first attempt killed (exit 137) before it ran.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from tests.cloud.deployments import AzureDeployment

pytestmark = pytest.mark.spark  # each task is a spark-submit of its own

CONFIG = """\
# the pilot tracks, cross-validated 2 x 2 (paths relative to this file); the finish job on 2 nodes
tracks: ../data/pilot/tracks.tsv
chrom_sizes: ../data/pilot/chrom.sizes
model: {rank: 4, solver: als, max_iters: 3}
cv: {n_test: 2, n_valid: 2}
cloud: {nodes: 2, stages: [finish]}
output: ignored-the-run-writes-under-runs
"""


@pytest.fixture
def azure(azurite, monkeypatch):
    from tests.azure.batch_service import BatchService

    with BatchService() as service:
        yield AzureDeployment(azurite, service, monkeypatch)


def test_a_config_dropped_in_the_configs_container_ends_with_imputations_metrics_report_and_manifest(
        azure, pilot_dir, tmp_path, capsys, monkeypatch):
    from handlers.azure.functions import advance_runs
    from predictd_core.cli.main import main
    from tests.azure.executor import BatchExecutor

    for path in sorted(pilot_dir.iterdir()):
        if path.suffix in (".bigWig", ".tsv", ".sizes"):
            azure.deliver(azure.put(f"data/pilot/{path.name}", path.read_bytes()))  # no config uses them yet
    events = azure.put("configs/pilot.yaml", CONFIG)
    azure.deliver(events)
    azure.deliver(events)  # Event Grid delivers at least once
    [run] = azure.ledger.runs()
    run_id = run["run_id"]

    executor = BatchExecutor(azure.service, tmp_path / "nodes", worker_cores=1, worker_memory="2g",
                             extra_env={"AZURE_STORAGE_CONNECTION_STRING": azure.emulator.connection_string})
    killed = None
    while True:
        if killed is None and (folds := [j for j in azure.jobs() if j.args[0] == "train"]):
            killed = folds[1]  # its node died under it: Batch records the exit, the run logic retries
            job_id, task_id = killed.id.split("/")
            azure.service.complete(job_id, task_id, 137, "the process was killed")
        ran = executor.run_pending()
        advance_runs(None)
        if not ran and not [t for t in azure.service.tasks() if t["state"] == "active"]:
            break

    for execution in executor.executed:
        assert execution.exit_code == 0, execution.log[-3000:]
    stages = [job.args[0] for job in azure.jobs()]
    assert stages == ["folds", "train", "train", "train", "train", "train", "cv"]
    [finish] = [job for job in azure.jobs() if job.args[0] == "cv"]
    assert finish.nodes == 2 and len(finish.depends_on) == 4
    assert any(log.read_text() for execution in executor.executed for log in execution.spark_logs)

    prefix = f"runs/{run_id}/"
    keys = azure.store.keys(prefix)
    imputed = [key for key in keys if key.startswith(prefix + "imputed/")]
    assert len(imputed) == 25
    for name in ("folds.json", "metrics.tsv", "metrics.parquet", "summary.tsv", "report.html", "manifest.json",
                 "run.json"):
        assert prefix + name in keys, name
    models = {key.split("/")[3] for key in keys if key.startswith(prefix + "models/")}
    assert models == {"test0-valid0", "test0-valid1", "test1-valid0", "test1-valid1"}
    assert f"{prefix}attempts/{killed.args[killed.args.index('--model-dir') + 1].split('/attempts/')[1]}" \
        not in keys  # the killed attempt wrote nothing; its retry has its own folder

    def text(key: str) -> str:
        return azure.store.read_current(key)[1].decode()

    manifest = json.loads(text(prefix + "manifest.json"))
    assert len(manifest["metrics"]) == 25  # every observed track, scored out of sample in its test fold
    assert {Path(key).name for key in imputed} <= {Path(output).name for output in manifest["outputs"]}
    metrics = text(prefix + "metrics.tsv").splitlines()
    assert len(metrics) == 26 and metrics[0].startswith("cell_type\tassay\tkind")
    assert "data:image/png;base64," in text(prefix + "report.html")

    local = tmp_path / "E065.H3K4me3.bigWig"
    local.write_bytes(azure.store.read_current(prefix + "imputed/E065.H3K4me3.bigWig")[1])
    handle = pyBigWig.open(str(local))
    assert handle.chroms() == {"pilotA": 14_080_850}
    values = handle.values("pilotA", 0, 25 * 4000, numpy=True)
    handle.close()
    assert np.isfinite(values).all() and (values >= 0).all() and values.max() > 0

    assert json.loads(text(prefix + "run.json"))["state"] == "SUCCEEDED"
    [notice] = azure.notifications()
    assert notice["run_id"] == run_id and notice["state"] == "SUCCEEDED"

    monkeypatch.setenv("PREDICTD_TABLE_ENDPOINT", azure.emulator.table_endpoint)
    capsys.readouterr()
    assert main(["status", run_id, "--account", azure.emulator.account, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "SUCCEEDED"
    killed_fold = killed.args[killed.args.index("--test-fold") + 1], killed.args[killed.args.index("--valid-fold") + 1]
    assert [(job["job"], job["state"], job["attempts"]) for job in status["jobs"]] == [
        ("prepare", "SUCCESS", 1),
        *((f"test{i}-valid{j}", "SUCCESS", 2 if (str(i), str(j)) == killed_fold else 1) for i in (0, 1) for j in (0, 1)),
        ("finish", "SUCCESS", 1)]
