"""Metric tables and their summary, against rows worked out by hand."""

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from predictd_core.evaluate.tables import (METRIC_FILES, measure_names, metrics_tsv, summary_rows, summary_tsv,
                                           write_metrics)
from predictd_core.model.measures import MEASURES, lower_is_better, quality_measures

NAN = float("nan")


def _rows() -> list[dict]:
    """Three experiments, two assays; measure keys deliberately out of order."""
    return [
        {"cell_type": "E1", "assay": "H3K4me3", "kind": "test-fold", "n_bins": 100, "MSEprom": 0.5, "GWcorr": 0.8,
         "MSEglobal": 0.2, "baseline_MSEprom": 0.5, "baseline_GWcorr": 0.6, "baseline_MSEglobal": 0.3},
        {"cell_type": "E2", "assay": "H3K4me3", "kind": "test-fold", "n_bins": 120, "MSEprom": NAN, "GWcorr": 0.5,
         "MSEglobal": 0.4, "baseline_MSEprom": 0.4, "baseline_GWcorr": 0.7, "baseline_MSEglobal": 0.1},
        {"cell_type": "E1", "assay": "H3K27me3", "kind": "holdout", "n_bins": 90, "MSEprom": 0.3, "GWcorr": 0.9,
         "MSEglobal": 0.25, "baseline_MSEprom": 0.6, "baseline_GWcorr": 0.2, "baseline_MSEglobal": 0.25},
    ]


@pytest.mark.parametrize("measure, lower", [
    ("MSEglobal", True), ("MSE1obs", True), ("MSEprom", True), ("MSEenh", True),
    ("GWcorr", False), ("GWspcorr", False), ("Match1", False), ("Catch1imp", False), ("AucObs1", False),
])
def test_the_mse_family_is_lower_is_better(measure, lower):
    assert lower_is_better(measure) is lower


def test_measures_follow_measures_order_then_regions():
    assert measure_names(_rows()) == ["MSEglobal", "GWcorr", "MSEprom"]


def test_region_measures_appear_only_when_present():
    observed = np.linspace(0, 3, 200)
    row = {"cell_type": "E1", "assay": "DNase", "kind": "holdout", "n_bins": 200,
           **quality_measures(observed, observed + 0.1),
           **{f"baseline_{k}": v for k, v in quality_measures(observed, observed[::-1]).items()}}
    header = metrics_tsv([row]).decode().splitlines()[0].split("\t")
    assert header == ["cell_type", "assay", "kind", "n_bins", *MEASURES, *(f"baseline_{m}" for m in MEASURES)]


def test_metrics_tsv_lines_and_float_format():
    rows = _rows()
    rows[0]["MSEglobal"] = 1 / 3
    lines = metrics_tsv(rows).decode().splitlines()
    assert lines[0] == ("cell_type\tassay\tkind\tn_bins\tMSEglobal\tGWcorr\tMSEprom\t"
                        "baseline_MSEglobal\tbaseline_GWcorr\tbaseline_MSEprom")
    assert lines[1] == "E1\tH3K4me3\ttest-fold\t100\t0.333333\t0.8\t0.5\t0.3\t0.6\t0.5"
    assert lines[2] == "E2\tH3K4me3\ttest-fold\t120\t0.4\t0.5\tnan\t0.1\t0.7\t0.4"
    assert len(lines) == 4


def test_a_measure_only_some_rows_have_is_nan_in_the_others():
    rows = _rows()
    for key in ("MSEprom", "baseline_MSEprom"):
        del rows[0][key]
    assert "MSEprom" in measure_names(rows)
    assert metrics_tsv(rows).decode().splitlines()[1].split("\t")[6] == "nan"


def _by_key(summary: list[dict]) -> dict[tuple[str, str], dict]:
    return {(row["scope"], row["measure"]): row for row in summary}


def test_summary_means_and_wins_by_hand():
    summary = summary_rows(_rows())
    assert [(row["scope"], row["measure"]) for row in summary] == [
        (scope, measure) for scope in ("all", "H3K4me3", "H3K27me3") for measure in ("MSEglobal", "GWcorr", "MSEprom")]
    found = _by_key(summary)
    expected = {
        # MSE: lower wins. 0.2 < 0.3 win, 0.4 > 0.1 loss, 0.25 = 0.25 tie.
        ("all", "MSEglobal"): (3, 0.85 / 3, 0.65 / 3, 1, 1, 1),
        # Correlation: higher wins. 0.8 > 0.6 win, 0.5 < 0.7 loss, 0.9 > 0.2 win.
        ("all", "GWcorr"): (3, 2.2 / 3, 1.5 / 3, 2, 1, 0),
        # E2's NaN leaves it out of n, both means and the counts: 0.5 = 0.5 tie, 0.3 < 0.6 win.
        ("all", "MSEprom"): (2, 0.4, 0.55, 1, 0, 1),
        ("H3K4me3", "MSEglobal"): (2, 0.3, 0.2, 1, 1, 0),
        ("H3K4me3", "GWcorr"): (2, 0.65, 0.65, 1, 1, 0),
        ("H3K4me3", "MSEprom"): (1, 0.5, 0.5, 0, 0, 1),
        ("H3K27me3", "MSEglobal"): (1, 0.25, 0.25, 0, 0, 1),
        ("H3K27me3", "GWcorr"): (1, 0.9, 0.2, 1, 0, 0),
        ("H3K27me3", "MSEprom"): (1, 0.3, 0.6, 1, 0, 0),
    }
    for key, (n, predictd, baseline, wins, losses, ties) in expected.items():
        row = found[key]
        assert (row["n"], row["wins"], row["losses"], row["ties"]) == (n, wins, losses, ties), key
        assert row["predictd_mean"] == pytest.approx(predictd) and row["baseline_mean"] == pytest.approx(baseline), key


def test_a_measure_with_no_finite_pair_has_nan_means_and_no_counts():
    rows = _rows()[:1]
    rows[0]["baseline_GWcorr"] = NAN
    row = _by_key(summary_rows(rows))[("all", "GWcorr")]
    assert (row["n"], row["wins"], row["losses"], row["ties"]) == (0, 0, 0, 0)
    assert math.isnan(row["predictd_mean"]) and math.isnan(row["baseline_mean"])


def test_summary_tsv_columns_and_values():
    lines = summary_tsv(summary_rows(_rows())).decode().splitlines()
    assert lines[0] == "scope\tmeasure\tn\tpredictd_mean\tbaseline_mean\twins\tlosses\tties"
    assert lines[1] == "all\tMSEglobal\t3\t0.283333\t0.216667\t1\t1\t1"
    assert len(lines) == 1 + 9


def test_write_metrics_parquet_matches_the_tsv(tmp_path):
    rows = _rows()
    paths = write_metrics(tmp_path / "out", rows)
    assert paths == [tmp_path / "out" / name for name in METRIC_FILES]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(METRIC_FILES)  # no temporary leftovers

    table = pq.read_table(paths[1])
    tsv = pd.read_csv(paths[0], sep="\t")
    assert table.column_names == list(tsv.columns)
    assert table.schema.field("cell_type").type == pa.string() and table.schema.field("kind").type == pa.string()
    assert table.schema.field("n_bins").type == pa.int64()
    assert all(table.schema.field(name).type == pa.float64() for name in table.column_names[4:])
    assert math.isnan(table.column("MSEprom").to_pylist()[1])  # NaN, as in the TSV, not a null
    assert table.column("GWcorr").to_pylist() == [0.8, 0.5, 0.9]  # exact, not rounded like the TSV

    parquet = pd.read_parquet(paths[1])
    pd.testing.assert_frame_equal(parquet, tsv, check_exact=False, rtol=1e-5)
    assert summary_tsv(summary_rows(rows)) == paths[2].read_bytes()


@pytest.mark.parametrize("function", [measure_names, metrics_tsv, summary_rows])
def test_no_rows_is_a_clear_error(function):
    with pytest.raises(ValueError, match="no scored experiments"):
        function([])


def test_write_metrics_with_no_rows_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="no scored experiments"):
        write_metrics(tmp_path / "out", [])
    assert not (tmp_path / "out").exists()
