"""``BatchExecutor``: plays the Batch nodes for the tasks the local Batch service recorded.

Each task not run yet whose dependencies completed successfully runs once, in the order the tasks were
added, as Batch would run it in the pool's image: its command line under ``/bin/sh`` with the image's
entry point ``/opt/predictd/entrypoint.py`` replaced by ``containers/emr-serverless/entrypoint.py`` (the
file the image copies there), the task's environment settings, the variables Batch sets on a node
(``AZ_BATCH_*``) and the test's ``extra_env`` (Azurite's connection string, say). Its exit code goes back
into the service (``complete``), so the runner's ``status`` reads it as it would read Batch's.

A multi-instance task runs its real coordination command once per instance, each instance a "node" on
127.0.0.1 with its own Spark pid, log and work folders (``AZ_BATCH_IS_CURRENT_NODE_MASTER`` true for the
first), then its application command, whose spark-submit talks to the standalone master the coordination
command started; afterwards the master and workers are stopped with the same Spark script.

``kill`` plays a node lost under a running task (a spot VM evicted, the OOM killer): asked every
``poll`` seconds about each single-node task while it runs (a :class:`Running`: the task, how long it
has run, its processes), and once it answers True every process of the task is SIGKILLed (the whole
tree, Spark's JVM and its Python workers too) and the task is recorded completed with exit code 137
(128 + SIGKILL), as Batch records a task whose process was killed. :func:`spark_is_computing` is the
deterministic trigger "mid-way": the task's Spark job is running Python tasks (its driver started,
the store opened, nothing written yet).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from handlers.azure.batch import ENTRY_POINT
from tests.azure.batch_service import BatchService

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINT_SOURCE = REPO / "containers" / "emr-serverless" / "entrypoint.py"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
KILLED = 128 + signal.SIGKILL  # the exit code Batch records for a process killed by SIGKILL: 137


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _succeeded(task: dict[str, Any] | None) -> bool:
    return bool(task) and task["state"] == "completed" and task.get("executionInfo", {}).get("result") == "success"


def spark_home() -> Path:
    """pyspark's own folder: the Spark home of a pip-installed Spark (bin/, sbin/, jars/)."""
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class Execution:
    """One task the executor ran: its ids, what ran, and how it ended (``killed``: by ``kill``)."""

    job_id: str
    task_id: str
    command: str
    exit_code: int
    log: str
    spark_logs: list[Path] = field(default_factory=list)
    killed: bool = False


def _children() -> dict[int, list[int]]:
    """Every process's children, by parent pid (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            parent = int(stat[stat.rindex(")") + 2:].split()[1])  # after "pid (comm) state"
            children.setdefault(parent, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Spark's JVM, its Python daemon and workers, whatever their group)."""
    children, tree, index = _children(), [pid], 0
    while index < len(tree):
        tree.extend(children.get(tree[index], []))
        index += 1
    return tree


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass
class Running:
    """A single-node task while its process runs, as a ``kill`` trigger sees it."""

    task: dict[str, Any]
    pid: int
    started: float
    log: Path

    @property
    def elapsed(self) -> float:
        """Seconds since its process started."""
        return time.monotonic() - self.started

    def output(self) -> str:
        """What it printed so far (stdout and stderr)."""
        return self.log.read_text(errors="replace")

    def processes(self) -> list[str]:
        """The command lines of its process and every descendant."""
        return [line for pid in process_tree(self.pid) if (line := command_line(pid))]


def spark_is_computing(running: Running) -> bool:
    """Whether the task's Spark job runs Python tasks now: a PySpark worker daemon runs under it (in a
    predictd job that is the model fit or the imputation, after the driver started and the store opened)."""
    return any("pyspark.daemon" in line or "pyspark.worker" in line for line in running.processes())


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and its descendants, as a lost node loses them: stopped first (no new children
    escape between looking and killing), then killed."""
    stopped: list[int] = []
    for _ in range(3):
        for member in process_tree(pid):
            if member not in stopped:
                try:
                    os.kill(member, signal.SIGSTOP)
                    stopped.append(member)
                except ProcessLookupError:
                    pass
    for member in stopped:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


class BatchExecutor:
    """Runs the tasks of a :class:`BatchService` as Batch nodes would, each once.

    Parameters
    ----------
    service : BatchService
        Where the tasks are recorded and their ends reported.
    work_dir : Path
        Under it each task gets its working folder (``AZ_BATCH_TASK_WORKING_DIR``) and each node its
        Spark folders.
    extra_env : dict of str to str, optional
        Added to every task's environment last (it wins over the task's own settings).
    worker_cores, worker_memory : int, str
        What each simulated node's Spark worker offers (small: the nodes share this machine).
    timeout : float
        Seconds one command may run.
    kill : callable, optional
        ``kill(running) -> bool``, asked every ``poll`` seconds while a single-node task runs; True kills
        the task's processes (exit code 137 recorded). E.g. ``lambda r: r.task["id"] == ID and
        spark_is_computing(r)``, ``"sweep 1/" in r.output()``, or ``r.elapsed > 20`` (the least
        deterministic: how far a job gets in a given time depends on the machine).
    """

    def __init__(self, service: BatchService, work_dir: Path, extra_env: dict[str, str] | None = None,
                 worker_cores: int = 1, worker_memory: str = "1g", timeout: float = 600,
                 kill: Callable[[Running], bool] | None = None, poll: float = 0.05) -> None:
        self.service = service
        self.work_dir = Path(work_dir)
        self.extra_env = dict(extra_env or {})
        self.worker_cores = worker_cores
        self.worker_memory = worker_memory
        self.timeout = timeout
        self.kill = kill
        self.poll = poll
        self.executed: list[Execution] = []

    def run_pending(self) -> int:
        """Run every recorded task that is active, not run yet and whose dependencies all succeeded
        (a task depending on a failed one stays blocked, as in Batch); returns how many ran."""
        ran = 0
        while (task := self._next_runnable()) is not None:
            self.executed.append(self._run(task))
            ran += 1
        return ran

    def _next_runnable(self) -> dict[str, Any] | None:
        done = {(e.job_id, e.task_id) for e in self.executed}
        tasks = self.service.tasks()
        by_key = {(t["jobId"], t["id"]): t for t in tasks}
        for task in tasks:
            if task["state"] != "active" or (task["jobId"], task["id"]) in done:
                continue
            needed = (task.get("dependsOn") or {}).get("taskIds", [])
            if all(_succeeded(by_key.get((task["jobId"], d))) for d in needed):
                return task
        return None

    # --------------------------------------------------------------------------------------- running

    def _run(self, task: dict[str, Any]) -> Execution:
        job_id, task_id = task["jobId"], task["id"]
        self.service.set_state(job_id, task_id, "running")
        folder = self.work_dir / job_id / task_id
        working_dir = folder / "wd"
        working_dir.mkdir(parents=True, exist_ok=True)
        env = self._environment(task, working_dir)
        command = self._local(task["commandLine"])
        multi = task.get("multiInstanceSettings")
        if multi:
            execution = self._run_multi_instance(task, command, env, folder, multi)
        elif self.kill is not None:
            execution = self._run_watched(task, command, env, working_dir)
        else:
            done = self._shell(command, env, working_dir)
            execution = Execution(job_id, task_id, command, done.returncode, done.stdout + done.stderr)
        last_line = (execution.log.strip().splitlines() or [""])[-1][:500]
        # a killed process leaves no last word: Batch records only the exit code and its default message
        self.service.complete(job_id, task_id, execution.exit_code,
                              None if execution.exit_code == 0 or execution.killed else last_line or None)
        return execution

    def _run_watched(self, task: dict[str, Any], command: str, env: dict[str, str], cwd: Path) -> Execution:
        """Run a single-node task's command, asking ``kill`` about it every ``poll`` seconds."""
        log_path = cwd.parent / "output.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            running = Running(task, process.pid, time.monotonic(), log_path)
            killed = timed_out = False
            while process.poll() is None:
                if self.kill(running):
                    kill_tree(process.pid)
                    killed = True
                elif running.elapsed > self.timeout:
                    kill_tree(process.pid)
                    timed_out = True
                else:
                    time.sleep(self.poll)
                    continue
                process.wait()
        output = log_path.read_text(errors="replace")
        if timed_out:
            return Execution(task["jobId"], task["id"], command, 124, f"{output}\ntimed out after {self.timeout} s")
        code = process.returncode
        return Execution(task["jobId"], task["id"], command, KILLED if killed else (128 - code if code < 0 else code),
                         output + ("\nkilled by the executor (SIGKILL)" if killed else ""), killed=killed)

    def _environment(self, task: dict[str, Any], working_dir: Path) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)  # spark-submit of the tested pyspark, as the image's
        env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
               "AZ_BATCH_JOB_ID": task["jobId"], "AZ_BATCH_TASK_ID": task["id"],
               "AZ_BATCH_TASK_WORKING_DIR": str(working_dir), "AZ_BATCH_NODE_ID": "tvmps_local",
               "AZ_BATCH_POOL_ID": self.service.jobs[task["jobId"]]["poolInfo"]["poolId"]}
        env.update({s["name"]: s.get("value") or "" for s in task.get("environmentSettings") or []})
        # The image's python3 is the venv's here; Spark binds loopback (no network on the test machine).
        env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                   SPARK_LOCAL_IP="127.0.0.1", SPARK_HOME=str(spark_home()))
        env.update(self.extra_env)
        return env

    @staticmethod
    def _local(command: str) -> str:
        return command.replace(ENTRY_POINT, str(ENTRY_POINT_SOURCE))

    def _shell(self, command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired as expired:
            return subprocess.CompletedProcess(expired.cmd, 124, str(expired.stdout or ""),
                                               f"{expired.stderr or ''}\ntimed out after {self.timeout} s")

    def _run_multi_instance(self, task: dict[str, Any], command: str, env: dict[str, str], folder: Path,
                            multi: dict[str, Any]) -> Execution:
        instances = int(multi.get("numberOfInstances") or 1)
        coordination = self._local(multi["coordinationCommandLine"])
        # Batch's own port in AZ_BATCH_MASTER_NODE is never used by Spark; SPARK_MASTER_PORT moves the
        # master off 7077 so that concurrent test runs on this machine do not collide.
        master_port, batch_port = free_port(), free_port()
        cluster = {"AZ_BATCH_MASTER_NODE": f"127.0.0.1:{batch_port}",
                   "AZ_BATCH_HOST_LIST": ",".join(["127.0.0.1"] * instances),
                   "SPARK_MASTER_PORT": str(master_port), "SPARK_MASTER_WEBUI_PORT": str(free_port()),
                   "SPARK_WORKER_CORES": str(self.worker_cores), "SPARK_WORKER_MEMORY": self.worker_memory}
        nodes = []
        for index in range(instances):
            node = folder / f"node{index}"
            nodes.append({**env, **cluster, "AZ_BATCH_IS_CURRENT_NODE_MASTER": "true" if index == 0 else "false",
                          "AZ_BATCH_NODE_ID": f"tvmps_local{index}", "SPARK_WORKER_WEBUI_PORT": str(free_port()),
                          "SPARK_PID_DIR": str(node / "pids"), "SPARK_LOG_DIR": str(node / "logs"),
                          "SPARK_WORKER_DIR": str(node / "work"), "SPARK_IDENT_STRING": f"node{index}"})
            (node / "wd").mkdir(parents=True, exist_ok=True)
        log = []
        try:
            for node_env in nodes:
                done = self._shell(coordination, node_env, Path(node_env["SPARK_WORKER_DIR"]).parent / "wd")
                log.append(done.stdout + done.stderr)
                if done.returncode != 0:  # a subtask's coordination failing fails the whole task
                    return Execution(task["jobId"], task["id"], command, done.returncode, "\n".join(log))
            done = self._shell(command, nodes[0], folder / "wd")
            log.append(done.stdout + done.stderr)
            return Execution(task["jobId"], task["id"], command, done.returncode, "\n".join(log),
                             sorted(folder.glob("node*/logs/*.out")))
        finally:
            self._stop_cluster(nodes)

    def _stop_cluster(self, nodes: list[dict[str, str]]) -> None:
        daemon = str(spark_home() / "sbin" / "spark-daemon.sh")
        for index, node_env in reversed(list(enumerate(nodes))):
            for daemon_class in ([WORKER_CLASS, MASTER_CLASS] if index == 0 else [WORKER_CLASS]):
                subprocess.run([daemon, "stop", daemon_class, "1"], env=node_env, capture_output=True, timeout=60)

    def cleanup(self) -> None:
        """Remove the working folders."""
        shutil.rmtree(self.work_dir, ignore_errors=True)
