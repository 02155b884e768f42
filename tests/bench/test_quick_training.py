"""`make bench-quick`, its training and imputation benchmarks: each runs end to end on small sizes and prints
its table."""

import re

from tests.bench.quick_runs import needs_layout, run_group, table_rows

pytestmark = needs_layout


def test_the_training_and_imputation_benchmarks_run_and_print_numbers(tmp_path):
    sections = run_group("training", tmp_path)
    convergence = table_rows(sections["Training to convergence"])[0]
    assert convergence[0] == "numpy" and 0 < float(convergence[5]) < 1  # a validation MSE
    memory = table_rows(sections["Memory against genome length"])
    assert [row[0] for row in memory] == ["20,000", "40,000"] and all(float(row[5].replace(",", "")) > 0
                                                                      for row in memory)  # the JVM was seen
    assert "Parallel speed-up with 2 processes" in sections["Whole genome"]
    every_missing = [row for row in table_rows(sections["Whole genome"]) if "all 2,034 never-measured" in row[0]]
    assert len(every_missing) == 1 and "2 batches" in every_missing[0][0]
    all_missing_size = float(every_missing[0][2].split(" GB, ")[1].split(" bytes")[0])
    assert all_missing_size > 0.5  # bigWigs of real size were written
    # The 70-track run and the batches write the same signal with the same writer: sizes per value agree.
    some_size = float(re.search(r"bigWig size ([\d.]+) bytes per value", sections["Whole genome"]).group(1))
    assert 0.5 < some_size / all_missing_size < 2
