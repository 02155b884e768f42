"""The predictd variants the benchmark can run beside the default, and margins drawn for a variant."""

from bench.accuracy.__main__ import parse_args
from bench.accuracy.margins import ALL_SQUARES
from bench.accuracy.methods import DEFAULT_METHODS, METHODS, make_method
from bench.accuracy.report import margins_table


def test_the_refinement_variants_run_predictd_with_their_regressor_and_only_when_named():
    for name, regressor in (("predictd-gbt", "gbt"), ("predictd-auto", "auto")):
        method = make_method(name)
        assert method.name == name and method.model == {"refine": {"regressor": regressor}}
        method.check()  # predictd accepts the setting
        assert name in METHODS and name not in DEFAULT_METHODS
    assert parse_args(["--out", "x"]).methods == list(DEFAULT_METHODS)


def test_margins_can_be_drawn_for_a_variant_and_the_table_names_it():
    assert parse_args(["--out", "x"]).reference == "predictd"
    assert parse_args(["--out", "x", "--reference", "predictd-gbt"]).reference == "predictd-gbt"
    rows = [{"scope": ALL_SQUARES, "measure": "MSEglobal", "better": "lower", "reference": "predictd-gbt",
             "peer": peer, "reference_mean": 0.3, "peer_mean": 0.2, "difference": 0.1, "low": 0.05, "high": 0.2,
             "resamples": 100, "verdict": "loss"} for peer in ("predictd", "baseline")]
    table = margins_table(rows, ALL_SQUARES)
    assert table.index.name == "predictd-gbt minus" and list(table.index) == ["predictd", "baseline"]
    assert table.loc["predictd", "MSEglobal"] == "+0.1000 [+0.0500, +0.2000] loss"
