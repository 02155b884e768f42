"""``python -m bench.accuracy``: the tables it writes, and a clean stop on a method that cannot run."""

import pandas as pd

from bench.accuracy.__main__ import main
from bench.accuracy.latin_square import PILOT_TARGETS
from bench.accuracy.methods import make_method
from bench.accuracy.methods.predictd import PredictdRun


def test_a_run_writes_the_table_and_the_per_target_rows(mini_pilot, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--out", str(out), "--pilot", str(mini_pilot), "--methods", "predictd", "baseline",
                 "--bins", "300"]) == 0
    rows = pd.read_csv(out / "per_target.tsv", sep="\t")
    assert sorted(rows["method"].unique()) == ["baseline", "predictd"]
    assert sorted(rows["cell_type"] + ":" + rows["assay"]) == sorted(2 * list(PILOT_TARGETS))
    assert (rows["n_bins"] == 300).all()
    table = (out / "accuracy.md").read_text()
    assert "300 bins" in table and "| predictd | 5 |" in table and "| baseline | 5 |" in table
    assert table in capsys.readouterr().out


def test_a_method_that_cannot_run_stops_before_any_work(mini_pilot, tmp_path, capsys, monkeypatch):
    import bench.accuracy.__main__ as cli

    unusable = PredictdRun("predictd-2018", {"preset": "predictd-1999"})
    monkeypatch.setattr(cli, "make_method", lambda name, *_: unusable if name == "predictd-2018" else make_method(name))
    out = tmp_path / "out"
    assert main(["--out", str(out), "--pilot", str(mini_pilot), "--methods", "baseline", "predictd-2018",
                 "--work", str(tmp_path / "work")]) == 2
    assert "model.preset" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "work").exists()
