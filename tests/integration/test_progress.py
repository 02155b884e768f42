"""Progress when stdout is not a terminal (a file, a pipe, a cloud job's log): plain lines as the steps go,
not bars drawn once at the end; on a terminal the rich bars as before."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from predictd_core.cli import main as cli
from predictd_core.cli.progress import ProgressLines, progress_display
from tests.conftest import write_config

LINE = re.compile(r"^predictd: (?P<label>[\w -]+): (?P<done>done, )?(?P<unit>\w+) (?P<n>\d+)/(?P<total>\d+)"
                  r"(?P<detail>, [^,]+)?, (?P<time>\d+ s|\d+ min \d+ s|\d+ h \d+ min)$")


def _cli_command() -> list[str]:
    script = Path(sys.executable).with_name("predictd")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "predictd_core.cli.main"]


def test_run_piped_prints_a_progress_line_per_step_as_it_goes(tiny_compendium):
    """``predictd run`` with stdout to a pipe: each step's lines come before the results, the first while
    the run is still going, each step ends with a ``done`` line, and stderr stays empty."""
    folder = tiny_compendium[0]
    config = write_config(folder, holdout=["C2:M1"], model={"solver": "als", "rank": 2, "max_iters": 5})

    process = subprocess.Popen([*_cli_command(), "run", str(config)], cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    running = process.poll() is None  # the line came through the pipe before the run ended
    rest, stderr = process.communicate(timeout=300)

    assert process.returncode == 0, (first, rest, stderr)
    assert running and LINE.match(first.rstrip("\n")), first
    assert stderr == ""
    progress = [first.rstrip("\n")] + [line for line in rest.splitlines() if line.startswith("predictd: ")]
    parsed = [LINE.match(line) for line in progress]
    assert all(parsed), progress
    assert [m["label"] for m in parsed if m["done"]] == ["ingest", "train", "refine", "impute", "evaluate"]
    units = {m["label"]: m["unit"] for m in parsed}
    assert units == {"ingest": "chunk", "train": "sweep", "refine": "pair", "impute": "chunk", "evaluate": "track"}
    assert all(m["detail"].startswith(", valid MSE ") for m in parsed if m["label"] == "train")
    assert rest.index("evaluate: done") < rest.index("imputed tracks:")  # the results follow the progress


def test_cv_piped_names_every_fold_model(tmp_path):
    from predictd_core.simulate import simulate_compendium

    # the tiny compendium is too small for folds: 4 cells x 3 assays, 800 bins
    simulate_compendium(tmp_path / "sim", n_cells=4, n_assays=3, n_bins=800, rank=2, seed=3)
    folder = tmp_path / "sim"
    config = write_config(folder, cv={"n_test": 2, "n_valid": 2}, chunk_bins=400,
                          model={"solver": "als", "rank": 2, "max_iters": 4, "refine": {"enabled": False}})

    done = subprocess.run([*_cli_command(), "cv", str(config)], cwd=folder, capture_output=True, text=True,
                          timeout=300)

    assert done.returncode == 0, (done.stdout, done.stderr)
    ended = [m["label"] for m in map(LINE.match, done.stdout.splitlines()) if m and m["done"]]
    assert ended == ["ingest", "train test0-valid0", "train test0-valid1", "train test1-valid0",
                     "train test1-valid1", "impute", "evaluate"]


def test_lines_come_at_the_start_per_tenth_or_30_seconds_and_at_the_end():
    now = [100.0]
    out = io.StringIO()
    lines = ProgressLines(out, clock=lambda: now[0])
    for sweep in range(1, 41):  # a long fit: 40 of 100 sweeps, 2 s each, stopped early
        now[0] += 2.0
        lines("test0-valid1", sweep, 100, f"valid MSE {1 / sweep:.4f}")
    for chunk in range(1, 6):  # then a short step that reaches its total
        now[0] += 1.0
        lines("impute", chunk, 5)
    lines.close()

    printed = out.getvalue().splitlines()
    assert printed[0] == "predictd: train test0-valid1: sweep 1/100, valid MSE 1.0000, 2 s"
    sweeps = [int(LINE.match(line)["n"]) for line in printed if "test0-valid1" in line]
    assert sweeps == [1, 11, 21, 31, 40]  # every tenth of the total (20 s apart: under 30 s)
    assert printed[4] == "predictd: train test0-valid1: done, sweep 40/100, valid MSE 0.0250, 1 min 20 s"
    assert printed[5:] == [f"predictd: impute: chunk {k}/5, {k} s" for k in range(1, 5)] + [
        "predictd: impute: done, chunk 5/5, 5 s"]


def test_a_slow_loop_prints_every_30_seconds():
    now = [0.0]
    out = io.StringIO()
    lines = ProgressLines(out, clock=lambda: now[0])
    for chunk in range(1, 1001):
        now[0] += 0.5
        lines("ingest", chunk, 1000)
    chunks = [int(LINE.match(line)["n"]) for line in out.getvalue().splitlines()]
    assert chunks[:4] == [1, 61, 121, 181] and chunks[-1] == 1000  # 30 s = 60 chunks, before a tenth (100)


def test_a_terminal_keeps_the_bars(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    with progress_display(cli.console) as progress:
        assert isinstance(progress, ProgressLines)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    with progress_display(cli.console) as progress:
        assert not isinstance(progress, ProgressLines)  # the rich bars' updater, on stderr as before
        progress("ingest", 1, 2, "a detail the bars do not show")
    assert sys.stdout.getvalue() == ""
