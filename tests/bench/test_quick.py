"""`make bench-quick`: every Roadmap-scale benchmark runs end to end on small sizes and prints its table."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not (REPO.parent / "shared" / "data" / "roadmap-layout").is_dir(),
                                reason="needs ../shared/data/roadmap-layout")


def _table_rows(section: str) -> list[list[str]]:
    """The body rows of every markdown table in ``section`` (each table's header and rule left out)."""
    lines = section.splitlines()
    headers = {index - 1 for index, line in enumerate(lines) if line.startswith("|---")}
    return [[cell.strip() for cell in line.strip("|").split("|")] for index, line in enumerate(lines)
            if line.startswith("| ") and index not in headers]


def test_bench_quick_runs_every_benchmark_and_prints_numbers(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "quick.py"), "--work", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    sections = dict(re.findall(r"^## (.+?) \(quick\)\n(.*?)(?=^## |\Z)", done.stdout, flags=re.S | re.M))
    assert list(sections) == ["One ALS sweep against its matrix products",
                              "Imputation compute against its matrix products",
                              "NAdam-SGD against ALS to the same validation MSE", "Training to convergence",
                              "Memory against genome length", "Whole genome", "Writing a bigWig of 25 bp bins",
                              "Spark sweep against the numpy engine", "The whole protocol",
                              "The refinement's application", "Imputation on the executors",
                              "Ingest on the executors", "Scoring on the executors", "A scoring task's memory"]
    number = re.compile(r"^\d[\d,.]*( |$)")  # a number, alone or with its unit
    for title, text in sections.items():
        rows = _table_rows(text)
        assert rows, title
        assert all(any(number.match(cell) for cell in row) for row in rows), title
    convergence = _table_rows(sections["Training to convergence"])[0]
    assert convergence[0] == "numpy" and 0 < float(convergence[5]) < 1  # a validation MSE
    memory = _table_rows(sections["Memory against genome length"])
    assert [row[0] for row in memory] == ["20,000", "40,000"] and all(float(row[5].replace(",", "")) > 0
                                                                      for row in memory)  # the JVM was seen
    assert "Parallel speed-up with 2 processes" in sections["Whole genome"]
    every_missing = [row for row in _table_rows(sections["Whole genome"]) if "all 2,034 never-measured" in row[0]]
    assert len(every_missing) == 1 and "2 batches" in every_missing[0][0]
    all_missing_size = float(every_missing[0][2].split(" GB, ")[1].split(" bytes")[0])
    assert all_missing_size > 0.5  # bigWigs of real size were written
    # The 70-track run and the batches write the same signal with the same writer: sizes per value agree.
    some_size = float(re.search(r"bigWig size ([\d.]+) bytes per value", sections["Whole genome"]).group(1))
    assert 0.5 < some_size / all_missing_size < 2
    # The protocol: the cloud's jobs in order (prepare, the 2 x 2 fold jobs, finish split at its progress lines),
    # then the hg19 projection for each engine the handlers can submit to.
    protocol = _table_rows(sections["The whole protocol"])
    jobs = [row[0] for row in protocol]
    assert jobs[0].startswith("prepare: `predictd folds`") and jobs[1].startswith("4 fold jobs")
    assert jobs[2].startswith("finish: `predictd cv`") and "refinement fitted" in jobs[4] and "score the" in jobs[6]
    assert float(protocol[0][2]) > 0 and float(protocol[1][2]) > 0  # CPU seconds of the jobs' process trees
    # the finish job's phases, cut at its progress lines, add up to its CPU seconds measured as a whole (rusage)
    assert abs(sum(float(row[2]) for row in protocol[3:8]) - float(protocol[2][2])) < 0.5
    assert jobs[-4:] == ["EMR Serverless (default)", "EMR on EC2 (-c engine=emr-ec2)", "Azure Batch (spot)",
                         "Azure Batch (on demand)"]
    # the refinement's application to a chunk of the protocol's shape: six refiners, every pair refined
    assert "6 refiners, 3,048 pairs refined" in sections["The refinement's application"]
    [applied] = _table_rows(sections["The refinement's application"])
    assert applied[0] == "this tree" and float(applied[1]) > 0
    # imputation, ingest and scoring on the executors: both ways (ingest and scoring: the same store and metrics,
    # or the scripts stop)
    assert [row[0] for row in _table_rows(sections["Imputation on the executors"])] == ["stream", "bundles"]
    for title, unit in (("Ingest on the executors", "processes"), ("Scoring on the executors", "driver")):
        assert [row[0] for row in _table_rows(sections[title])] == [unit, "executors"], title
        assert "the same" in sections[title] or "identical" in sections[title], title
    # a scoring task at two sizes, and how much its peak grows a bin between them
    assert [row[0] for row in _table_rows(sections["A scoring task's memory"])] == ["2,000,000", "4,000,000"]
    marginal = re.search(r"marginal: ([\d.-]+) bytes a bin", sections["A scoring task's memory"])
    assert 0 < float(marginal.group(1)) < 100  # above a block of the measures, the temporaries no longer grow
