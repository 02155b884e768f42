"""The public API: ``predictd_core``'s few names load lazily, and their docstring examples and the README's
Python session run and print what they show."""

from __future__ import annotations

import ast
import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

import predictd_core

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_package_loads_no_numerics():
    code = ("import sys, predictd_core\n"
            "print(sorted(m for m in ('numpy', 'zarr', 'pyspark', 'pandas', 'pydantic', 'yaml', 'matplotlib') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", predictd_core.__all__)
def test_each_name_resolves_to_the_object_in_its_module(name):
    value = getattr(predictd_core, name)
    assert value.__name__ == name
    assert value.__module__.startswith("predictd_core.")
    assert name in dir(predictd_core)


def test_the_names_for_type_checkers_are_the_names_loaded_at_run_time():
    tree = ast.parse(Path(predictd_core.__file__).read_text())
    checked = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    imported = {alias.name: node.module for node in checked.body for alias in node.names}
    assert imported == predictd_core._HOMES
    assert sorted(predictd_core.__all__) == sorted(imported)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'run'"):
        getattr(predictd_core, "run")


def _run_examples(test: doctest.DocTest) -> None:
    """Run ``test``'s examples as written (no option flags but their own directives); fail with the report."""
    report: list[str] = []
    runner = doctest.DocTestRunner(verbose=False, optionflags=0)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("name", predictd_core.__all__)
def test_the_docstring_example_runs(name):
    tests = doctest.DocTestFinder(recurse=False).find(getattr(predictd_core, name), f"predictd_core.{name}",
                                                       globs={})
    examples = [test for test in tests if test.examples]
    assert len(examples) == 1, f"{name}'s docstring has no example"
    _run_examples(examples[0])


def test_the_readme_python_session_runs(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    session = re.search(r"### From Python\n.*?```pycon\n(.*?)```", readme, re.DOTALL)
    assert session, "README.md has no ### From Python section with a ```pycon block"
    monkeypatch.chdir(tmp_path)  # the session writes ./sim
    _run_examples(doctest.DocTestParser().get_doctest(session.group(1), {}, "README.md", "README.md", 0))
