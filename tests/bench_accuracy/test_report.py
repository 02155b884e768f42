"""The per-target TSV, the margins TSV and the tables of accuracy.md, read back and checked against hand-worked
means."""

import io

import pandas as pd
import pytest

from bench.accuracy.margins import ALL_SQUARES
from bench.accuracy.report import (Timing, accuracy_markdown, margins_table, markdown_table, mean_table,
                                   over_squares_table, per_target_tsv, worst_square_table, write_results)


def _rows() -> list[dict]:
    return [
        {"square": "s0", "method": "predictd", "cell_type": "E003", "assay": "H3K9me3", "n_bins": 10,
         "MSEglobal": 0.2, "GWcorr": 0.5},
        {"square": "s0", "method": "predictd", "cell_type": "E017", "assay": "H3K4me1", "n_bins": 12,
         "MSEglobal": 0.4, "GWcorr": 0.7},
        {"square": "s0", "method": "avocado", "cell_type": "E003", "assay": "H3K9me3", "n_bins": 10,
         "MSEglobal": 0.1, "GWcorr": 0.9},
        {"square": "s0", "method": "avocado", "cell_type": "E017", "assay": "H3K4me1", "n_bins": 12,
         "MSEglobal": 0.3, "GWcorr": 0.8},
        {"square": "s1", "method": "predictd", "cell_type": "E003", "assay": "H3K4me1", "n_bins": 10,
         "MSEglobal": 0.5, "GWcorr": 0.2},
        {"square": "s1", "method": "predictd", "cell_type": "E017", "assay": "H3K9me3", "n_bins": 12,
         "MSEglobal": 0.7, "GWcorr": 0.4},
        {"square": "s1", "method": "avocado", "cell_type": "E003", "assay": "H3K4me1", "n_bins": 10,
         "MSEglobal": 0.1, "GWcorr": 0.6},
        {"square": "s1", "method": "avocado", "cell_type": "E017", "assay": "H3K9me3", "n_bins": 12,
         "MSEglobal": 0.1, "GWcorr": 0.6},
    ]


TIMINGS = {"s0": {"predictd": Timing(12.4, 20.6), "avocado": Timing(600.0, 1100.2)},
           "s1": {"predictd": Timing(10.0, 10.0), "avocado": Timing(500.0, 900.0)}}


def _margins() -> list[dict]:
    rows = []
    for scope, measure, low, high, verdict in (
            ("s0", "MSEglobal", -0.3, -0.05, "win"), ("s0", "GWcorr", -0.2, 0.4, "tie"),
            ("s1", "MSEglobal", 0.1, 0.3, "loss"), ("s1", "GWcorr", -0.4, -0.1, "loss"),
            (ALL_SQUARES, "MSEglobal", -0.2, -0.05, "win"), (ALL_SQUARES, "GWcorr", -0.2, 0.4, "tie")):
        rows.append({"scope": scope, "measure": measure, "better": "lower" if measure == "MSEglobal" else "higher",
                     "reference": "predictd", "peer": "avocado", "reference_mean": 0.3, "peer_mean": 0.2,
                     "difference": 0.1, "low": low, "high": high, "resamples": 100, "verdict": verdict})
    return rows


def test_the_tsv_holds_every_row_in_order():
    frame = pd.read_csv(io.StringIO(per_target_tsv(_rows())), sep="\t")
    assert list(frame.columns) == ["square", "method", "cell_type", "assay", "n_bins", "MSEglobal", "GWcorr"]
    assert frame["method"].tolist() == ["predictd", "predictd", "avocado", "avocado"] * 2
    assert frame["MSEglobal"].tolist() == [0.2, 0.4, 0.1, 0.3, 0.5, 0.7, 0.1, 0.1]


def test_a_squares_table_is_the_mean_over_its_targets_with_the_timings():
    table = mean_table(_rows()[:4], TIMINGS["s0"])
    assert table.index.tolist() == ["predictd", "avocado"]
    assert table.loc["predictd", "MSEglobal"] == pytest.approx(0.3)
    assert table.loc["avocado", "GWcorr"] == pytest.approx(0.85)
    assert table.loc["avocado", "targets"] == 2
    assert table.loc["avocado", "wall s"] == 600.0 and table.loc["predictd", "CPU s"] == 20.6


def test_the_overall_table_is_the_mean_of_the_square_means_with_the_seconds_summed():
    table = over_squares_table(_rows(), TIMINGS)
    assert table.index.tolist() == ["predictd", "avocado"]
    assert table.loc["predictd", "MSEglobal"] == pytest.approx((0.3 + 0.6) / 2)
    assert table.loc["avocado", "GWcorr"] == pytest.approx((0.85 + 0.6) / 2)
    assert table.loc["avocado", "squares"] == 2
    assert table.loc["avocado", "wall s"] == pytest.approx(1100.0) and table.loc["predictd", "CPU s"] == 30.6


def test_the_worst_square_is_the_highest_error_and_the_lowest_of_the_rest():
    worst = worst_square_table(_rows())
    assert worst.loc["predictd", "MSEglobal"] == "0.6000 (s1)"
    assert worst.loc["predictd", "GWcorr"] == "0.3000 (s1)"
    assert worst.loc["avocado", "MSEglobal"] == "0.2000 (s0)"
    assert worst.loc["avocado", "GWcorr"] == "0.6000 (s1)"
    # a constant imputation has no correlation: that square is the worst, and an all-undefined row is said so
    flat = [{**row, "GWcorr": float("nan")} if row["method"] == "avocado" and row["square"] == "s0" else row
            for row in _rows()]
    assert worst_square_table(flat).loc["avocado", "GWcorr"] == "undefined (s0)"
    flat = [{**row, "GWcorr": float("nan")} if row["method"] == "avocado" else row for row in _rows()]
    assert worst_square_table(flat).loc["avocado", "GWcorr"] == "undefined (s0)"
    assert worst_square_table(flat).loc["predictd", "GWcorr"] == "0.3000 (s1)"


def test_the_markdown_table_says_which_way_is_better():
    lines = markdown_table(mean_table(_rows()[:4], TIMINGS["s0"])).splitlines()
    assert lines[0] == "| method | targets | MSEglobal ↓ | GWcorr ↑ | wall s | CPU s |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[2] == "| predictd | 2 | 0.3000 | 0.6000 | 12 | 21 |"
    assert lines[3] == "| avocado | 2 | 0.2000 | 0.8500 | 600 | 1100 |"


def test_a_margin_cell_is_the_difference_its_interval_and_a_win_or_loss():
    table = margins_table(_margins(), "s1")
    assert table.loc["avocado", "MSEglobal"] == "+0.1000 [+0.1000, +0.3000] loss"
    assert margins_table(_margins(), ALL_SQUARES).loc["avocado", "MSEglobal"] == "+0.1000 [-0.2000, -0.0500] win"
    assert margins_table(_margins(), ALL_SQUARES).loc["avocado", "GWcorr"] == "+0.1000 [-0.2000, +0.4000]"


def test_accuracy_md_has_the_overall_worst_margins_and_every_square(tmp_path):
    markdown = accuracy_markdown(_rows(), TIMINGS, ["a note"], {"s0": "s0 (design): A, B", "s1": "s1 (design): C, D"},
                                 _margins(), "how to read")
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == ["## Mean over the 2 square(s)", "## Worst square per measure", "## Margins over all squares",
                        "## s0 (design): A, B", "## s1 (design): C, D"]
    assert markdown.startswith("a note\n") and "how to read" in markdown
    assert "| predictd | 2 | 0.4500 | 0.4500 | 22 | 31 |" in markdown  # the mean over squares
    assert "(win 1, tie 1, loss 0)" in markdown and "Margins (win 0, tie 0, loss 2):" in markdown


def test_every_file_is_written_whole_and_stale_margins_go(tmp_path):
    out = tmp_path / "out"
    written = write_results(out, _rows(), "the table\n", _margins())
    assert sorted(p.name for p in out.iterdir()) == ["accuracy.md", "margins.tsv", "per_target.tsv"]
    assert list(written) == ["per_target.tsv", "margins.tsv", "accuracy.md"]  # the table last
    assert (out / "accuracy.md").read_text() == "the table\n"
    assert len(pd.read_csv(out / "per_target.tsv", sep="\t")) == 8
    margins = pd.read_csv(out / "margins.tsv", sep="\t")
    assert len(margins) == 6 and margins["verdict"].tolist()[:2] == ["win", "tie"]
    write_results(out, _rows(), "no margins this time\n")
    assert sorted(p.name for p in out.iterdir()) == ["accuracy.md", "per_target.tsv"]
