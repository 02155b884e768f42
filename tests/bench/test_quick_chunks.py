"""`make bench-quick`, its benchmarks of a chunk's work on Spark's tasks and in the refinement: each runs end to
end on small sizes and prints its table."""

from tests.bench.quick_runs import needs_layout, run_group, table_rows

pytestmark = needs_layout


def test_the_chunk_benchmarks_run_and_print_numbers(tmp_path):
    sections = run_group("chunks", tmp_path)
    # the refinement's application to a chunk of the protocol's shape: six refiners, every pair refined
    assert "6 refiners, 3,048 pairs refined" in sections["The refinement's application"]
    [applied] = table_rows(sections["The refinement's application"])
    assert applied[0] == "this tree" and float(applied[1]) > 0
    assert [row[0] for row in table_rows(sections["Imputation on the executors"])] == ["stream", "bundles"]
