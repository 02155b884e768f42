"""The per-target TSV and the method x measure table, read back and checked against hand-worked means."""

import io

import pandas as pd
import pytest

from bench.accuracy.report import Timing, markdown_table, mean_table, per_target_tsv, write_results


def _rows() -> list[dict]:
    return [
        {"method": "predictd", "cell_type": "E003", "assay": "H3K9me3", "n_bins": 10, "MSEglobal": 0.2, "GWcorr": 0.5},
        {"method": "predictd", "cell_type": "E017", "assay": "H3K4me1", "n_bins": 12, "MSEglobal": 0.4, "GWcorr": 0.7},
        {"method": "avocado", "cell_type": "E003", "assay": "H3K9me3", "n_bins": 10, "MSEglobal": 0.1, "GWcorr": 0.9},
        {"method": "avocado", "cell_type": "E017", "assay": "H3K4me1", "n_bins": 12, "MSEglobal": 0.3, "GWcorr": 0.8},
    ]


TIMINGS = {"predictd": Timing(12.4, 20.6), "avocado": Timing(600.0, 1100.2)}


def test_the_tsv_holds_every_row_in_order():
    frame = pd.read_csv(io.StringIO(per_target_tsv(_rows())), sep="\t")
    assert list(frame.columns) == ["method", "cell_type", "assay", "n_bins", "MSEglobal", "GWcorr"]
    assert frame["method"].tolist() == ["predictd", "predictd", "avocado", "avocado"]
    assert frame["MSEglobal"].tolist() == [0.2, 0.4, 0.1, 0.3]


def test_the_table_is_the_mean_over_targets_with_the_timings():
    table = mean_table(_rows(), TIMINGS)
    assert table.index.tolist() == ["predictd", "avocado"]
    assert table.loc["predictd", "MSEglobal"] == pytest.approx(0.3)
    assert table.loc["avocado", "GWcorr"] == pytest.approx(0.85)
    assert table.loc["avocado", "targets"] == 2
    assert table.loc["avocado", "wall s"] == 600.0 and table.loc["predictd", "CPU s"] == 20.6


def test_the_markdown_table_says_which_way_is_better():
    lines = markdown_table(mean_table(_rows(), TIMINGS)).splitlines()
    assert lines[0] == "| method | targets | MSEglobal ↓ | GWcorr ↑ | wall s | CPU s |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[2] == "| predictd | 2 | 0.3000 | 0.6000 | 12 | 21 |"
    assert lines[3] == "| avocado | 2 | 0.2000 | 0.8500 | 600 | 1100 |"


def test_both_files_are_written_whole(tmp_path):
    rows_path, table_path = write_results(tmp_path / "out", _rows(), TIMINGS, ["a note"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["accuracy.md", "per_target.tsv"]
    assert table_path.read_text().startswith("a note\n\n| method |")
    assert len(pd.read_csv(rows_path, sep="\t")) == 4
