"""What the Roadmap-scale benchmarks share: a simulated compendium, a config for it, a measured job.

A job is a ``predictd`` command in its own process; its peak memory is sampled from the process tree
(psutil, every 0.1 s) and split into Python (the driver, Spark's Python workers, bigWig writers: the
largest one, and all of them summed) and the JVM (Spark's ``java`` process).
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parent.parent
LAYOUT = REPO.parent / "shared" / "data" / "roadmap-layout"
ROADMAP_PILOT_BINS = 1_126_469  # PREDICTD's Roadmap training genome: ~1% of hg19 at 25 bp
HG19_BINS = 124_000_000
PLANTED_RANK = 10


def timed(fn, *args) -> float:
    """Seconds of one call of ``fn(*args)`` in this process (its result dropped)."""
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def compendium(folder: Path, bins: int, chunk_bins: int | None = None, signal_format: str = "store") -> Path:
    """``folder`` holding a Roadmap-shaped simulated compendium of ``bins`` bins, as a store (simulated once,
    then reused) or as bigWigs."""
    if signal_format != "store" or not (folder / "store.zarr").is_dir():
        chunking = [] if chunk_bins is None else ["--chunk-bins", str(chunk_bins)]
        subprocess.run([sys.executable, "-m", "predictd_core.cli.main", "simulate", str(folder), "--layout",
                        str(LAYOUT), "--bins", str(bins), "--rank", str(PLANTED_RANK), "--format", signal_format,
                        *chunking], check=True, capture_output=True)
    return folder


def write_config(data: Path, output: Path, engine: dict, model: dict | None = None, chunk_bins: int | None = None,
                 store: Path | None = None, cv: dict | None = None) -> Path:
    """``output/config.yaml``: a run config over compendium ``data`` (its store, or ``store``; no holdout) writing
    to ``output``, with ``cv`` settings when given."""
    config = {"tracks": str(data / "tracks.tsv"), "chrom_sizes": str(data / "chrom.sizes"),
              "store": str(store or data / "store.zarr"), "model": {"solver": "als", **(model or {})},
              "engine": engine, "output": str(output)}
    if chunk_bins:
        config["chunk_bins"] = chunk_bins
    if cv:
        config["cv"] = cv
    output.mkdir(parents=True, exist_ok=True)
    path = output / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Measured:
    """Wall seconds and peak resident memory (MB) of one job."""

    seconds: float
    python_peak_mb: float  # the largest Python process
    python_total_mb: float  # all Python processes at once, at their joint peak
    jvm_peak_mb: float


@dataclass
class Trained:
    """A measured ``predictd train``: its process, and its model's log (one row per sweep or round)."""

    measured: Measured
    history: list[dict]
    best_iteration: int

    @property
    def seconds_per_sweep(self) -> float:
        """The median of the model's own per-sweep seconds."""
        return statistics.median(row["seconds"] for row in self.history)

    @property
    def best_valid_mse(self) -> float:
        return self.history[self.best_iteration - 1]["valid_mse"]


def train(data: Path, output: Path, engine: dict, model: dict | None = None) -> Trained:
    """``predictd train`` of compendium ``data`` into ``output`` in a fresh process, measured."""
    measured = run_measured(["train", str(write_config(data, output, engine, model))])
    description = json.loads((output / "model" / "model.json").read_text())
    return Trained(measured, description["history"], description["best_iteration"])


def process_tree(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and its descendants (just ``root`` once it has exited)."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def run_measured(args: list[str]) -> Measured:
    """Run ``predictd ARGS`` in a fresh process, sampling its process tree's memory until it exits."""
    started = time.perf_counter()
    job = psutil.Popen([sys.executable, "-m", "predictd_core.cli.main", *args],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    python_peak = python_total = jvm_peak = 0
    while job.poll() is None:
        python, jvm = [], []
        for process in [job, *job.children(recursive=True)]:
            try:
                rss = process.memory_info().rss
                (jvm if process.name() == "java" else python).append(rss)
            except psutil.NoSuchProcess:
                continue
        python_peak = max([python_peak, *python])
        python_total = max(python_total, sum(python))
        jvm_peak = max([jvm_peak, *jvm])
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if job.returncode:
        raise RuntimeError(f"predictd {' '.join(args)} exited {job.returncode}: {job.stderr.read().decode()[-2000:]}")
    return Measured(seconds, python_peak / 2**20, python_total / 2**20, jvm_peak / 2**20)


def process_kind(process: psutil.Process, root_pid: int) -> str:
    """``driver`` (the child itself), ``jvm``, ``spark-python`` (a Python process under the JVM) or
    ``writer`` (a driver-side Python process: ParallelTrackWriter's)."""
    if process.pid == root_pid:
        return "driver"
    if process.name() == "java":
        return "jvm"
    parent = process
    while (parent := parent.parent()) is not None and parent.pid != root_pid:
        if parent.name() == "java":
            return "spark-python"
    return "writer"


def measure_between_marks(argv: list[str]) -> dict:
    """Run ``argv`` (a child that prints ``START`` when its measured work begins and ``END {json}`` when it is
    done) and sample its process tree every 0.1 s between the two: wall seconds, core-seconds (CPU time of every
    process of the tree: the driver, the JVM, Spark's Python workers, writer processes) and the peak memory (MB)
    of each kind of process (:func:`process_kind`), with the END line's fields."""
    child = psutil.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    cpu: dict[tuple[int, float], list[float]] = {}  # (pid, created) -> [at START, last seen]
    peaks = {"driver": 0, "writer": 0, "jvm": 0, "spark-python": 0}
    started = ended = None
    result: dict = {}
    try:
        while True:
            readable, _, _ = select.select([child.stdout], [], [], 0.1)
            line = child.stdout.readline() if readable else ""
            if line.startswith("START"):
                started = time.perf_counter()
            sums = dict.fromkeys(peaks, 0)
            for process in process_tree(child):
                try:
                    with process.oneshot():
                        times, rss = process.cpu_times(), process.memory_info().rss
                        key, kind = (process.pid, process.create_time()), process_kind(process, child.pid)
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
                seen = times.user + times.system
                if started is None or line.startswith("START"):
                    cpu[key] = [seen, seen]
                else:
                    cpu.setdefault(key, [0.0, seen])[1] = seen
                sums[kind] += rss
            if started is not None and ended is None:
                for kind in peaks:
                    peaks[kind] = max(peaks[kind], sums[kind])
            if line.startswith("END"):
                ended, result = time.perf_counter(), json.loads(line.split(" ", 1)[1])
                break
            if child.poll() is not None and not readable:
                raise RuntimeError(f"{' '.join(argv[1:3])} exited {child.returncode}: {child.stderr.read()[-3000:]}")
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    return {"seconds": ended - started, "core_seconds": sum(last - first for first, last in cpu.values()),
            **{f"{kind}_mb": peak / 2**20 for kind, peak in peaks.items()}, **result}


def alternate_ways(ways: tuple[str, ...], repeats: int, measure_way: Callable[[str], dict]) -> dict[str, list[dict]]:
    """Each of ``ways`` measured ``repeats`` times by ``measure_way(way)``, interleaved (every other round in
    reverse order, so neither way always runs first); each run's figures are printed as it ends."""
    runs: dict[str, list[dict]] = {way: [] for way in ways}
    for repeat in range(repeats):
        for way in ways if repeat % 2 == 0 else ways[::-1]:
            runs[way].append(measure_way(way))
            print(f"  {way} run {repeat + 1}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                                           for k, v in runs[way][-1].items()), flush=True)
    return runs


def medians_table(runs: dict[str, list[dict]], columns: dict[str, str], unit: tuple[str, Callable[[list[float]], str]]
                  ) -> dict[str, list[float]]:
    """Print a markdown table of each way's medians of ``columns`` (figure -> header; the first two: wall and CPU
    seconds), with a last column ``unit`` (header, text from the way's medians in the columns' order), then the
    last way's ratios to the first and the load average; returns the medians by way."""
    keys = list(columns)
    print("| way | " + " | ".join(columns.values()) + f" | {unit[0]} |")
    print("|---" * (len(keys) + 2) + "|")
    medians = {way: [statistics.median(run[key] for run in measured) for key in keys] for way, measured in runs.items()}
    for way, values in medians.items():
        print(f"| {way} | " + " | ".join(f"{value:,.1f}" for value in values) + f" | {unit[1](values)} |")
    (first, base), (last, other) = list(medians.items())[0], list(medians.items())[-1]
    print(f"\n{last} / {first}: {other[1] / base[1]:.2f}x the core-seconds, {other[0] / base[0]:.2f}x the wall time")
    print(f"load average at the end: {os.getloadavg()}")
    return medians


def require_same(runs: dict[str, list[dict]], key: str, what: str) -> dict:
    """The first run's figures, once every run of every way gave the same ``key`` (a digest of ``what`` they
    wrote); else stop the benchmark: ways that disagree are not two costs of one result."""
    found = {run[key] for measured in runs.values() for run in measured}
    if len(found) != 1:
        raise SystemExit(f"the ways wrote different {what}: {sorted(found)}")
    return next(iter(runs.values()))[0]
