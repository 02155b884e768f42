"""Bad input through the real CLI: one line on stderr naming the file and the field, exit 2, nothing half-written.

Every case starts from ``tiny_compendium`` (3 cells x 2 assays, numpy engine), breaks one thing and runs
``predictd run`` (or ``ingest`` / ``train``). After the failure the output folder must not exist and the
compendium folder (which also holds the config) must be exactly as it was: no ``.partial`` store, no
``.tmp`` file, no ``.cache`` folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from predictd_core.cli.main import app
from tests.conftest import write_bigwig, write_config

CONTIGS = {"chrA": 1000, "chrB": 510}
LEFTOVER_MARKS = (".partial", ".part", ".tmp", ".cache")


# ----------------------------------------------------------------------------------------------- helpers


def snapshot(folder: Path) -> set[str]:
    """Every path under ``folder``, relative, so a run that writes anything is caught."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_one_line_error(stderr: str, file_name: str, field: str) -> str:
    """stderr is exactly one ``predictd: error: ...`` line naming ``file_name`` and ``field``."""
    assert stderr.endswith("\n") and stderr.count("\n") == 1, f"expected one line on stderr, got:\n{stderr}"
    line = stderr.rstrip("\n")
    assert line.startswith("predictd: error: "), line
    assert "Traceback" not in line, line
    assert file_name in line, f"{file_name!r} not named in: {line}"
    assert field in line, f"field {field!r} not named in: {line}"
    return line


def assert_nothing_left(folder: Path, before: set[str], output: Path) -> None:
    """No output folder, no temporary entries, and the input folder is unchanged."""
    assert not output.exists(), f"the failed run left {output}: {sorted(snapshot(output))}"
    leftovers = [p for p in snapshot(folder) if any(mark in Path(p).name for mark in LEFTOVER_MARKS)]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    assert snapshot(folder) == before, f"the failed run changed {folder}: {sorted(snapshot(folder) ^ before)}"


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def retrack(folder: Path, old: str, new: str) -> None:
    """Point a row of the tracks table at another file name."""
    table = folder / "tracks.tsv"
    table.write_text(table.read_text().replace(old, new))


# ----------------------------------------------------------------------------------------------- cases
# Each case breaks the compendium in ``folder`` and returns (config path, file named in the error, field).

Case = Callable[[Path], tuple[Path, str, str]]


def missing_track_file(folder):
    (folder / "C2.M1.bigWig").unlink()
    return write_config(folder), "tracks.tsv", "path"


def missing_config(folder):
    return folder / "absent.yaml", "absent.yaml", "config"


def missing_tracks_table(folder):
    return write_config(folder, tracks="absent.tsv"), "absent.tsv", "tracks"


def missing_chrom_sizes(folder):
    return write_config(folder, chrom_sizes="absent.sizes"), "absent.sizes", "chrom_sizes"


def missing_regions(folder):
    return write_config(folder, regions="absent.bed"), "absent.bed", "regions"


def unreadable_bigwig(folder):
    (folder / "C2.M1.bigWig").write_bytes(b"<html>403 Forbidden</html>\n" * 20)
    return write_config(folder), "C2.M1.bigWig", "path"


def truncated_bigwig(folder):
    track = folder / "C2.M1.bigWig"
    track.write_bytes(track.read_bytes()[:200])  # valid magic and header start, no index
    return write_config(folder), "C2.M1.bigWig", "path"


def contig_not_in_chrom_sizes(folder):
    write_bigwig(folder / "C2.M1.bigWig", {"chrA": 1000, "chrZ": 300}, {"chrA": np.ones(40)})
    return write_config(folder), "C2.M1.bigWig", "contig chrZ"


def mismatched_contig_length(folder):
    write_bigwig(folder / "C2.M1.bigWig", {"chrA": 1200, "chrB": 510}, {"chrA": np.ones(48)})
    return write_config(folder), "C2.M1.bigWig", "contig chrA"


def duplicate_experiment(folder):
    with (folder / "tracks.tsv").open("a") as table:
        table.write("C1\tM1\tC2.M2.bigWig\n")
    return write_config(folder), "tracks.tsv", "cell_type/assay"


def unknown_holdout(folder):
    return write_config(folder, holdout=["C1:M1", "C9:M1"]), "run.yaml", "holdout[1]"


def holdout_not_cell_colon_assay(folder):
    return write_config(folder, holdout=["C1-M1"]), "run.yaml", "holdout"


def wrong_type_top_level(folder):
    return write_config(folder, bin_size="twenty-five"), "run.yaml", "bin_size"


def wrong_type_nested(folder):
    return write_config(folder, model={"solver": "als", "rank": "many"}), "run.yaml", "model.rank"


def wrong_type_list(folder):
    return write_config(folder, holdout="C1:M1"), "run.yaml", "holdout"


def wrong_engine_kind(folder):
    return write_config(folder, engine={"kind": "dask"}), "run.yaml", "engine.kind"


def misspelled_field(folder):
    return write_config(folder, bin_sise=25), "run.yaml", "bin_sise"


def malformed_yaml(folder):
    path = folder / "run.yaml"
    path.write_text("tracks: tracks.tsv\nchrom_sizes: chrom.sizes\nholdout: [C1:M1\nengine: {kind: numpy}\n")
    return path, "run.yaml", "yaml"


def yaml_not_a_mapping(folder):
    path = folder / "run.yaml"
    path.write_text("- tracks.tsv\n- chrom.sizes\n")
    return path, "run.yaml", "config"


def empty_tracks_table(folder):
    (folder / "tracks.tsv").write_text("cell_type\tassay\tpath\n")
    return write_config(folder), "tracks.tsv", "rows"


def empty_tracks_file(folder):
    (folder / "tracks.tsv").write_text("")
    return write_config(folder), "tracks.tsv", "header"


def tracks_table_empty_cell(folder):
    (folder / "tracks.tsv").write_text("cell_type\tassay\tpath\nC1\t\tC1.M1.bigWig\n")
    return write_config(folder), "tracks.tsv", "line 2: assay"


def bad_regions_line(folder):
    (folder / "regions.bed").write_text("chrA\t0\t500\nchrA\tzero\t100\n")
    return write_config(folder, regions="regions.bed"), "regions.bed", "line 2"


def regions_contig_not_in_chrom_sizes(folder):
    (folder / "regions.bed").write_text("chrA\t0\t500\nchrZ\t0\t100\n")
    return write_config(folder, regions="regions.bed"), "regions.bed", "line 2: chrom"


def regions_past_contig_end(folder):
    (folder / "regions.bed").write_text("chrB\t100\t600\n")
    return write_config(folder, regions="regions.bed"), "regions.bed", "line 1: start/end"


def bad_chrom_sizes_line(folder):
    (folder / "chrom.sizes").write_text("chrA\t1000\nchrB\tlots\n")
    return write_config(folder), "chrom.sizes", "line 2"


def negative_signal(folder):
    write_bigwig(folder / "C2.M1.bigWig", CONTIGS, {"chrA": -np.ones(40)})
    return write_config(folder), "C2.M1.bigWig", "values"


def bad_bedgraph_line(folder):
    (folder / "C2.M1.bedGraph").write_text("chrA\t0\t25\t1.0\nchrA\t25\t50\tlots\n")
    retrack(folder, "C2.M1.bigWig", "C2.M1.bedGraph")
    return write_config(folder), "C2.M1.bedGraph", "line 2"


def bedgraph_contig_not_in_chrom_sizes(folder):
    (folder / "C2.M1.bedGraph").write_text("chrA\t0\t25\t1.0\nchrQ\t0\t25\t1.0\n")
    retrack(folder, "C2.M1.bigWig", "C2.M1.bedGraph")
    return write_config(folder), "C2.M1.bedGraph", "line 2: chrom"


CASES: list[Case] = [
    missing_track_file, missing_config, missing_tracks_table, missing_chrom_sizes, missing_regions,
    unreadable_bigwig, truncated_bigwig, contig_not_in_chrom_sizes, mismatched_contig_length,
    duplicate_experiment, unknown_holdout, holdout_not_cell_colon_assay, wrong_type_top_level,
    wrong_type_nested, wrong_type_list, wrong_engine_kind, misspelled_field, malformed_yaml,
    yaml_not_a_mapping, empty_tracks_table, empty_tracks_file, tracks_table_empty_cell, bad_regions_line,
    regions_contig_not_in_chrom_sizes, regions_past_contig_end, bad_chrom_sizes_line, negative_signal,
    bad_bedgraph_line, bedgraph_contig_not_in_chrom_sizes,
]


# ----------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_run_rejects_bad_input(tiny_compendium, case: Case):
    folder = tiny_compendium[0]
    config, file_name, field = case(folder)
    before = snapshot(folder)

    result = invoke("run", str(config))

    assert_one_line_error(result.stderr, file_name, field)
    assert result.stdout == ""
    assert_nothing_left(folder, before, folder / "out")


def test_missing_track_file_names_the_missing_file(tiny_compendium):
    folder = tiny_compendium[0]
    config, _, _ = missing_track_file(folder)
    line = assert_one_line_error(invoke("run", str(config)).stderr, "tracks.tsv", "line 4: path")
    assert "C2.M1.bigWig" in line


@pytest.mark.parametrize("case", [negative_signal, bad_bedgraph_line, unknown_holdout],
                         ids=lambda case: case.__name__)
def test_ingest_rejects_bad_input_without_leaving_the_output_folder(tiny_compendium, case: Case):
    folder = tiny_compendium[0]
    config, file_name, field = case(folder)
    before = snapshot(folder)

    result = invoke("ingest", str(config))

    assert_one_line_error(result.stderr, file_name, field)
    assert_nothing_left(folder, before, folder / "out")


def test_train_on_an_existing_store_rejects_unknown_holdout_and_keeps_the_store(tiny_compendium):
    folder = tiny_compendium[0]
    config = write_config(folder)
    assert CliRunner().invoke(app, ["ingest", str(config)]).exit_code == 0
    write_config(folder, holdout=["C9:M2"])
    before = snapshot(folder)

    for step in ("train", "impute", "evaluate"):
        result = invoke(step, str(config))
        assert_one_line_error(result.stderr, "run.yaml", "holdout[0]")
    assert snapshot(folder) == before  # the store is kept, no model/imputed/metrics appear


def _cli_command() -> list[str]:
    script = Path(sys.executable).with_name("predictd")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "predictd_core.cli.main"]


@pytest.mark.parametrize("case", [unreadable_bigwig, truncated_bigwig, mismatched_contig_length, malformed_yaml],
                         ids=lambda case: case.__name__)
def test_real_process_exit_code_and_stderr(tiny_compendium, case: Case):
    """As a real process: exit code 2, and no line from C code (libBigWig) or rich on stderr besides ours."""
    folder = tiny_compendium[0]
    config, file_name, field = case(folder)
    before = snapshot(folder)

    done = subprocess.run([*_cli_command(), "run", str(config)], cwd=folder, capture_output=True, text=True,
                          timeout=120)

    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert_one_line_error(done.stderr, file_name, field)
    assert_nothing_left(folder, before, folder / "out")


def test_failed_rerun_keeps_an_existing_output_folder(tiny_compendium):
    """An output folder that existed before the run is not the failed run's to delete."""
    folder = tiny_compendium[0]
    (folder / "out").mkdir()
    (folder / "out" / "notes.txt").write_text("mine\n")
    config, file_name, field = unreadable_bigwig(folder)
    before = snapshot(folder)

    result = invoke("run", str(config))

    assert_one_line_error(result.stderr, file_name, field)
    assert snapshot(folder) == before


def test_malformed_yaml_message_is_one_line_even_for_a_multiline_yaml_error(tiny_compendium):
    folder = tiny_compendium[0]
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump({"tracks": "tracks.tsv"}) + "chrom_sizes: 'chrom.sizes\n  : :\n\t- x\n")
    before = snapshot(folder)
    assert_one_line_error(invoke("run", str(config)).stderr, "run.yaml", "yaml")
    assert_nothing_left(folder, before, folder / "out")


def test_cv_on_a_compendium_too_small_for_its_folds(tiny_compendium):
    """3 cells x 2 assays cannot fill 5 test x 8 validation folds: the error names the config's cv field."""
    folder, *_ = tiny_compendium
    config = write_config(folder, cv={"n_test": 5, "n_valid": 8})
    before = snapshot(folder)
    result = invoke("cv", str(config))
    assert_one_line_error(result.stderr, str(config), "cv.")
    assert_nothing_left(folder, before, folder / "out")


def test_cv_config_with_an_unknown_cv_field(tiny_compendium):
    folder, *_ = tiny_compendium
    config = write_config(folder, cv={"n_tests": 5})
    before = snapshot(folder)
    result = invoke("cv", str(config))
    assert_one_line_error(result.stderr, str(config), "cv.n_tests")
    assert_nothing_left(folder, before, folder / "out")
