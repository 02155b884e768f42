"""``python -m bench.accuracy``: the tables it writes, the squares it may touch, and a clean stop on a method that
cannot run."""

import pandas as pd
import pytest

from bench.accuracy.__main__ import main, parse_args
from bench.accuracy.latin_square import design_squares, kept_back_squares
from bench.accuracy.margins import ALL_SQUARES
from bench.accuracy.methods import make_method
from bench.accuracy.methods.predictd import PredictdRun

QUICK = ["--bins", "300", "--block-bins", "20", "--resamples", "50"]


def test_a_default_run_scores_the_design_squares_on_one_store_and_writes_tables_and_margins(mini_pilot, tmp_path,
                                                                                           capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    assert main(["--out", str(out), "--pilot", str(mini_pilot), "--methods", "predictd", "baseline",
                 "--work", str(work), *QUICK]) == 0
    rows = pd.read_csv(out / "per_target.tsv", sep="\t")
    design = design_squares()
    assert rows["square"].unique().tolist() == [square.name for square in design]
    for square in design:
        chosen = rows[rows["square"] == square.name]
        assert sorted(chosen["cell_type"] + ":" + chosen["assay"]) == sorted(2 * list(square.targets))
        assert sorted(chosen["method"].unique()) == ["baseline", "predictd"]
    assert (rows["n_bins"] == 300).all()
    assert sorted(p.name for p in work.glob("store-*")) == ["store-300.zarr"]  # ingested once for both squares
    assert sorted(p.parent.name for p in work.glob("squares/*/problem.yaml")) == [s.name for s in design]

    margins = pd.read_csv(out / "margins.tsv", sep="\t")
    assert margins["scope"].unique().tolist() == [*(square.name for square in design), ALL_SQUARES]
    assert (margins["peer"] == "baseline").all() and (margins["resamples"] == 50).all()
    assert set(margins["verdict"]) <= {"win", "tie", "loss"}
    means = rows.groupby(["square", "method"])["MSEglobal"].mean()
    first = margins[(margins["scope"] == design[0].name) & (margins["measure"] == "MSEglobal")].iloc[0]
    assert first["difference"] == pytest.approx(means[(design[0].name, "predictd")] - means[(design[0].name, "baseline")],
                                                abs=1e-6)
    assert first["low"] <= first["high"]

    table = (out / "accuracy.md").read_text()
    assert table.startswith("Squares: cyclic-0 (design), cyclic-1 (design); no kept-back square was scored.")
    assert "300 bins" in table and "| predictd | 2 |" in table and "| predictd | 5 |" in table
    assert "## Margins over all squares" in table and "50 block-bootstrap resamples of the 15 blocks of 20 bins" in table
    assert table in capsys.readouterr().out


def test_kept_back_squares_are_scored_only_when_asked_for_all_together(mini_pilot, tmp_path, capsys):
    assert parse_args(["--out", "x"]).chosen_squares == design_squares()
    assert parse_args(["--out", "x", "--design"]).chosen_squares == design_squares()
    assert parse_args(["--out", "x", "--squares", "cyclic-1"]).chosen_squares == design_squares()[1:]
    assert parse_args(["--out", "x", "--kept-back"]).chosen_squares == kept_back_squares()
    out = tmp_path / "refused"
    for refused in (["--squares", "cyclic-2"], ["--squares", "cyclic-0", "cyclic-4"], ["--kept-back", "--design"],
                    ["--squares", "cyclic-0", "--kept-back"]):
        with pytest.raises(SystemExit) as stopped:
            main(["--out", str(out), "--pilot", str(mini_pilot), "--methods", "baseline", *refused])
        assert stopped.value.code == 2
    assert "cyclic-2 is kept back for the final check" in capsys.readouterr().err
    assert not out.exists()

    out = tmp_path / "final"
    assert main(["--out", str(out), "--pilot", str(mini_pilot), "--methods", "baseline", "--kept-back", *QUICK]) == 0
    rows = pd.read_csv(out / "per_target.tsv", sep="\t")
    assert rows["square"].unique().tolist() == [square.name for square in kept_back_squares()]
    table = (out / "accuracy.md").read_text()
    assert "THE KEPT-BACK SQUARES" in table and "No margins" in table  # no predictd, no margins
    assert not (out / "margins.tsv").exists()


def test_a_method_that_cannot_run_stops_before_any_work(mini_pilot, tmp_path, capsys, monkeypatch):
    import bench.accuracy.__main__ as cli

    unusable = PredictdRun("predictd-2018", {"preset": "predictd-1999"})
    monkeypatch.setattr(cli, "make_method", lambda name, *_: unusable if name == "predictd-2018" else make_method(name))
    out = tmp_path / "out"
    assert main(["--out", str(out), "--pilot", str(mini_pilot), "--methods", "baseline", "predictd-2018",
                 "--work", str(tmp_path / "work")]) == 2
    assert "model.preset" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "work").exists()


def test_with_both_peers_their_mean_is_scored_beside_them_with_its_margin(mini_pilot, tmp_path, monkeypatch):
    """Stand-ins for Avocado and ChromImpute (their real runs need the peers installed: test_avocado.py,
    test_chromimpute.py): the mean of their tracks is scored as a method of its own, timed as both."""
    import numpy as np

    import bench.accuracy.__main__ as cli

    class Ramp:
        def __init__(self, name, value):
            self.name, self.value = name, value

        def check(self):
            pass

        def impute(self, problem, work):
            return {target.name: self.value * np.linspace(0.0, 1.0, problem.n_bins) for target in problem.targets}

    stand_ins = {"avocado": Ramp("avocado", 0.2), "chromimpute": Ramp("chromimpute", 1.0)}
    monkeypatch.setattr(cli, "make_method", lambda name, *_: stand_ins.get(name) or make_method(name))
    out = tmp_path / "out"
    assert main(["--out", str(out), "--pilot", str(mini_pilot), "--methods", "baseline", "avocado", "chromimpute",
                 "--reference", "baseline", "--squares", "cyclic-0", *QUICK]) == 0
    rows = pd.read_csv(out / "per_target.tsv", sep="\t").set_index(["method", "cell_type", "assay"])
    from bench.accuracy.problem import prepare_problem
    problem = prepare_problem(tmp_path / "check", mini_pilot, 300)
    for target in problem.targets:
        observed = problem.observed()[target.name]
        seen = ~np.isnan(observed)
        mean = 0.6 * np.linspace(0.0, 1.0, problem.n_bins)  # the mean of the two ramps
        expected = np.mean((observed[seen] - mean[seen]) ** 2)
        assert rows.loc[("avocado+chromimpute", target.cell_type, target.assay), "MSEglobal"] == pytest.approx(
            expected, rel=1e-5)
    margins = pd.read_csv(out / "margins.tsv", sep="\t")
    assert sorted(margins["peer"].unique()) == ["avocado", "avocado+chromimpute", "chromimpute"]
    assert "| avocado+chromimpute |" in (out / "accuracy.md").read_text()
