"""The happy path of the CLI: ``predictd run`` on a tiny compendium (numpy engine), and the help texts."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pyBigWig
import yaml
from typer.testing import CliRunner

from predictd_core.cli.main import app
from tests.conftest import write_config

CELLS = ("C1", "C2", "C3")
ASSAYS = ("M1", "M2")
CONTIGS = {"chrA": 1000, "chrB": 510}


def test_run_writes_imputed_tracks_metrics_and_manifest(tiny_compendium):
    folder = tiny_compendium[0]
    config = write_config(folder, holdout=["C2:M1"])
    output = folder / "out"

    result = CliRunner().invoke(app, ["run", str(config)])

    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)

    # one bigWig per (cell, assay) pair, each with the input's contigs and lengths
    imputed = output / "imputed"
    expected = {f"{cell}.{assay}.bigWig" for cell in CELLS for assay in ASSAYS}
    assert {p.name for p in imputed.iterdir()} == expected
    for name in sorted(expected):
        track = pyBigWig.open(str(imputed / name))
        try:
            assert track.isBigWig(), name
            assert track.chroms() == CONTIGS, name
            assert track.intervals("chrA"), name
        finally:
            track.close()

    # one metrics row, for the holdout target, with predictd's and the baseline's MSEglobal
    with (output / "metrics.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 1
    row = rows[0]
    assert (row["cell_type"], row["assay"]) == ("C2", "M1")
    for column in ("MSEglobal", "baseline_MSEglobal"):
        assert column in row
        assert math.isfinite(float(row[column])), (column, row[column])

    # the manifest lists every output, and each listed output exists
    manifest = json.loads((output / "manifest.json").read_text())
    assert set(manifest["outputs"]) == ({f"imputed/{name}" for name in expected}
                                        | {"metrics.tsv", "metrics.parquet", "summary.tsv", "report.html",
                                           "refinement.json"})
    for relative in manifest["outputs"]:
        assert (output / relative).is_file(), relative
    assert manifest["config"]["holdout"] == ["C2:M1"]
    assert [(m["cell_type"], m["assay"]) for m in manifest["metrics"]] == [("C2", "M1")]

    # stdout says where the outputs are
    assert str(imputed) in result.stdout
    assert str(output / "metrics.tsv") in result.stdout
    assert str(output / "manifest.json") in result.stdout
    assert "C2:M1" in result.stdout  # the metrics table

    # the refinement (on by default): one refiner, fitted on every experiment but the holdout target
    (refiner,) = _strict_json((output / "refinement.json").read_text())["refiners"]
    names = {f"{cell}:{assay}" for cell in CELLS for assay in ASSAYS}
    assert sorted(refiner["inputs"]) == sorted(names - {"C2:M1"})
    assert 0.0 <= refiner["blend"] <= 1.0 and 0.0 <= refiner["tensor"] <= 1.0
    # blend and tensor share chosen among the validated rows by leaving input tracks out (here M2's: M1 has
    # only two), the best by the criterion
    assert refiner["validated"] and set(refiner["validated"]) <= set(refiner["inputs"])
    *rows, baseline = refiner["validation"]
    assert baseline["blend"] is None and all(0.0 <= row["blend"] <= 1.0 for row in rows)
    best = max(rows, key=lambda row: row["min_gain"] if row["min_gain"] is not None else -math.inf)
    assert (refiner["blend"], refiner["tensor"]) == (best["blend"], best["tensor"])
    assert refiner["refined"] and set(refiner["refined"]) <= names
    report = (output / "report.html").read_text()
    assert '<section id="refinement">' in report and report.count('<tr class="chosen">') == 1
    assert (f"Refinement: blend {refiner['blend']:g}, tensor share {refiner['tensor']:g} chosen by leaving out "
            f"{len(refiner['validated'])} tracks" in report)

    # nothing temporary left beside the outputs or the config
    leftovers = [p for p in folder.rglob("*") if any(m in p.name for m in (".partial", ".tmp", ".cache"))]
    assert not leftovers, leftovers

    # run again without the refinement: the earlier run's refinement.json is neither listed nor reported
    config = write_config(folder, holdout=["C2:M1"], model={"solver": "als", "rank": 2, "max_iters": 5,
                                                            "refine": {"enabled": False}})
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "refinement.json" not in json.loads((output / "manifest.json").read_text())["outputs"]
    report = (output / "report.html").read_text()
    assert "The run did not refine" in report and '<tr class="chosen">' not in report


def _strict_json(text: str):
    """``json.loads`` that rejects NaN and Infinity, which other JSON readers refuse."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_help_shows_usage():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout
    for command in ("ingest", "folds", "train", "impute", "evaluate", "run", "cv", "extend", "demo", "simulate"):
        assert command in result.stdout


def test_run_help_shows_usage():
    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "run" in result.stdout
    assert "config" in result.stdout.lower()


def test_installed_script_help():
    script = Path(sys.executable).with_name("predictd")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "predictd_core.cli.main"]
    done = subprocess.run([*command, "run", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout and "run" in done.stdout


def test_demo_without_the_pilot_runs_on_a_simulated_compendium(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from predictd_core.cli import main as cli

    monkeypatch.setattr(cli, "PILOT_DATA", tmp_path / "absent")
    result = CliRunner().invoke(cli.app, ["demo", "--workdir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "absent" in result.output and "generated compendium" in result.output
    output = tmp_path / "demo" / "simulated" / "output"
    assert yaml.safe_load((output.parent / "run.yaml").read_text())["engine"] == {"kind": "numpy"}  # one chunk
    metrics = (output / "metrics.tsv").read_text().splitlines()
    kinds = [line.split("\t")[2] for line in metrics[1:]]
    assert kinds.count("holdout") == 2 and kinds.count("test-fold") == 28  # 30 tracks: 2 held out, 28 in folds
    assert len(list((output / "models").iterdir())) == 10  # 5 x 2 fold models
    assert (output / "report.html").is_file()
    assert len(list((output / "imputed").glob("*.bigWig"))) == 30  # 6 cells x 5 assays
    assert (output / "manifest.json").is_file()


def test_simulate_command_writes_a_runnable_compendium(tmp_path):
    from typer.testing import CliRunner

    from predictd_core.cli.main import app

    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "sim"), "--bins", "2000",
                                      "--missing-fraction", "0.5", "--seed", "1"])
    assert result.exit_code == 0, result.output
    config = (tmp_path / "sim" / "run.yaml").read_text()
    held = config.split("holdout:")[1].split("\n")[1].strip(" -")
    tracks = (tmp_path / "sim" / "tracks.tsv").read_text()
    assert "\t".join(held.split(":")) in tracks  # the held-out pair is an observed experiment
