"""The locally built code assets: the Lambda folder for python3.12 and the cache that spares pip runs."""

from __future__ import annotations

import importlib.metadata
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra import build
from infra.build import applies_to_lambda, lambda_code_dir, lambda_requirements, pinned_requirements, predictd_wheel


def test_lambda_folder_holds_handlers_core_and_cp312_linux_wheels():
    folder = lambda_code_dir()
    assert (folder / "handlers" / "on_config.py").is_file()
    assert (folder / "predictd_core" / "config.py").is_file()
    assert not list(folder.rglob("*.pyc"))  # no bytecode of the synthesizing interpreter
    # pydantic-core's compiled module is the Lambda runtime's, not the synthesizing interpreter's.
    [core] = list((folder / "pydantic_core").glob("_pydantic_core.*.so"))
    assert core.name == "_pydantic_core.cpython-312-x86_64-linux-gnu.so"
    versions = dict(path.name.removesuffix(".dist-info").lower().rsplit("-", 1) for path in folder.glob("*.dist-info"))
    for pin in pinned_requirements(["pydantic", "PyYAML"]):
        name, version = pin.split("==")
        assert versions[name.lower()] == version
    # The handlers import predictd_core.config only: nothing heavy rides along.
    assert not {"numpy", "pyspark", "zarr"} & {path.name for path in folder.iterdir()}


def _bundled(folder) -> dict[str, importlib.metadata.Distribution]:
    """The distributions installed in a built folder, by canonical name."""
    return {canonicalize_name(dist.metadata["Name"]): dist
            for dist in (importlib.metadata.PathDistribution(path) for path in folder.glob("*.dist-info"))}


def test_every_package_in_the_lambda_folder_is_pinned():
    """The folder holds exactly the pinned closure: no package pip chose, none at a version not pinned."""
    bundled = _bundled(lambda_code_dir())
    pins = dict(pin.split("==") for pin in lambda_requirements())
    assert {name: dist.version for name, dist in bundled.items()} == pins
    # pydantic's peers are pinned too, not only the two packages pyproject names.
    assert {"pydantic", "pydantic-core", "pyyaml", "annotated-types", "typing-extensions",
            "typing-inspection"} <= set(pins)
    # Installed with --no-deps, the closure is complete: every requirement that holds on python3.12 Linux
    # is met inside the folder.
    for name, dist in bundled.items():
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if applies_to_lambda(requirement):
                needed = canonicalize_name(requirement.name)
                assert needed in bundled, f"{name} needs {requirement}"
                assert requirement.specifier.contains(bundled[needed].version, prereleases=True), (name, spec)


def test_lambda_pins_follow_pyproject_and_refuse_a_stale_environment(tmp_path):
    pins = lambda_requirements()
    for pin in pinned_requirements(["pydantic", "PyYAML"]):  # pyproject's versions, not the environment's
        name, version = pin.split("==")
        assert f"{canonicalize_name(name)}=={version}" in pins
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["pydantic==1.0.0", "PyYAML==6.0.3"]\n')
    with pytest.raises(RuntimeError, match=r"needs pydantic==1\.0\.0; this environment holds pydantic 2\."):
        lambda_requirements(pyproject=pyproject)


def test_requirements_of_extras_and_other_platforms_stay_out():
    assert not applies_to_lambda(Requirement("email-validator>=2.0.0; extra == 'email'"))
    assert not applies_to_lambda(Requirement("tzdata; platform_system == 'Windows'"))
    assert not applies_to_lambda(Requirement("exceptiongroup; python_version < '3.11'"))
    assert applies_to_lambda(Requirement("typing-extensions>=4.14.1"))
    assert applies_to_lambda(Requirement("tomli; python_version < '3.13'"))  # decided for 3.12, not the synth's


def test_builds_are_cached_by_content(monkeypatch):
    folder, wheel = lambda_code_dir(), predictd_wheel()
    monkeypatch.setattr(build, "_pip", lambda *args: pytest.fail(f"pip ran again: {args}"))
    assert (lambda_code_dir(), predictd_wheel()) == (folder, wheel)
    assert folder.parent == build.CACHE and wheel.parent.parent == build.CACHE


def test_wheel_is_predictd():
    with zipfile.ZipFile(predictd_wheel()) as wheel:
        names = wheel.namelist()
    assert "predictd_core/cli/main.py" in names
    assert "predictd_core/cloud/__init__.py" in names and "predictd_core/cloud/runs.py" in names  # a package
    assert not [name for name in names if name.startswith("handlers/")]


def test_a_missing_pin_is_named(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["pydantic==2.13.4"]\n')
    with pytest.raises(ValueError, match=r"pyproject.toml: project.dependencies has no pin for PyYAML"):
        pinned_requirements(["pydantic", "PyYAML"], pyproject)
