"""PREDICTD's whole protocol end to end, job by job as a cloud run submits it, measured and projected to hg19.

A cloud run (``predictd_core/cloud/runs.py``, ``contract.py``) is exactly these commands, each a job:

1. prepare: ``predictd folds CONFIG``: ingest the 1,014 bigWigs into the store, deal the 5 x 8 folds;
2. one job per fold model: ``predictd train CONFIG --test-fold i --valid-fold j --model-dir ATTEMPT``, whose
   model the run logic then copies to ``OUTPUT/models/test{i}-valid{j}`` (where ``cv`` finds it);
3. finish: ``predictd cv CONFIG``: finds the 40 trained models (trains none), imputes all 3,048 pairs of the
   127 x 24 grid from the fold ensembles with the default refinement stage, scores every observed experiment
   (each by the models whose test fold held it), writes metrics, report.html and manifest.json.

This script runs those commands in fresh processes, in that order (the fold jobs ``--parallel`` at a time),
on a Roadmap-shaped compendium simulated as 1,014 bigWigs of ``--bins`` bins (``predictd simulate --layout
../shared/data/roadmap-layout --format bigwig``, made once and reused), with the config as the cloud's run
config has it (output and ``store: OUTPUT/store.zarr``), but ``engine: {kind: numpy, processes: P}`` where the
cloud forces Spark (``cloud_run_config``): here one machine, so the numpy engine, which computes the imputed
chunks in ``processes`` worker processes beside as many bigWig writers.

Each job is measured from outside: wall time, CPU seconds of its whole process tree (``os.wait4``'s rusage,
which counts every descendant the job reaped: its ingest, imputation and writer processes) and peak resident
memory (sampled every 0.1 s: the largest process, and all of them at once). The finish job is split at its
progress lines (``predictd: refine|impute|evaluate: done ...``, timestamped as they arrive, with the process
tree's CPU seconds then): refinement fit, imputation (compute, refine and write: one phase, the worker processes
do all three side by side), scoring (which also covers the writers' closing of the last tracks), report and
manifest; the setup before the refinement (store, 40 models, ensemble) is timed apart in a fresh process, and
``--unrefined`` runs the finish job a second time with ``model.refine.enabled: false`` on the same models (the
refinement is not in the training digest) to price the refinement's application per chunk.

It then projects the protocol on hg19 (124 M bins) from these rates, for the job layout the handlers submit
(EMR Serverless by default; ``-c engine=emr-ec2``; Azure Batch), with list prices.

    .venv/bin/python bench/protocol.py --work /tmp/protocol [--bins 65536] [--chunk-bins 16384] [--parallel 1]
        [--unrefined] [--folds 5 8] [--max-iters N] [--patience N] [--refine-sample BINS TRACKS] [--processes P]
    .venv/bin/python bench/protocol.py --rates bench/results/protocol-65536-rates.json   # the projection again
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import psutil
from jobs import HG19_BINS, LAYOUT, PLANTED_RANK, process_tree, write_config

from predictd_core.engine.base import items_per_task
from predictd_core.engine.ingest import MAX_TRACKS_PER_TASK
from predictd_core.evaluate.distributed import group_targets
from predictd_core.evaluate.scoring import SCORING_BYTES

N_TRACKS, N_PAIRS = 1014, 127 * 24  # the Roadmap layout's observed experiments, and its grid
CHUNK_BINS = 65_536  # the default chunk (config.DEFAULT_CHUNK_BINS), which the hg19 store has
HG19_CHUNKS = math.ceil(HG19_BINS / CHUNK_BINS)
# model.train_bins' default (PREDICTD's ~1% of hg19): fold models train on at most this many bins, in whole
# chunks spread over the genome, so a fold job costs the same on hg19 as on a store of this size.
TRAIN_BINS = 1_310_720

# Rates measured by other benchmarks (BENCHMARKS.md), used where this run cannot separate a cost:
WRITE_NS_PER_VALUE = 30.0  # "bigWig writing": predictd's writer, 29-32 ns a value all in, one process
# "bigWig parts": a track written as parts of 65,536-bin chunks (where the chunks are computed) and assembled
PARTS_NS_PER_VALUE = 56.1  # 49.1 writing the parts, 7.1 assembling; one pass: 35.2 in the same run
SPARK_SWEEP_FACTOR = 235 / 233  # "Spark sweeps against the numpy engine": one model to convergence, Spark / numpy
CHUNK_DECODE_CORE_S = 0.7  # "Spark sweeps against the numpy engine": zstd decode of a 65,536-bin chunk
# "Ingest on the executors": core-s of ingest on Spark's tasks (bundles of tracks, then chunk tasks) / in processes,
# medians of 3, local[2] against 2 processes, on 64 bigWigs x 2,097,152 bins: a task bins 8.4 M values, so Spark's
# ~40 ms a task no longer counts as it did on 65,536-bin tracks (2.23x there); on hg19 a task bins ~500 M
INGEST_EXECUTOR_FACTOR = 45.4 / 28.0
# "Scoring on the executors": one target's task (its imputed bigWig read back, the observed track sorted and
# ranked, the imputation and the baseline scored) at 32 M bins, core-s per M bins: a whole genome's sorts are
# ~27 levels deep, this run's 65,536 bins only 16, so its own scoring rate would understate them
SCORING_TASK_CORE_S_PER_M = 20.9 / 32
# core-s of scoring on Spark's tasks (bundles, then target tasks) / in one process, medians of 3, 1,014 experiments
# x 65,536 bins, local[2]: the bundles and Spark's own ~40 ms a task, kept whole though the latter shrinks on hg19
SCORING_EXECUTOR_FACTOR = 39.9 / 30.0
# "Scoring on the executors": one target's task's peak resident memory grows 25.5 bytes a bin (from 8 M to 32 M
# bins) over a fixed part (the Python worker, numpy, the bundles' index) of ~0.14 GB
SCORING_TASK_BYTES_PER_BIN, SCORING_TASK_FIXED_GB = 25.5, 0.14
# an executor's own JVM, resident beside its Python workers: 0.3 GB measured here (local[2], driver and executor in
# one JVM), taken three times over
EXECUTOR_JVM_GB = 1.0
# "One model trained to convergence": the default model at 1,126,469 bins, numpy engine, 2 cores
CONVERGED_BINS, CONVERGED_SWEEPS, CONVERGED_BEST, CONVERGED_SWEEP_CORE_S = 1_126_469, 15, 5, 2 * 12.0
VCPU_EFFICIENCY = 0.85  # a vCPU as one of this machine's cores at 85% ("The whole genome on EMR")

# List prices, us-east-1 (README "What a run costs", "What a run costs on Azure"; check before budgeting).
EMR_SERVERLESS_VCPU_HOUR, EMR_SERVERLESS_GB_HOUR = 0.052624, 0.0057785
# EMR on EC2: on-demand EC2 + the EMR charge per instance-hour (aws.amazon.com/ec2/pricing, /emr/pricing):
# m5.xlarge / m6i.xlarge $0.192 + $0.048; r5.2xlarge / r6i.2xlarge $0.504 + $0.126. Spot task nodes are priced
# on demand here: an upper bound (spot is typically 30-40% of it, and varies).
EMR_EC2_PRIMARY_HOUR, EMR_EC2_WORKER_HOUR = 0.192 + 0.048, 0.504 + 0.126
AZURE_NODE_HOUR_SPOT, AZURE_NODE_HOUR_ON_DEMAND = 0.038, 0.192  # Standard_D4as_v5, East US (unverified there)


# ----------------------------------------------------------------------------------------- measuring a job

@dataclass
class Job:
    """One measured command: wall and CPU seconds of its process tree, peak memory, its progress lines."""

    name: str
    seconds: float
    cpu_seconds: float
    largest_mb: float  # the largest process
    total_mb: float  # every process of the tree at once, at their joint peak
    lines: list[tuple[float, float, str]] = field(default_factory=list)  # (s since start, tree CPU s then, line)

    def mark(self, pattern: str) -> tuple[float, float]:
        """(seconds, CPU seconds) when the first progress line matching ``pattern`` arrived."""
        found = [(seconds, cpu) for seconds, cpu, line in self.lines if re.search(pattern, line)]
        if not found:
            raise ValueError(f"{self.name}: no progress line matches {pattern!r}")
        return found[0]


def tree_cpu_seconds(root: psutil.Process) -> float:
    """CPU seconds of ``root`` and its live descendants, each with the children it has reaped."""
    total = 0.0
    for process in process_tree(root):  # the root first: a reap in between undercounts, never counts twice
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def run_job(name: str, argv: list[str]) -> Job:
    """Run ``python ARGV`` in a fresh process and measure it (see the module docstring)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(process.pid)
    lines, errors, cpu_now = [], [], [0.0]

    def read_lines() -> None:
        for line in process.stdout:
            lines.append((time.perf_counter() - started, cpu_now[0], line.rstrip("\n")))

    readers = [threading.Thread(target=read_lines), threading.Thread(target=lambda: errors.extend(process.stderr))]
    for reader in readers:
        reader.start()
    largest = total = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        sizes = []
        for member in process_tree(root):
            try:
                sizes.append(member.memory_info().rss)
            except psutil.Error:
                continue
        largest, total = max([largest, *sizes]), max(total, sum(sizes))
        cpu_now[0] = tree_cpu_seconds(root)
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    if process.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {''.join(errors)[-2000:]}")
    return Job(name, seconds, usage.ru_utime + usage.ru_stime, largest / 2**20, total / 2**20, lines)


def predictd(*args: str) -> list[str]:
    """The argv of ``predictd ARGS`` for :func:`run_job`."""
    return ["-m", "predictd_core.cli.main", *args]


# ------------------------------------------------------------------------------------------ the protocol

def simulated_bigwigs(folder: Path, bins: int) -> Path:
    """``folder`` holding the Roadmap-shaped compendium of ``bins`` bins as 1,014 bigWigs (simulated once)."""
    done = folder / "simulated.json"
    if done.is_file() and json.loads(done.read_text()) == {"bins": bins}:
        return folder
    subprocess.run([sys.executable, *predictd("simulate", str(folder), "--layout", str(LAYOUT), "--bins", str(bins),
                                              "--rank", str(PLANTED_RANK), "--format", "bigwig", "--overwrite")],
                   check=True, capture_output=True)
    done.write_text(json.dumps({"bins": bins}))
    return folder


def run_config(data: Path, output: Path, folds: tuple[int, int], model: dict, processes: int, chunk_bins: int,
               store: Path | None = None) -> Path:
    """``output/config.yaml``: the run config as the cloud's (output, ``store: OUTPUT/store.zarr`` or
    ``store``), on the numpy engine with ``processes``."""
    return write_config(data, output, {"kind": "numpy", "processes": processes}, model, chunk_bins,
                        store=store or output / "store.zarr", cv={"n_test": folds[0], "n_valid": folds[1]})


@dataclass
class Fold:
    """A measured fold job and its model's log."""

    job: Job
    sweep_seconds: list[float]
    best_iteration: int

    @property
    def sweeps(self) -> int:
        return len(self.sweep_seconds)

    @property
    def cpu_per_sweep(self) -> float:
        """The job's CPU seconds in its sweeps: its CPU x the share of its wall the sweeps took."""
        return self.job.cpu_seconds * sum(self.sweep_seconds) / self.job.seconds / self.sweeps


def train_fold(config: Path, output: Path, i: int, j: int) -> Fold:
    """The fold job (i, j) as the cloud runs it: its own attempt folder, then the model copied to ``models/``
    (model.json last: a readable model.json marks a whole model)."""
    name = f"test{i}-valid{j}"
    attempt = output / "attempts" / name / "attempt-1"
    job = run_job(name, predictd("train", str(config), "--test-fold", str(i), "--valid-fold", str(j),
                                 "--model-dir", str(attempt)))
    target = output / "models" / name
    target.mkdir(parents=True, exist_ok=True)
    for source in sorted(attempt.iterdir(), key=lambda path: path.name == "model.json"):
        shutil.copy2(source, target / source.name)
    description = json.loads((attempt / "model.json").read_text())
    return Fold(job, [row["seconds"] for row in description["history"]], description["best_iteration"])


SETUP_SCRIPT = """
import sys
from predictd_core import crossval, pipeline
from predictd_core.config import load_config
config = load_config(sys.argv[1])
store = pipeline.open_store(config)
crossval.cv_run(config, store)
"""


@dataclass
class Finish:
    """The finish job, split at its progress lines: (wall, CPU) seconds of each phase."""

    job: Job
    phases: dict[str, tuple[float, float]]


def finish_phases(job: Job, setup: Job, refined: bool) -> Finish:
    """Phases of a finish job: setup (``setup``, timed apart), the refinement fit, imputation, scoring, report.

    Boundaries are the ``done`` lines of the refine, impute and evaluate steps, and the process's end."""
    marks = [(0.0, 0.0)]
    names = []
    if refined:
        marks.append(job.mark(r"predictd: refine: done"))
        names.append("refinement fit")
    marks += [job.mark(r"predictd: impute: done"), job.mark(r"predictd: evaluate: done"),
              (job.seconds, job.cpu_seconds)]
    names += ["impute", "score", "report"]
    phases = {name: (end[0] - start[0], end[1] - start[1]) for name, start, end in zip(names, marks, marks[1:])}
    first = names[0]  # the setup is inside the first phase: taken out of it
    phases[first] = (phases[first][0] - setup.seconds, phases[first][1] - setup.cpu_seconds)
    return Finish(job, {"setup": (setup.seconds, setup.cpu_seconds), **phases})


def finish(config: Path, name: str) -> Finish:
    """``predictd cv`` on trained models (none may be trained again), and its setup timed apart."""
    setup = run_job(f"{name} setup", ["-c", SETUP_SCRIPT, str(config)])
    job = run_job(name, predictd("cv", str(config)))
    retrained = [line for _, _, line in job.lines if line.startswith("predictd: train")]
    if retrained:
        raise RuntimeError(f"{name} trained models the fold jobs had trained: {retrained[:2]}")
    refined = any(line.startswith("predictd: refine:") for _, _, line in job.lines)
    return finish_phases(job, setup, refined)


def unrefined_config(data: Path, output: Path, folds: tuple[int, int], model: dict, processes: int,
                     chunk_bins: int) -> Path:
    """A second output beside ``output`` with its folds and models (links) and the same store, whose config
    turns the refinement off: the finish job again, on the same models."""
    other = output.with_name(output.name + "-unrefined")
    shutil.rmtree(other, ignore_errors=True)
    other.mkdir(parents=True)
    shutil.copy2(output / "folds.json", other / "folds.json")
    (other / "models").symlink_to(output / "models")
    unrefined = {**model, "refine": {**model.get("refine", {}), "enabled": False}}
    return run_config(data, other, folds, unrefined, processes, chunk_bins, store=output / "store.zarr")


def imputed_bytes(output: Path) -> int:
    return sum(path.stat().st_size for path in (output / "imputed").glob("*.bigWig"))


# ------------------------------------------------------------------------------------------ reporting

def number(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def memory(job: Job) -> str:
    return f"{number(job.largest_mb)} / {number(job.total_mb)}"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


@dataclass
class Rates:
    """Per-unit costs measured by this run (core-seconds are CPU seconds of the jobs' process trees)."""

    ingest_core_ns: float  # per value ingested (the job's start included, the fold deal not)
    sweeps: float  # per fold model, median
    best: float
    sweep_core_s_per_m: float  # one ALS sweep, per million bins trained on (the driver's fixed share included)
    fold_overhead_core_s: float  # a fold job outside its sweeps: start, store read, save
    setup_core_s: float  # the finish job's load of the models and ensemble
    refine_fit_core_s: float
    impute_core_s_per_m: float  # compute, refine and write all pairs, per million bins
    unrefined_impute_core_s_per_m: float | None
    score_core_s_per_track_m: float  # per scored experiment per million bins
    report_core_s: float
    bytes_per_value: float
    # the refinement's application (impute less unrefined impute) in the code projected, as a share of its cost in
    # the code this run measured: 1 for a run of the code itself, else measured against the run's commit
    # (BENCHMARKS "The refinement's application")
    refine_apply_factor: float = 1.0

    def projected_impute_core_s_per_m(self) -> float:
        """The imputation's rate with the refinement's application at :attr:`refine_apply_factor` of this run's."""
        if self.unrefined_impute_core_s_per_m is None:
            return self.impute_core_s_per_m
        applying = self.impute_core_s_per_m - self.unrefined_impute_core_s_per_m
        return self.unrefined_impute_core_s_per_m + applying * self.refine_apply_factor


def measured_table(bins: int, chunk_bins: int, folds: tuple[int, int], processes: int, parallel: int,
                   prepare: Job, fold_jobs: list[Fold], fold_wall: float, refined: Finish,
                   unrefined: Finish | None, bytes_written: int, scored: int) -> Rates:
    """Print the measured jobs and return the rates they give."""
    values = bins * N_TRACKS
    ingest_wall, ingest_cpu = prepare.mark(r"predictd: ingest: done")
    print("| job | wall (s) | core-s (CPU) | peak MB, largest process / all | per unit |")
    print("|---|---|---|---|---|")
    print(f"| prepare: `predictd folds` (ingest {bins:,} bins x {N_TRACKS:,} bigWigs, {processes} processes; deal "
          f"{folds[0]} x {folds[1]} folds) | {prepare.seconds:.1f} | {prepare.cpu_seconds:.1f} | {memory(prepare)} | "
          f"ingest {ingest_wall:.1f} s, {ingest_cpu:.1f} core-s: **{ingest_cpu / values * 1e9:.0f} core-ns per "
          f"value** (process start included) |")
    sweeps = statistics.median(f.sweeps for f in fold_jobs)
    best = statistics.median(f.best_iteration for f in fold_jobs)
    sweep_wall = statistics.median(s for f in fold_jobs for s in f.sweep_seconds)
    sweep_cpu = statistics.median(f.cpu_per_sweep for f in fold_jobs)
    overhead = statistics.median(f.job.cpu_seconds - f.cpu_per_sweep * f.sweeps for f in fold_jobs)
    total_cpu = sum(f.job.cpu_seconds for f in fold_jobs)
    largest = max(fold_jobs, key=lambda f: f.job.total_mb).job
    print(f"| {len(fold_jobs)} fold jobs: `predictd train --test-fold i --valid-fold j --model-dir ATTEMPT`, "
          f"{parallel} at a time | {fold_wall:.1f} ({statistics.median(f.job.seconds for f in fold_jobs):.1f} a "
          f"job, median) | {total_cpu:.1f} | {memory(largest)} | {sweeps:g} sweeps a model (median; best "
          f"{best:g}), {sweep_wall:.2f} s and **{sweep_cpu:.2f} core-s per sweep: {sweep_cpu / bins * 1e6:.1f} per "
          f"M bins**; {overhead:.1f} core-s a job outside the sweeps |")
    shares = {"setup": f"finish: setup (store, the {len(fold_jobs)} models, the ensemble), timed apart in a fresh "
                       "process",
              "refinement fit": "finish: refinement fitted in the driver (one refiner per set of members)",
              "impute": f"finish: impute all {N_PAIRS:,} pairs: compute, refine, write bigWigs ({processes} "
                        "processes)",
              "score": f"finish: score the {scored:,} held-out experiments (one process; the last tracks' closing "
                       "included)",
              "report": "finish: report.html, manifest.json"}
    job = refined.job
    print(f"| finish: `predictd cv` (the {len(fold_jobs)} models found, none trained) | {job.seconds:.1f} | "
          f"{job.cpu_seconds:.1f} | {memory(job)} | {bytes_written / (N_PAIRS * bins):.2f} bytes per value written |")
    units = {"impute": lambda cpu: f"**{cpu / bins * 1e6:.0f} core-s per M bins**",
             "score": lambda cpu: f"**{cpu / scored / bins * 1e6:.1f} core-s per experiment per M bins**",
             "setup": lambda cpu: "once per run", "refinement fit": lambda cpu: "once per run (a fixed sample)",
             "report": lambda cpu: "once per run"}
    for phase, (wall, cpu) in refined.phases.items():
        print(f"| &nbsp; {shares[phase]} | {wall:.1f} | {cpu:.1f} | | {units[phase](cpu)} |")
    if unrefined is not None:
        job = unrefined.job
        wall, cpu = unrefined.phases["impute"]
        print(f"| finish again with `model.refine.enabled: false` (same models) | {job.seconds:.1f} | "
              f"{job.cpu_seconds:.1f} | {memory(job)} | impute {wall:.1f} s, {cpu:.1f} core-s: "
              f"**{cpu / bins * 1e6:.0f} core-s per M bins** (so the refinement's application: "
              f"{(refined.phases['impute'][1] - cpu) / bins * 1e6:.0f}) |")
    total_wall = prepare.seconds + fold_wall + refined.job.seconds
    total_cpu_all = prepare.cpu_seconds + total_cpu + refined.job.cpu_seconds
    print(f"| **the protocol: prepare, {len(fold_jobs)} folds, finish** | **{total_wall:.0f}** "
          f"({hours(total_wall)}) | {total_cpu_all:.0f} | | |")
    return Rates(
        ingest_core_ns=ingest_cpu / values * 1e9, sweeps=sweeps, best=best, sweep_core_s_per_m=sweep_cpu / bins * 1e6,
        fold_overhead_core_s=overhead, setup_core_s=refined.phases["setup"][1],
        refine_fit_core_s=refined.phases.get("refinement fit", (0.0, 0.0))[1],
        impute_core_s_per_m=refined.phases["impute"][1] / bins * 1e6,
        unrefined_impute_core_s_per_m=None if unrefined is None else unrefined.phases["impute"][1] / bins * 1e6,
        score_core_s_per_track_m=refined.phases["score"][1] / scored / bins * 1e6,
        report_core_s=refined.phases["report"][1], bytes_per_value=bytes_written / (N_PAIRS * bins))


# ------------------------------------------------------------------------------------------ the projection

@dataclass(frozen=True)
class CloudLayout:
    """What the handlers submit on one engine: one driver per job (where the CLI, the setup and the refinement fit
    run), executors for the Spark tasks (training passes; ingest, imputation, writing and scoring), and what a
    job's machines cost."""

    name: str
    driver_vcpu: int
    executor_vcpu: int
    fold_executors: int  # executors a fold job holds (its tasks: the chunks it trains on)
    fold_concurrency: int  # fold jobs running at once
    start_seconds: float  # a job's start before its command runs (not measured here)
    job_hour: Callable[[int], float]  # $ per hour of a job holding that many executors
    executors_at_impute: int  # executors the prepare and finish jobs hold while their tasks run
    impute_vcpu: int  # the vCPUs those tasks run on
    worker_vcpu: int  # the vCPUs and memory of one machine those tasks share (an executor, a node)
    worker_gb: float


def emr_serverless_layout(fold_executors: int) -> CloudLayout:
    worker = 4 * EMR_SERVERLESS_VCPU_HOUR + 16 * EMR_SERVERLESS_GB_HOUR  # the default 4 vCPU / 16 GB worker
    per_job = 4 * (1 + fold_executors)
    return CloudLayout("EMR Serverless (default)", 4, 4, fold_executors, min(40, 400 // per_job), 60.0,
                       lambda executors: worker * (1 + executors), 99, 396, 4, 16)  # 400 vCPU less the driver's 4


def emr_ec2_layout() -> CloudLayout:
    # one transient cluster per job: 1 primary, 2 on-demand core and 14 spot task nodes of 8 vCPU; the driver runs
    # on a core node (spark-submit --deploy-mode cluster); every node is held for the whole step
    return CloudLayout("EMR on EC2 (-c engine=emr-ec2)", 8, 8, 16, 40, 600.0,
                       lambda executors: EMR_EC2_PRIMARY_HOUR + 16 * EMR_EC2_WORKER_HOUR, 16, 15 * 8, 8, 64)


def azure_layout(spot: bool) -> CloudLayout:
    # one Standard_D4as_v5 node per job (cloud.nodes: 1), Spark local[*]; at most 20 nodes (maxNodes)
    price = AZURE_NODE_HOUR_SPOT if spot else AZURE_NODE_HOUR_ON_DEMAND
    return CloudLayout(f"Azure Batch ({'spot' if spot else 'on demand'})", 4, 0, 0, 20, 300.0,
                       lambda executors: price, 0, 4, 4, 16)


def project(rates: Rates, layout: CloudLayout, sweeps: float, sweep_core_s_per_m: float
            ) -> list[tuple[str, str, float, float, float]]:
    """(job, where it runs, core-hours, wall s, $) of each part of the protocol on hg19 for ``layout``, with
    fold models of ``sweeps`` sweeps at ``sweep_core_s_per_m`` core-s per sweep per million bins."""
    m = HG19_BINS / 1e6
    driver = layout.driver_vcpu * VCPU_EFFICIENCY
    hour = layout.job_hour
    where = f"executors, {layout.impute_vcpu} vCPU" if layout.executor_vcpu else f"the node, {layout.impute_vcpu} vCPU"
    rows = []
    # prepare: ingest on Spark (engine/ingest.py): tasks of tracks bin them into bundles, then tasks of chunks
    # write the store; the reading tasks go in waves over the slots
    per_track = rates.ingest_core_ns * 1e-9 * HG19_BINS * INGEST_EXECUTOR_FACTOR
    per_task = items_per_task(N_TRACKS, layout.impute_vcpu, MAX_TRACKS_PER_TASK)
    waves = math.ceil(math.ceil(N_TRACKS / per_task) / layout.impute_vcpu)
    wall = layout.start_seconds + waves * per_task * per_track / VCPU_EFFICIENCY
    rows.append((f"prepare: ingest 1,014 bigWigs ({per_task} a task, {waves} waves)",
                 f"{where}: a task per group of tracks, then per group of chunks", per_track * N_TRACKS / 3600,
                 wall, hour(layout.executors_at_impute) * wall / 3600))
    # fold jobs: sweeps over TRAIN_BINS on the executors (the numpy rate x Spark's measured overhead)
    train = sweeps * sweep_core_s_per_m * TRAIN_BINS / 1e6 * SPARK_SWEEP_FACTOR + rates.fold_overhead_core_s
    slots = min(TRAIN_BINS // CHUNK_BINS, layout.fold_executors * layout.executor_vcpu or layout.driver_vcpu)
    fold_wall = layout.start_seconds + train / (slots * VCPU_EFFICIENCY)
    waves = math.ceil(40 / layout.fold_concurrency)
    rows.append((f"40 fold jobs: train on {TRAIN_BINS / 1e6:.2f} M bins, {sweeps:g} sweeps each",
                 f"{layout.fold_concurrency} at a time ({waves} waves), each {slots} task slots", 40 * train / 3600,
                 waves * fold_wall, 40 * hour(layout.fold_executors) * fold_wall / 3600))
    # finish: setup and refinement fit in the driver
    fixed = rates.setup_core_s + rates.refine_fit_core_s
    wall = layout.start_seconds + fixed / driver
    rows.append(("finish: setup + refinement fit", "driver", fixed / 3600, wall, hour(0) * wall / 3600))
    # imputation on Spark (impute/distributed.py): a task per chunk computes and refines it and writes its bundle of
    # bigWig parts, then tasks of consecutive tracks assemble the bigWigs: every executor core works, the driver waits
    write = WRITE_NS_PER_VALUE * 1e-9 * N_PAIRS * HG19_BINS  # the one-pass writing inside this run's rate
    compute = max(rates.projected_impute_core_s_per_m() * m - write, 0.0) + CHUNK_DECODE_CORE_S * HG19_CHUNKS
    parts = PARTS_NS_PER_VALUE * 1e-9 * N_PAIRS * HG19_BINS
    cores = layout.impute_vcpu * VCPU_EFFICIENCY
    rows.append((f"finish: impute {N_PAIRS:,} pairs x {HG19_CHUNKS:,} chunks (compute + refine)",
                 f"{where}: a task per chunk", compute / 3600, compute / cores,
                 hour(layout.executors_at_impute) * compute / cores / 3600))
    rows.append((f"finish: write {N_PAIRS:,} bigWigs as chunk parts, then assemble ({PARTS_NS_PER_VALUE:.0f} ns a value)",
                 f"{where}: the chunk tasks, then a task per group of tracks", parts / 3600, parts / cores,
                 hour(layout.executors_at_impute) * parts / cores / 3600))
    # scoring on Spark (evaluate/distributed.py): chunk tasks bundle each target's observed and baseline signal,
    # then tasks of targets score them, one target's whole track at a time; the tasks go in waves over the slots
    # one target's whole track is in memory while it is scored (SCORING_TASK_BYTES_PER_BIN): as many scoring tasks
    # run on a machine at once as fit in its memory, at most one per vCPU
    per_target = SCORING_TASK_CORE_S_PER_M * SCORING_EXECUTOR_FACTOR * m
    per_task = group_targets(N_TRACKS, HG19_BINS, layout.impute_vcpu, SCORING_BYTES)
    task_gb = SCORING_TASK_BYTES_PER_BIN * HG19_BINS * per_task / 2**30 + SCORING_TASK_FIXED_GB
    fit = min(layout.worker_vcpu, int((layout.worker_gb - EXECUTOR_JVM_GB) // task_gb))
    slots = layout.impute_vcpu // layout.worker_vcpu * fit
    waves = math.ceil(math.ceil(N_TRACKS / per_task) / max(slots, 1))
    score_wall = waves * per_task * per_target / VCPU_EFFICIENCY
    rows.append((f"finish: score {N_TRACKS:,} experiments ({per_task} a task of {task_gb:.1f} GB: {fit} a "
                 f"{layout.worker_gb:g} GB machine, {slots} at once, {waves} waves)",
                 f"{where}: the chunk tasks, then a task per group of targets", per_target * N_TRACKS / 3600,
                 score_wall, hour(layout.executors_at_impute) * score_wall / 3600))
    rows.append(("finish: report + manifest", "driver", rates.report_core_s / 3600, rates.report_core_s,
                 hour(0) * rates.report_core_s / 3600))
    return rows


def projection_table(rates: Rates, bins: int, measured_default_model: bool) -> None:
    """Print the hg19 projection for EMR Serverless in full, then each engine's total.

    A sweep is a pass over the chunks (linear in bins) plus the driver's C/A update (fixed), so a small store's
    rate per million bins overstates a 1.31 M-bin fold model's; below half of that size the projection takes
    BENCHMARKS' measured sweep at 1.13 M bins instead and prints this run's rate beside it."""
    sweeps = rates.sweeps if measured_default_model else CONVERGED_SWEEPS
    source = ("this run's models" if measured_default_model else
              f"BENCHMARKS' convergence run ({CONVERGED_SWEEPS} sweeps, best {CONVERGED_BEST}, default model): "
              "this run cut --max-iters or --patience")
    converged_rate = CONVERGED_SWEEP_CORE_S / CONVERGED_BINS * 1e6
    own = bins >= TRAIN_BINS / 2
    sweep_rate = rates.sweep_core_s_per_m if own else converged_rate
    rate_source = (f"this run's {rates.sweep_core_s_per_m:.1f} core-s per sweep per M bins" if own else
                   f"BENCHMARKS' {converged_rate:.1f} core-s per sweep per M bins (12.0 s a sweep on 2 cores at "
                   f"{CONVERGED_BINS:,} bins; this run's store is too small to price a {TRAIN_BINS / 1e6:.2f} M-bin "
                   f"sweep: its {rates.sweep_core_s_per_m:.1f} is mostly the driver's fixed C/A update)")
    fold_executors = math.ceil(TRAIN_BINS / CHUNK_BINS / 4)  # one task per trained chunk, 4 per executor
    layouts = [emr_serverless_layout(fold_executors), emr_ec2_layout(), azure_layout(True), azure_layout(False)]
    print(f"hg19: {HG19_BINS:,} bins ({HG19_CHUNKS:,} chunks of {CHUNK_BINS:,}); fold models train on "
          f"{TRAIN_BINS:,} bins (`model.train_bins`); sweeps per model from {source}, at {rate_source}. "
          f"Other core-hours from this run's "
          f"CPU rates (one core of this machine = one vCPU at {VCPU_EFFICIENCY:.0%}); training x "
          f"{SPARK_SWEEP_FACTOR:.2f} (Spark / numpy to convergence, BENCHMARKS); bigWig writing "
          f"{WRITE_NS_PER_VALUE:.0f} ns a value (BENCHMARKS 'bigWig writing') taken out of this run's imputation "
          f"rate to leave the compute, and the tracks written as chunk parts and assembled at {PARTS_NS_PER_VALUE:.0f} ns a "
          f"value (BENCHMARKS 'bigWig parts'); chunk decoding {CHUNK_DECODE_CORE_S} core-s a chunk on the "
          f"executors; ingest on Spark's tasks x {INGEST_EXECUTOR_FACTOR:.2f} (BENCHMARKS 'Ingest on the "
          f"executors'); scoring at a 32 M-bin task's {SCORING_TASK_CORE_S_PER_M:.2f} core-s per experiment per M "
          f"bins x {SCORING_EXECUTOR_FACTOR:.2f} on Spark's tasks (BENCHMARKS 'Scoring on the executors'; this "
          f"run's own rate, {rates.score_core_s_per_track_m:.2f}, comes from sorts of {bins:,} bins, far shallower "
          "than hg19's). "
          + ("" if rates.refine_apply_factor == 1.0 or rates.unrefined_impute_core_s_per_m is None else
             f"The refinement's application (this run's refined less unrefined imputation, "
             f"{rates.impute_core_s_per_m - rates.unrefined_impute_core_s_per_m:,.0f} core-s per M bins) x "
             f"{rates.refine_apply_factor:.2f}: the code projected against the code this run measured "
             f"(BENCHMARKS 'The refinement's application'), so imputation at "
             f"{rates.projected_impute_core_s_per_m():,.0f} core-s per M bins. ")
          + "Job start-up not measured: 1 min (EMR Serverless), 10 min (an EMR cluster), 5 min (a Batch node).\n")
    layout = layouts[0]
    print(f"**{layout.name}**: every job a driver of 4 vCPU / 16 GB (the default worker; the handlers set no "
          f"size), executors of the same size by dynamic allocation; a fold job's {TRAIN_BINS // CHUNK_BINS} "
          f"chunks keep {fold_executors} executors busy; the application's maximum capacity (400 vCPU) runs "
          f"{layout.fold_concurrency} fold jobs at once. ${layout.job_hour(0):.3f} per worker-hour.\n")
    print("| job | runs where | core-hours | wall | cost |")
    print("|---|---|---|---|---|")
    rows = project(rates, layout, sweeps, sweep_rate)
    for name, where, core_hours, wall, cost in rows:
        print(f"| {name} | {where} | {core_hours:.2f} | {hours(wall) if wall else '(inside the above)'} | "
              f"${cost:.2f} |")
    total_wall, total_cost = sum(row[3] for row in rows), sum(row[4] for row in rows)
    print(f"| **the protocol** | prepare, then the folds, then finish | {sum(row[2] for row in rows):.1f} | "
          f"**{hours(total_wall)}** | **${total_cost:.2f}** |")
    finish_wall = sum(row[3] for row in rows[2:])
    print(f"\nAgainst the bound (the whole protocol <= 1 h and <= $10): prepare {hours(rows[0][3])} "
          f"({rows[0][3] / 3600:.2f}x the hour by itself); "
          f"the 40 fold jobs {hours(rows[1][3])} and ${rows[1][4]:.2f}; finish {hours(finish_wall)} "
          f"(imputation {hours(rows[3][3])}, writing {hours(rows[4][3])}, scoring {hours(rows[5][3])}); cost "
          f"${total_cost:.2f} ({total_cost / 10:.1f}x the $10).", end="")
    if rates.unrefined_impute_core_s_per_m is not None:
        tensor = project(replace(rates, impute_core_s_per_m=rates.unrefined_impute_core_s_per_m,
                                 unrefined_impute_core_s_per_m=None), layout, sweeps,
                         sweep_rate)[3]
        print(f" Without the refinement (PREDICTD's tensor imputation, this run's `refine.enabled: false` rate) the "
              f"imputation would take {hours(tensor[3])} ({tensor[2]:.1f} core-hours of compute).", end="")
    print()
    print("\nEvery engine's total (the same jobs and rates; the finish job's phases one after another, its "
          "imputation and writing on the finish job's executors):\n")
    print("| engine | prepare | 40 folds | finish | the protocol | cost |")
    print("|---|---|---|---|---|---|")
    for layout in layouts:
        rows = project(rates, layout, sweeps, sweep_rate)
        prepare, folds, finish_ = rows[0][3], rows[1][3], sum(row[3] for row in rows[2:])
        print(f"| {layout.name} | {hours(prepare)} | {hours(folds)} | {hours(finish_)} | "
              f"**{hours(prepare + folds + finish_)}** | ${sum(row[4] for row in rows):.2f} |")


# ----------------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the compendium and the run")
    parser.add_argument("--rates", type=Path, default=None,
                        help="print only the projection, from the rates.json a run wrote (e.g. with new prices)")
    parser.add_argument("--bins", type=int, default=65_536,
                        help="the compendium's bins (the default: the protocol in about an hour on 2 cores)")
    parser.add_argument("--chunk-bins", type=int, default=16_384,
                        help="the store's chunk (default: 4 chunks of the default bins, so 2 processes have work)")
    parser.add_argument("--folds", type=int, nargs=2, default=(5, 8), metavar=("N_TEST", "N_VALID"))
    parser.add_argument("--parallel", type=int, default=1, help="fold jobs at a time")
    parser.add_argument("--processes", type=int, default=os.cpu_count(),
                        help="engine.processes: ingest, compute and write side by side")
    parser.add_argument("--max-iters", type=int, default=None, help="default: the model's (60)")
    parser.add_argument("--patience", type=int, default=None, help="default: the model's (10)")
    parser.add_argument("--refine-sample", type=int, nargs=2, default=None, metavar=("BINS", "TRACKS"),
                        help="fit the refinement on BINS sampled bins, its blend validated on TRACKS tracks "
                             "(default: the model's; a smaller fit for quick runs)")
    parser.add_argument("--unrefined", action="store_true",
                        help="also run the finish job without the refinement, on the same models")
    args = parser.parse_args()
    if args.rates is not None:
        saved = json.loads(args.rates.read_text())
        projection_table(Rates(**saved["rates"]), saved["bins"], saved["default_model"])
        return
    if args.work is None:
        parser.error("--work is required (or --rates)")
    folds = tuple(args.folds)
    model = {key: value for key, value in (("max_iters", args.max_iters), ("patience", args.patience))
             if value is not None}
    if args.refine_sample is not None:
        model["refine"] = dict(zip(("sample_bins", "inner_tracks"), args.refine_sample))
    load = os.getloadavg()
    started = time.perf_counter()
    data = simulated_bigwigs(args.work / f"roadmap-bigwigs-{args.bins}", args.bins)
    simulated = time.perf_counter() - started
    output = args.work / f"protocol-{args.bins}"
    shutil.rmtree(output, ignore_errors=True)
    config = run_config(data, output, folds, model, args.processes, args.chunk_bins)

    prepare = run_job("prepare", predictd("folds", str(config)))
    started = time.perf_counter()
    with ThreadPoolExecutor(args.parallel) as pool:
        fold_jobs = list(pool.map(lambda ij: train_fold(config, output, *ij),
                                  [(i, j) for i in range(folds[0]) for j in range(folds[1])]))
    fold_wall = time.perf_counter() - started
    refined = finish(config, "finish")
    bytes_written = imputed_bytes(output)
    scored = sum(fold >= 0 for fold in json.loads((output / "folds.json").read_text())["test_fold"])
    unrefined = None
    if args.unrefined:
        other = unrefined_config(data, output, folds, model, args.processes, args.chunk_bins)
        unrefined = finish(other, "finish, unrefined")
        shutil.rmtree(other.parent)

    end_load = os.getloadavg()
    print(f"Roadmap-shaped compendium: {args.bins:,} bins x {N_TRACKS:,} bigWigs (127 cells x 24 assays, planted rank "
          f"{PLANTED_RANK}; simulated in {simulated:.0f} s, reused when present), chunks of {args.chunk_bins:,}; "
          f"{folds[0]} x {folds[1]} folds; model {model or 'defaults'}; engine numpy, processes {args.processes} "
          f"(the cloud runs Spark). {os.cpu_count()} CPUs; load average {load[0]:.1f} before, "
          f"{end_load[0]:.1f} / {end_load[1]:.1f} / {end_load[2]:.1f} (1 / 5 / 15 min) after.\n")
    rates = measured_table(args.bins, args.chunk_bins, folds, args.processes, args.parallel, prepare, fold_jobs,
                           fold_wall, refined, unrefined, bytes_written, scored)
    default_model = args.max_iters is None and args.patience is None
    (output / "rates.json").write_text(json.dumps({"bins": args.bins, "default_model": default_model,
                                                   "rates": asdict(rates)}, indent=1))
    print(f"\n(rates saved: {output / 'rates.json'})\n")
    projection_table(rates, args.bins, default_model)


if __name__ == "__main__":
    main()
