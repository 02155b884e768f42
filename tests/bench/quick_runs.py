"""Running one group of `make bench-quick` (bench/quick.py --group) and reading its tables back."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"^\d[\d,.]*( |$)")  # a number, alone or with its unit

needs_layout = pytest.mark.skipif(not (REPO.parent / "shared" / "data" / "roadmap-layout").is_dir(),
                                  reason="needs ../shared/data/roadmap-layout")


def table_rows(section: str) -> list[list[str]]:
    """The body rows of every markdown table in ``section`` (each table's header and rule left out)."""
    lines = section.splitlines()
    headers = {index - 1 for index, line in enumerate(lines) if line.startswith("|---")}
    return [[cell.strip() for cell in line.strip("|").split("|")] for index, line in enumerate(lines)
            if line.startswith("| ") and index not in headers]


def run_group(group: str, work: Path) -> dict[str, str]:
    """Run the group's benchmarks as `make bench-quick` runs them; every section printed, by title, after
    checking that each has a table whose rows all hold a number."""
    sys.path.insert(0, str(REPO / "bench"))
    from quick import GROUPS

    done = subprocess.run([sys.executable, str(REPO / "bench" / "quick.py"), "--work", str(work), "--group", group],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    sections = dict(re.findall(r"^## (.+?) \(quick\)\n(.*?)(?=^## |\Z)", done.stdout, flags=re.S | re.M))
    assert list(sections) == list(GROUPS[group])
    for title, text in sections.items():
        rows = table_rows(text)
        assert rows, title
        assert all(any(NUMBER.match(cell) for cell in row) for row in rows), title
    return sections
