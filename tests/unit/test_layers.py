"""predictd_core's packages are layers along the data path: a module imports its own package and the ones
below it, never one above, and no modules import each other in a circle.

Every import counts: absolute and relative, at the top of a module or inside a function (a deferred import
still runs back up the path when it runs); only ``if TYPE_CHECKING:`` blocks, which never run, are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import predictd_core

# From the bottom: each package (or top-level module) may import those before it, never those after.
LAYERS = ("errors", "progress", "io", "model", "tracks", "config", "store", "engine", "solvers", "train", "impute",
          "crossval", "evaluate", "publish", "report", "simulate", "pipeline", "cloud", "cli")
PACKAGE = "predictd_core"  # its __init__ (the public names) is above every layer
ROOT = Path(predictd_core.__file__).parent


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _import_nodes(node: ast.AST):
    """The Import and ImportFrom nodes under ``node``, skipping the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from _import_nodes(child)


def imported_modules(module: str, source: str, is_package: bool, known: set[str]) -> list[tuple[str, int]]:
    """The predictd_core modules ``module`` imports, with the line of each import.

    ``from X import name`` imports ``X.name`` when that is a module (a package's submodule), else ``X``.
    """
    found = []
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
            continue
        if node.level:  # relative: from the module's own package, one level up per extra dot
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module
        for alias in node.names:
            child = f"{target}.{alias.name}"
            found.append((child if child in known else target, node.lineno))
    return [(name, line) for name, line in found if name == PACKAGE or name.startswith(PACKAGE + ".")]


def layer(module: str) -> int:
    """Position of ``module``'s package in :data:`LAYERS`; the package's own ``__init__`` is above them all."""
    if module == PACKAGE:
        return len(LAYERS)
    return LAYERS.index(module.split(".")[1])


def upward_imports(module: str, imports: list[tuple[str, int]]) -> list[str]:
    """The imports of ``module`` that reach a layer above its own."""
    return [f"{module} ({LAYERS[layer(module)] if module != PACKAGE else PACKAGE}) imports {name} at line {line}"
            for name, line in imports if layer(name) > layer(module)]


def import_graph() -> dict[str, list[tuple[str, int]]]:
    modules = module_names()
    known = set(modules)
    return {name: imported_modules(name, path.read_text(), path.name == "__init__.py", known)
            for name, path in modules.items()}


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, and modules importing themselves (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_and_top_level_module_has_a_layer():
    tops = {name.split(".")[1] for name in module_names() if name != PACKAGE}
    assert tops == set(LAYERS), f"undeclared: {sorted(tops - set(LAYERS))}, gone: {sorted(set(LAYERS) - tops)}"


def test_no_module_imports_a_layer_above_its_own():
    violations = [line for module, imports in import_graph().items() for line in upward_imports(module, imports)]
    assert not violations, "\n".join(violations)


def test_no_modules_import_each_other_in_a_circle():
    graph = {module: [name for name, _ in imports] for module, imports in import_graph().items()}
    assert not cycles(graph)


@pytest.mark.parametrize("source", [
    "from predictd_core.solvers import als",
    "import predictd_core.solvers.als_fit",
    "def fit():\n    from predictd_core.train.estimator import Predictd\n",
    "from ..solvers import als",
    "from predictd_core import run_cv",
])
def test_an_import_from_above_is_caught_however_it_is_written(source):
    known = set(module_names())
    imports = imported_modules("predictd_core.model.factors", source, False, known)
    assert upward_imports("predictd_core.model.factors", imports)


def test_typing_only_imports_and_imports_from_below_pass():
    known = set(module_names())
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from predictd_core.engine.base import Engine\n"
              "from predictd_core.io import join_location\nfrom . import settings\nimport numpy\n")
    imports = imported_modules("predictd_core.model.factors", source, False, known)
    assert [name for name, _ in imports] == ["predictd_core.io", "predictd_core.model.settings"]
    assert not upward_imports("predictd_core.model.factors", imports)


def test_a_circle_is_found():
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert cycles({"a": ["a"]}) == [["a"]]
    assert cycles({"a": ["b"], "b": []}) == []
