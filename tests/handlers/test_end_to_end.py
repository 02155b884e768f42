"""End to end on the real pilot tracks: a config dropped into the bucket ends as a SUCCEEDED run with imputed
bigWigs, metrics, report and manifest in the bucket.

moto records the EMR Serverless job runs the handlers start but runs none of them. ``LocalExecutor`` plays
EMR: it takes each recorded job run and runs ``spark-submit --master local[2] ENTRY_POINT ARGS`` (the image's
``/opt/predictd/entrypoint.py`` is ``containers/emr-serverless/entrypoint.py``) with the recorded arguments,
in a process of its own whose environment reaches moto's S3 (as an EMR job's role reaches S3), then delivers
the documented state-change event, SUCCESS or FAILED by the exit code, back to the job-state handler.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from tests.handlers.conftest import REPO_ROOT, deliver

pytestmark = pytest.mark.spark  # each job is a spark-submit of its own

IMAGE_ENTRY_POINT = "local:///opt/predictd/entrypoint.py"
ENTRY_POINT_SOURCE = REPO_ROOT / "containers" / "emr-serverless" / "entrypoint.py"

# 2 Mb of the pilot contig (80,000 bins of its 563,234): this test checks the jobs and their outputs, not the model
REGIONS = "pilotA\t0\t1500000\npilotA\t7000000\t7500000\n"
CONFIG = """\
# the pilot tracks on two regions, cross-validated 2 x 2 (paths relative to this file); the finish job's
# refinement fitted on a small sample (1 s instead of 2 minutes: this test checks the jobs, not the blend)
tracks: ../data/pilot/tracks.tsv
chrom_sizes: ../data/pilot/chrom.sizes
regions: ../data/pilot/regions.bed
model: {rank: 4, solver: als, max_iters: 3, refine: {sample_bins: 32768, inner_tracks: 2}}
cv: {n_test: 2, n_valid: 2}
output: ignored-the-run-writes-under-runs
"""


class LocalExecutor:
    """Runs the job runs moto recorded, each once, in start order, and reports their end to the handlers."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.executed: list[dict] = []

    def run_pending(self) -> int:
        """Run every recorded job run not run yet; returns how many ran."""
        pending = [job for job in self.cloud.job_runs() if job["id"] not in {done["id"] for done in self.executed}]
        for job in pending:
            assert job["entry_point"] == IMAGE_ENTRY_POINT
            done = self._spark_submit(job["args"])
            self.executed.append({**job, "exit_code": done.returncode, "log": done.stdout + done.stderr})
            deliver(self.cloud, job, "SUCCESS" if done.returncode == 0 else "FAILED", outputs=False)
        return len(pending)

    @staticmethod
    def _spark_submit(args: list[str]) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
               "SPARK_LOCAL_IP": "127.0.0.1"}  # os.environ carries the cloud fixture's endpoint and credentials
        spark_submit = Path(sys.executable).parent / "spark-submit"
        return subprocess.run([str(spark_submit), "--master", "local[2]", str(ENTRY_POINT_SOURCE), *args],
                              capture_output=True, text=True, env=env, timeout=600)


def upload_pilot(cloud, pilot_dir: Path) -> None:
    for path in sorted(pilot_dir.iterdir()):
        if path.suffix in (".bigWig", ".tsv", ".sizes"):
            cloud.put(f"data/pilot/{path.name}", path.read_bytes())
    cloud.put("data/pilot/regions.bed", REGIONS.encode())
    cloud.s3_events()  # no config uses the data yet: nothing to reprocess


def test_a_config_dropped_in_the_bucket_ends_with_imputations_metrics_report_and_manifest(
        cloud, pilot_dir, tmp_path, capsys):
    from handlers import on_config
    from predictd_core.cli.main import main

    upload_pilot(cloud, pilot_dir)
    [run] = on_config.handler(cloud.put("configs/pilot.yaml", CONFIG)[0], None)["runs"]
    run_id = run["run_id"]
    executor = LocalExecutor(cloud)
    while executor.run_pending():  # prepare, then the four folds, then finish
        pass

    stages = [job["args"][0] for job in executor.executed]
    assert stages == ["folds", "train", "train", "train", "train", "cv"]
    for job in executor.executed:
        assert job["exit_code"] == 0, job["log"][-3000:]

    prefix = f"runs/{run_id}/"
    keys = cloud.keys(prefix)
    imputed = [key for key in keys if key.startswith(prefix + "imputed/")]
    assert len(imputed) == 25
    for name in ("folds.json", "metrics.tsv", "metrics.parquet", "summary.tsv", "report.html", "manifest.json",
                 "run.json"):
        assert prefix + name in keys, name
    models = {key.split("/")[3] for key in keys if key.startswith(prefix + "models/")}
    assert models == {"test0-valid0", "test0-valid1", "test1-valid0", "test1-valid1"}

    manifest = json.loads(cloud.text(prefix + "manifest.json"))
    assert len(manifest["metrics"]) == 25  # every observed track, scored out of sample in its test fold
    listed = {Path(output).name for output in manifest["outputs"]}
    assert {Path(key).name for key in imputed} <= listed
    metrics = cloud.text(prefix + "metrics.tsv").splitlines()
    assert len(metrics) == 26 and metrics[0].startswith("cell_type\tassay\tkind")
    assert "data:image/png;base64," in cloud.text(prefix + "report.html")

    bigwig = cloud.s3.get_object(Bucket=cloud.bucket, Key=prefix + "imputed/E065.H3K4me3.bigWig")["Body"].read()
    local = tmp_path / "E065.H3K4me3.bigWig"
    local.write_bytes(bigwig)
    handle = pyBigWig.open(str(local))
    assert handle.chroms() == {"pilotA": 14_080_850}
    values = handle.values("pilotA", 0, 25 * 4000, numpy=True)
    handle.close()
    assert np.isfinite(values).all() and (values >= 0).all() and values.max() > 0

    record = json.loads(cloud.text(prefix + "run.json"))
    assert record["state"] == "SUCCEEDED"
    [notice] = cloud.notifications()
    assert notice["run_id"] == run_id and notice["state"] == "SUCCEEDED"

    capsys.readouterr()
    assert main(["status", run_id, "--bucket", cloud.bucket, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "SUCCEEDED"
    assert [(job["job"], job["state"], job["attempts"]) for job in status["jobs"]] == [
        ("prepare", "SUCCESS", 1), *((f"test{i}-valid{j}", "SUCCESS", 1) for i in (0, 1) for j in (0, 1)),
        ("finish", "SUCCESS", 1)]
