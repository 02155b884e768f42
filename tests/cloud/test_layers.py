"""The cloud contract's place in the house: the core imports no cloud SDK; the handlers import no numerics."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLOUD_SDKS = ("boto3", "botocore", "azure", "adlfs", "s3fs", "moto")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_the_core_imports_no_cloud_sdk_and_no_handler_code():
    offenders = {str(path.relative_to(REPO)): sorted(_imports(path) & {*CLOUD_SDKS, "handlers", "infra"})
                 for path in (REPO / "predictd_core").rglob("*.py")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_azure_functions_import_no_numpy_zarr_spark_or_fsspec():
    code = ("import sys, handlers.azure.functions\n"
            "print(sorted(m for m in ('numpy', 'zarr', 'pyspark', 'pandas', 'fsspec', 'adlfs', 'boto3') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
