"""The Azure function app's package (infra/build.py ``azure_functions_dir``): what `func azure functionapp publish`
uploads, and what the Functions host will find in it: the functions the template's Event Grid subscriptions
deliver to, the requirements pinned as pyproject.toml pins them, a host.json with the Event Grid extension."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from infra import build
from infra.azure.config import BLOB_CREATED_FUNCTION, FUNCTION_RUNTIME
from infra.azure.template import build_template
from infra.build import azure_functions_dir, write_azure_functions

REPO = Path(__file__).resolve().parents[2]
RECONCILE_FUNCTION = "advance_runs"
# What a handler must never pull in (the package installs none of them; the jobs' image has them).
HEAVY = ("numpy", "zarr", "pyspark", "pandas", "pyarrow", "fsspec", "adlfs", "matplotlib", "pyBigWig", "boto3")

# Runs with -S (no site: the venv's editable-install finder, which maps handlers and predictd_core to the work
# tree, is never installed) and a sys.path of the package folder, the standard library and the venv's
# site-packages only: the package's own copies of handlers/ and predictd_core/ must be the ones imported.
IMPORT_PROBE = """
import json, sys
sys.path[:] = [PACKAGE, *STDLIB, SITE_PACKAGES]
import function_app, handlers, predictd_core
functions = {}
for function in function_app.app.get_functions():
    functions[function.get_function_name()] = json.loads(function.get_function_json())
print(json.dumps({
    "functions": functions,
    "files": {name: sys.modules[name].__file__ for name in ("function_app", "handlers", "predictd_core")},
    "loaded": sorted({name.split(".")[0] for name in sys.modules}),
}))
"""


@pytest.fixture(scope="module")
def package() -> Path:
    return azure_functions_dir()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """The package as `make synth` writes it for publishing (a copy: importing it must not touch the cache)."""
    return write_azure_functions(tmp_path_factory.mktemp("cdk.out") / "azure" / "functions")


@pytest.fixture(scope="module")
def probe(published) -> dict:
    """What importing the package's function_app.py gives, in a fresh interpreter (-B: no bytecode written)."""
    package = published
    paths = sysconfig.get_paths()
    stdlib = [path for path in sys.path if path.startswith(sys.base_prefix) and "site-packages" not in path]
    code = (f"PACKAGE = {str(package)!r}\nSTDLIB = {stdlib!r}\nSITE_PACKAGES = {paths['purelib']!r}\n"
            + IMPORT_PROBE)
    result = subprocess.run([sys.executable, "-S", "-B", "-c", code], cwd=package, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def subscribed_functions(template: dict) -> set[str]:
    """The function names the template's Event Grid subscriptions deliver to (``.../functions/NAME``)."""
    names = set()
    for body in template["resources"]:
        if body["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions":
            resource_id = body["properties"]["destination"]["properties"]["resourceId"]
            names.add(re.search(r"'/functions/([A-Za-z0-9_]+)'\)\]$", resource_id).group(1))
    return names


def pyproject_pins() -> dict[str, str]:
    """name (lowercase) -> pin, from pyproject.toml's dependencies and its azure extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["azure"]
    return {re.split(r"[=<>!~ \[;]", spec, maxsplit=1)[0].lower(): spec for spec in specs}


def test_the_package_holds_the_entry_point_host_json_requirements_and_the_code(package):
    assert {path.name for path in package.iterdir()} == {"function_app.py", "host.json", "requirements.txt",
                                                         "handlers", "predictd_core"}
    assert (package / "handlers" / "azure" / "functions.py").read_bytes() == \
        (REPO / "handlers" / "azure" / "functions.py").read_bytes()
    assert (package / "predictd_core" / "cloud" / "runs.py").is_file()
    assert not list(package.rglob("*.pyc")) and not list(package.rglob("__pycache__"))


def test_function_app_py_is_one_import_of_the_handlers_app(package):
    source = (package / "function_app.py").read_text()
    code = [line for line in source.split('"""')[-1].splitlines() if line.strip() and not line.startswith("#")]
    assert code == ["from handlers.azure.functions import app  # noqa: F401"]
    assert source.startswith('"""')


def test_function_app_imports_from_the_package_alone(published, probe):
    for name, file in probe["files"].items():
        assert Path(file).resolve().is_relative_to(published.resolve()), f"{name} came from {file}"


def test_the_functions_are_those_the_template_delivers_to_plus_the_reconciler(probe):
    subscribed = subscribed_functions(build_template())
    assert subscribed == {BLOB_CREATED_FUNCTION}
    assert set(probe["functions"]) == subscribed | {RECONCILE_FUNCTION}
    [trigger] = probe["functions"][BLOB_CREATED_FUNCTION]["bindings"]
    assert (trigger["type"], trigger["direction"]) == ("eventGridTrigger", "IN")
    [timer] = probe["functions"][RECONCILE_FUNCTION]["bindings"]
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "0 */1 * * * *"
    assert all(spec["scriptFile"] == "function_app.py" for spec in probe["functions"].values())


def test_the_handlers_import_nothing_heavy(probe):
    """The package installs the Azure clients, pydantic and PyYAML only; the jobs' libraries stay out."""
    assert not set(HEAVY) & set(probe["loaded"])


def test_requirements_are_pyprojects_pins(package):
    lines = (package / "requirements.txt").read_text().splitlines()
    pins = pyproject_pins()
    names = [re.split(r"==", line)[0].lower() for line in lines]
    assert names == [name.lower() for name in build.AZURE_FUNCTIONS_REQUIREMENTS]
    assert lines == [pins[name] for name in names]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*", line) for line in lines)  # exact pins
    # every distribution the handlers import directly is required (azure-core and the rest come with them)
    assert {"azure-functions", "azure-storage-blob", "azure-storage-queue", "azure-data-tables", "azure-batch",
            "azure-identity", "pydantic", "pyyaml"} <= set(names)


def test_host_json_is_version_2_with_the_extension_bundle(package):
    host = json.loads((package / "host.json").read_text())
    assert host["version"] == "2.0"
    bundle = host["extensionBundle"]
    assert bundle["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    # a version range that admits 4.x (the Event Grid trigger of the Python v2 model) and nothing older
    low, high = re.fullmatch(r"\[(\d+)\.\*, (\d+)\.0\.0\)", bundle["version"]).groups()
    assert int(low) >= 4 and int(high) == int(low) + 1
    assert host["logging"]["logLevel"]["default"] in ("Information", "Warning")
    assert "Request" in host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"]


def test_the_package_is_cached_by_content_and_written_for_publishing(package, tmp_path, monkeypatch):
    assert package.parent == build.CACHE and package.name.startswith("azure-functions-")
    with monkeypatch.context() as patch:  # an unchanged package is never staged again
        patch.setattr(build.tempfile, "mkdtemp", lambda *args, **kwargs: pytest.fail("rebuilt an unchanged package"))
        assert azure_functions_dir() == package
    target = tmp_path / "cdk.out" / "azure" / "functions"
    target.mkdir(parents=True)
    (target / "stale.py").write_text("")  # a file of an older package goes
    write_azure_functions(target)
    assert sorted(path.name for path in target.iterdir()) == sorted(path.name for path in package.iterdir())


def test_the_module_entry_point_writes_the_package(tmp_path):
    target = tmp_path / "functions"
    subprocess.run([sys.executable, "-m", "infra.build", "azure-functions", str(target)], cwd=REPO, check=True,
                   capture_output=True)
    assert (target / "function_app.py").is_file() and (target / "host.json").is_file()


def test_a_missing_pin_names_the_extra(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["pydantic==2.13.4"]\n'
                         '[project.optional-dependencies]\nazure = ["azure-batch==15.1.0"]\n')
    assert build.pinned_requirements(["azure-batch", "pydantic"], pyproject, extras=["azure"]) == [
        "azure-batch==15.1.0", "pydantic==2.13.4"]
    with pytest.raises(ValueError, match=r"project.dependencies or optional-dependencies.azure has no pin for "
                                         r"azure-identity"):
        build.pinned_requirements(["azure-identity"], pyproject, extras=["azure"])


def test_the_requirements_alone_import_the_app(published, tmp_path):
    """What the remote build installs is enough: requirements.txt's closure (Linux x86_64 wheels for the app's
    Python, as pip resolves it) and the package, without the venv, import function_app."""
    version = FUNCTION_RUNTIME["version"]
    if f"{sys.version_info.major}.{sys.version_info.minor}" != version:
        pytest.skip(f"the app runs Python {version}: its wheels load only in that interpreter")
    target = tmp_path / "site-packages"
    build._pip("install", "--target", str(target), "--platform", "manylinux_2_28_x86_64", "--platform",
               build.LAMBDA_PLATFORM, "--implementation", "cp", "--python-version", version, "--only-binary=:all:",
               "--no-compile", "-r", str(published / "requirements.txt"))
    stdlib = [path for path in sys.path if path.startswith(sys.base_prefix) and "site-packages" not in path]
    code = (f"import sys\nsys.path[:] = [{str(published)!r}, *{stdlib!r}, {str(target)!r}]\n"
            "import function_app\nprint(sorted(f.get_function_name() for f in function_app.app.get_functions()))")
    result = subprocess.run([sys.executable, "-S", "-B", "-c", code], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(sorted([BLOB_CREATED_FUNCTION, RECONCILE_FUNCTION]))
