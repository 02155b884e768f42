"""Local builds of the app's code assets, cached by content (no Docker: the machines that synth have none).

- the Lambda code folder: handlers/ and predictd_core/ beside pydantic and PyYAML and their whole dependency
  closure, every package at an exact version (pyproject's pins; the peers at the versions installed beside
  them), installed for the Lambda runtime (manylinux x86_64 wheels for CPython 3.12, whatever Python runs
  the synth);
- the predictd wheel that the EMR-on-EC2 bootstrap action installs;
- the Azure function app's package: ``function_app.py``, ``host.json``, ``requirements.txt`` and handlers/ and
  predictd_core/, the folder ``func azure functionapp publish`` uploads (the remote build installs the
  requirements on the Flex Consumption app, so no pip runs here).

Each build lands in ``.cdk-cache/<kind>-<digest of its inputs>/``: a synth whose inputs are unchanged reuses
it, so tests that synthesize several apps run pip once; a new build replaces the older ones of its kind. A
build is written under a temporary name and renamed, so an interrupted build is never reused.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cdk-cache"

LAMBDA_PYTHON_VERSION = "3.12"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
# What importing predictd_core.config needs (the contract: handlers must not import numpy, zarr or pyspark).
LAMBDA_REQUIREMENTS = ("pydantic", "PyYAML")
# The Lambda runtime as PEP 508 environment markers see it: the closure's conditional requirements are
# decided for it, not for the interpreter running the synth.
LAMBDA_MARKERS = {"python_version": LAMBDA_PYTHON_VERSION, "python_full_version": f"{LAMBDA_PYTHON_VERSION}.0",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython",
                  "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                  "platform_machine": "x86_64", "extra": ""}
_SKIPPED = ("__pycache__", "*.pyc")

# What importing handlers.azure.functions needs: the azure extra's clients and the Functions v2 model, plus
# predictd_core.config's pydantic and PyYAML (adlfs, also in the extra, is the jobs' and not the handlers').
AZURE_FUNCTIONS_REQUIREMENTS = ("azure-functions", "azure-storage-blob", "azure-storage-queue", "azure-data-tables",
                                "azure-batch", "azure-identity", "pydantic", "PyYAML")
# The Functions host indexes function_app.py for a FunctionApp (Python v2 model): the handlers' own app.
FUNCTION_APP_PY = '''"""The Azure Functions entry point of predictd (Python v2 model), written by infra/build.py.

The host indexes this module for a FunctionApp; the functions (on_blob_created, advance_runs) live in
handlers/azure/functions.py beside this file.
"""

from handlers.azure.functions import app  # noqa: F401
'''
# host.json: the runtime's 2.0 schema. The Event Grid trigger is a binding extension (only HTTP and timer are
# built in), taken from extension bundle 4.x as Microsoft's Python v2 templates do. Information-level logs (the
# host's invocation records and the functions' own loggers) go to Application Insights; invocations
# (requests) are never sampled away, so the failed-invocation alert and the counts stay exact.
HOST_JSON = {
    "version": "2.0",
    "logging": {
        "logLevel": {"default": "Information"},
        "applicationInsights": {"samplingSettings": {"isEnabled": True, "excludedTypes": "Request"}},
    },
    "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
}


def pinned_requirements(names: Iterable[str], pyproject: Path = REPO / "pyproject.toml",
                        extras: Iterable[str] = ()) -> list[str]:
    """The ``name==version`` pins of ``names`` in pyproject.toml's dependencies and the optional-dependency
    groups ``extras`` (one place for versions)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = list(extras)
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project.get("optional-dependencies", {}).get(extra, [])
    pins = {re.split(r"[=<>!~ \[;]", spec, maxsplit=1)[0].lower(): spec for spec in specs}
    missing = [name for name in names if name.lower() not in pins]
    if missing:
        where = " or ".join(["project.dependencies", *(f"optional-dependencies.{extra}" for extra in extras)])
        raise ValueError(f"{pyproject}: {where} has no pin for {', '.join(missing)}")
    return [pins[name.lower()] for name in names]


def applies_to_lambda(requirement: Requirement) -> bool:
    """Whether ``requirement`` holds on the Lambda runtime (its marker, if any, under :data:`LAMBDA_MARKERS`;
    requirements of extras never do: no extra is installed)."""
    marker: Marker | None = requirement.marker
    return marker is None or marker.evaluate(dict(LAMBDA_MARKERS))


def lambda_requirements(names: Iterable[str] = LAMBDA_REQUIREMENTS, pyproject: Path = REPO / "pyproject.toml",
                        installed=importlib.metadata.distribution) -> list[str]:
    """Exact ``name==version`` pins of ``names`` and of everything they need on the Lambda runtime.

    ``names`` take pyproject.toml's pins; their dependencies (pydantic's pydantic-core, annotated-types,
    typing-extensions, typing-inspection) the versions installed in the environment running the synth, which
    `make setup` installs from the same pins and in which the handlers are tested. Installing exactly these
    with ``--no-deps`` leaves pip nothing to choose.

    Raises
    ------
    RuntimeError
        When the environment does not hold a pinned version, lacks a dependency, or holds a version that
        does not satisfy a dependent's requirement (the environment is out of date: `make setup`).
    """
    pins: dict[str, str] = {}
    pending = [Requirement(spec) for spec in pinned_requirements(names, pyproject)]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        try:
            distribution = installed(name)
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError(f"the Lambda bundle needs {requirement}, which this environment does not hold "
                               f"(make setup)") from None
        version = distribution.version
        if not requirement.specifier.contains(version, prereleases=True):
            raise RuntimeError(f"the Lambda bundle needs {requirement}; this environment holds {name} {version} "
                               f"(make setup)")
        if name in pins:
            continue
        pins[name] = version
        pending += [dependency for spec in distribution.requires or []
                    if applies_to_lambda(dependency := Requirement(spec))]
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _source_files(folders: Iterable[Path]) -> list[Path]:
    """Every file under ``folders`` that goes into a build (bytecode caches left out), in a stable order."""
    files = []
    for folder in folders:
        files += [path for path in folder.rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"]
    return sorted(files)


def _digest(files: Iterable[Path], extra: Iterable[str]) -> str:
    """A short digest of the files' repo-relative names and bytes plus ``extra`` strings."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    for item in extra:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:16]


def _cached_build(name: str, digest: str, build) -> Path:
    """``CACHE/name-digest``, made by ``build(folder)`` into a temporary folder and renamed when absent."""
    target = CACHE / f"{name}-{digest}"
    if target.is_dir():
        return target
    CACHE.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE))
    try:
        build(staging)
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # a concurrent synth may have finished the same build first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for stale in CACHE.glob(f"{name}-*"):  # builds of older sources are never used again
        if stale != target:
            shutil.rmtree(stale, ignore_errors=True)
    return target


def _pip(*args: str) -> None:
    """Run pip of the interpreter running the synth, failing with pip's own output."""
    result = subprocess.run([sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def lambda_code_dir() -> Path:
    """The Lambda code folder: handlers/, predictd_core/ and the pinned closure of pydantic and PyYAML for
    python3.12 (:func:`lambda_requirements`)."""
    packages = [REPO / "handlers", REPO / "predictd_core"]
    requirements = lambda_requirements()

    def build(folder: Path) -> None:
        # --no-deps: the pins are the whole closure, so pip resolves nothing on its own.
        # --no-compile: bytecode of the synthesizing interpreter would be dead weight for python3.12.
        _pip("install", "--target", str(folder), "--platform", LAMBDA_PLATFORM, "--implementation", "cp",
             "--python-version", LAMBDA_PYTHON_VERSION, "--only-binary=:all:", "--no-compile", "--no-deps",
             *requirements)
        for package in packages:
            shutil.copytree(package, folder / package.name, ignore=shutil.ignore_patterns(*_SKIPPED))

    digest = _digest(_source_files(packages),
                     [*requirements, LAMBDA_PLATFORM, LAMBDA_PYTHON_VERSION, "no-compile", "no-deps"])
    return _cached_build("lambda", digest, build)


def predictd_wheel() -> Path:
    """The predictd wheel (``pip wheel --no-deps .``): the package the EMR-on-EC2 nodes install."""
    inputs = _source_files([REPO / "predictd_core"]) + [REPO / "pyproject.toml", REPO / "README.md"]

    def build(folder: Path) -> None:
        # Build from a copy: an in-tree build leaves build/ and egg-info behind in the work tree.
        source = folder / "source"
        source.mkdir()
        for path in (REPO / "pyproject.toml", REPO / "README.md"):
            shutil.copy2(path, source / path.name)
        shutil.copytree(REPO / "predictd_core", source / "predictd_core", ignore=shutil.ignore_patterns(*_SKIPPED))
        _pip("wheel", "--no-deps", str(source), "-w", str(folder))
        shutil.rmtree(source)

    folder = _cached_build("wheel", _digest(inputs, []), build)
    wheels = sorted(folder.glob("predictd-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"{folder}: expected one predictd wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def azure_functions_dir() -> Path:
    """The Azure function app's package: function_app.py, host.json, requirements.txt, handlers/, predictd_core/.

    Nothing is installed here: ``func azure functionapp publish APP --python`` from this folder uploads it
    and the Flex Consumption app's remote build installs requirements.txt (Linux, the app's Python).
    """
    packages = [REPO / "handlers", REPO / "predictd_core"]
    requirements = pinned_requirements(AZURE_FUNCTIONS_REQUIREMENTS, extras=["azure"])
    host_json = json.dumps(HOST_JSON, indent=2) + "\n"
    requirements_txt = "".join(f"{pin}\n" for pin in requirements)

    def build(folder: Path) -> None:
        (folder / "function_app.py").write_text(FUNCTION_APP_PY)
        (folder / "host.json").write_text(host_json)
        (folder / "requirements.txt").write_text(requirements_txt)
        for package in packages:
            shutil.copytree(package, folder / package.name, ignore=shutil.ignore_patterns(*_SKIPPED))

    digest = _digest(_source_files(packages), [FUNCTION_APP_PY, host_json, requirements_txt])
    return _cached_build("azure-functions", digest, build)


def write_azure_functions(target: Path) -> Path:
    """Copy :func:`azure_functions_dir` to ``target``, replacing what was there (``make synth``:
    ``cdk.out/azure/functions``, the folder to publish from)."""
    source = azure_functions_dir()
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target)
    return target


if __name__ == "__main__":  # python -m infra.build azure-functions DEST
    if len(sys.argv) != 3 or sys.argv[1] != "azure-functions":
        raise SystemExit("usage: python -m infra.build azure-functions DEST")
    print(write_azure_functions(Path(sys.argv[2])))
