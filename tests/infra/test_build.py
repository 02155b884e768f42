"""The locally built code assets: the Lambda folder for python3.12 and the cache that spares pip runs."""

from __future__ import annotations

import zipfile

import pytest

from infra import build
from infra.build import lambda_code_dir, pinned_requirements, predictd_wheel


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


def test_builds_are_cached_by_content(monkeypatch):
    folder, wheel = lambda_code_dir(), predictd_wheel()
    monkeypatch.setattr(build, "_pip", lambda *args: pytest.fail(f"pip ran again: {args}"))
    assert (lambda_code_dir(), predictd_wheel()) == (folder, wheel)
    assert folder.parent == build.CACHE and wheel.parent.parent == build.CACHE


def test_wheel_is_predictd():
    with zipfile.ZipFile(predictd_wheel()) as wheel:
        names = wheel.namelist()
    assert "predictd_core/cli/main.py" in names
    assert not [name for name in names if name.startswith("handlers/")]


def test_a_missing_pin_is_named(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["pydantic==2.13.4"]\n')
    with pytest.raises(ValueError, match=r"pyproject.toml: project.dependencies has no pin for PyYAML"):
        pinned_requirements(["pydantic", "PyYAML"], pyproject)
