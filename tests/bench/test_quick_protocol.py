"""`make bench-quick`, the whole protocol and the benchmarks of its run on Spark's tasks: each runs end to end on
small sizes and prints its table."""

import re

from tests.bench.quick_runs import needs_layout, run_group, table_rows

pytestmark = needs_layout


def test_the_protocol_benchmarks_run_and_print_numbers(tmp_path):
    sections = run_group("protocol", tmp_path)
    # The protocol: the cloud's jobs in order (prepare, the 2 x 2 fold jobs, finish split at its progress lines),
    # then the hg19 projection for each engine the handlers can submit to.
    protocol = table_rows(sections["The whole protocol"])
    jobs = [row[0] for row in protocol]
    assert jobs[0].startswith("prepare: `predictd folds`") and jobs[1].startswith("4 fold jobs")
    assert jobs[2].startswith("finish: `predictd cv`") and "refinement fitted" in jobs[4] and "score the" in jobs[6]
    assert float(protocol[0][2]) > 0 and float(protocol[1][2]) > 0  # CPU seconds of the jobs' process trees
    # the finish job's phases, cut at its progress lines, add up to its CPU seconds measured as a whole (rusage)
    assert abs(sum(float(row[2]) for row in protocol[3:8]) - float(protocol[2][2])) < 0.5
    assert jobs[-4:] == ["EMR Serverless (default)", "EMR on EC2 (-c engine=emr-ec2)", "Azure Batch (spot)",
                         "Azure Batch (on demand)"]
    # ingest and scoring on the executors: both ways, the same store and metrics (or the scripts stop)
    for title, unit in (("Ingest on the executors", "processes"), ("Scoring on the executors", "driver")):
        assert [row[0] for row in table_rows(sections[title])] == [unit, "executors"], title
        assert "the same" in sections[title] or "identical" in sections[title], title
    # a scoring task at two sizes, and how much its peak grows a bin between them
    assert [row[0] for row in table_rows(sections["A scoring task's memory"])] == ["2,000,000", "4,000,000"]
    marginal = re.search(r"marginal: ([\d.-]+) bytes a bin", sections["A scoring task's memory"])
    assert 0 < float(marginal.group(1)) < 100  # above a block of the measures, the temporaries no longer grow
