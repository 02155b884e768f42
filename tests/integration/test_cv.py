"""`predictd cv` and its pieces on a simulated compendium: folds, fold models, ensemble, metrics, report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pyBigWig
import pytest
import yaml
from typer.testing import CliRunner

from predictd_core.cli.main import app
from predictd_core.config import load_config
from predictd_core.engine.local import LocalEngine
from predictd_core.impute.write_tracks import to_pvalue_scale
from predictd_core.train.estimator import Predictd
from predictd_core.crossval import load_folds
from predictd_core.pipeline import run_impute, trained_run
from predictd_core.simulate import simulate_compendium
from predictd_core.solvers import als
from predictd_core.store.signal_store import SignalStore


@pytest.fixture(scope="module")
def compendium(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    simulated = simulate_compendium(root / "sim", n_cells=6, n_assays=5, n_bins=2400, rank=3,
                                    missing_fraction=0.15, seed=4)
    return root, simulated


def _config(root: Path, name: str, **changes) -> Path:
    document = {"tracks": "sim/tracks.tsv", "chrom_sizes": "sim/chrom.sizes", "bin_size": 25,
                "chunk_bins": 1000, "holdout": [], "output": name,
                "model": {"rank": 3, "max_iters": 6, "patience": 3},
                "engine": {"kind": "numpy"}, "cv": {"n_test": 3, "n_valid": 2, "spread": True}}
    document.update(changes)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def cv_run(compendium):
    root, simulated = compendium
    held = f"{simulated.observed[0][0]}:{simulated.observed[0][1]}"
    # the tensor ensemble's own values: these tests recompute them model by model (the refinement on top of
    # cross-validation runs in tests/integration/test_pilot.py and the handlers' end-to-end test)
    config = _config(root, "out", holdout=[held],
                     model={"rank": 3, "max_iters": 6, "patience": 3, "refine": {"enabled": False}})
    result = CliRunner().invoke(app, ["cv", str(config)])
    assert result.exit_code == 0, result.output
    return load_config(config), result


def _bigwig_values(path: Path) -> np.ndarray:
    handle = pyBigWig.open(str(path))
    try:
        return np.concatenate([np.asarray(handle.values(name, 0, size), dtype=np.float64)[::25]
                               for name, size in handle.chroms().items()])
    finally:
        handle.close()


def test_fold_models_are_artifacts_with_their_log(cv_run):
    config, _ = cv_run
    output = Path(config.output)
    folds = load_folds(output / "folds.json")
    assert (folds.n_test, folds.n_valid) == (3, 2)
    for i, j in folds.models():
        folder = output / "models" / f"test{i}-valid{j}"
        description = json.loads((folder / "model.json").read_text())
        assert (folder / "factors.npz").is_file()
        assert description["config_sha256"] == config.digest()
        assert description["training_sha256"] == config.training_digest()
        assert (description["test_fold"], description["valid_fold"]) == (i, j)
        assert description["seed"] == config.model.seed + 1000 * i + j
        assert description["history"] and {"iteration", "objective", "train_mse", "valid_mse"} <= set(
            description["history"][0])
        model = Predictd.load(folder)
        assert model.factors_.C.shape == (6, 3)


def test_held_out_experiments_are_the_mean_of_their_test_folds_models(cv_run):
    """Recompute the ensemble from the saved models and the store, then compare with the written bigWigs."""
    config, _ = cv_run
    output = Path(config.output)
    store = SignalStore.open(config.store_path)
    names = [e.name for e in store.experiments]
    held = names.index(config.holdout[0])
    columns = np.array([k for k in range(len(names)) if k != held])
    folds = load_folds(output / "folds.json")
    Y = store.read_columns(range(len(names)))
    layout = Predictd.load(output / "models" / "test0-valid0").layout_

    def predict(i, j, cell, assay):
        model = Predictd.load(output / "models" / f"test{i}-valid{j}")
        seen = np.setdiff1d(columns, columns[folds.test_fold == i])
        return als.predict(Y[:, seen], model.factors_, layout.cell_of[seen], layout.assay_of[seen],
                           np.array([cell]), np.array([assay]), model.ridge_)[:, 0]

    for index in (0, int(np.flatnonzero(folds.test_fold == 2)[0])):  # a test-fold experiment of two folds
        column = columns[index]
        fold = folds.test_fold[index]
        cell, assay = layout.cell_of[column], layout.assay_of[column]
        expected = np.mean([predict(fold, j, cell, assay) for j in range(2)], axis=0)
        path = output / "imputed" / f"{layout.cells[cell]}.{layout.assays[assay]}.bigWig"
        np.testing.assert_allclose(_bigwig_values(path), to_pvalue_scale(expected), rtol=2e-5, atol=2e-5)
    # the holdout target, never trained on, is the mean of all six models
    cell, assay = layout.cell_of[held], layout.assay_of[held]
    everyone = [predict(i, j, cell, assay) for i, j in folds.models()]
    path = output / "imputed" / f"{layout.cells[cell]}.{layout.assays[assay]}.bigWig"
    np.testing.assert_allclose(_bigwig_values(path), to_pvalue_scale(np.mean(everyone, axis=0)), rtol=2e-5,
                               atol=2e-5)
    spread = _bigwig_values(output / "spread" / f"{layout.cells[cell]}.{layout.assays[assay]}.bigWig")
    np.testing.assert_allclose(spread, np.std(everyone, axis=0), rtol=1e-4, atol=1e-5)


def test_one_test_fold_makes_the_holdout_its_test_set_imputed_by_every_validation_model(compendium):
    """cv.n_test 1 (PREDICTD's protocol for one test fold): each model validates on one fold of the other
    experiments and trains on the rest; the holdout targets, the only ones scored, are the mean of all."""
    root, simulated = compendium
    held = [f"{cell}:{assay}" for cell, assay in simulated.observed[:2]]
    path = _config(root, "one-fold", holdout=held, cv={"n_test": 1, "n_valid": 3},
                   model={"rank": 3, "max_iters": 4, "patience": 2, "refine": {"enabled": False}})
    result = CliRunner().invoke(app, ["cv", str(path)])
    assert result.exit_code == 0, result.output
    config = load_config(path)
    output = Path(config.output)
    folds = load_folds(output / "folds.json")
    assert folds.n_test == 1 and (folds.test_fold == -1).all()
    assert sorted(p.name for p in (output / "models").iterdir()) == ["test0-valid0", "test0-valid1", "test0-valid2"]
    store = SignalStore.open(config.store_path)
    names = [e.name for e in store.experiments]
    columns = np.array([k for k, name in enumerate(names) if name not in held])
    Y = store.read_columns(range(len(names)))
    for j in range(3):
        _, valid, _ = folds.columns(0, j)
        assert json.loads((output / "models" / f"test0-valid{j}" / "model.json").read_text())["valid_fold"] == j
        assert valid.size in (len(columns) // 3, len(columns) // 3 + 1)
    layout = Predictd.load(output / "models" / "test0-valid0").layout_
    for name in held:
        cell, assay = layout.cell_of[names.index(name)], layout.assay_of[names.index(name)]
        everyone = [als.predict(Y[:, columns], Predictd.load(output / "models" / f"test0-valid{j}").factors_,
                                layout.cell_of[columns], layout.assay_of[columns], np.array([cell]),
                                np.array([assay]), Predictd.load(output / "models" / "test0-valid0").ridge_)[:, 0]
                    for j in range(3)]
        track = output / "imputed" / f"{name.replace(':', '.')}.bigWig"
        np.testing.assert_allclose(_bigwig_values(track), to_pvalue_scale(np.mean(everyone, axis=0)), rtol=2e-5,
                                   atol=2e-5)
    lines = (output / "metrics.tsv").read_text().splitlines()
    kinds = [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]
    assert [(r["cell_type"] + ":" + r["assay"], r["kind"]) for r in kinds] == [(name, "holdout") for name in held]


def test_every_test_fold_experiment_and_the_holdout_are_scored(cv_run):
    config, result = cv_run
    output = Path(config.output)
    folds = load_folds(output / "folds.json")
    lines = (output / "metrics.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert sum(r["kind"] == "test-fold" for r in rows) == int((folds.test_fold >= 0).sum())
    assert [f"{r['cell_type']}:{r['assay']}" for r in rows if r["kind"] == "holdout"] == config.holdout
    table = pq.read_table(output / "metrics.parquet").to_pandas()
    assert len(table) == len(rows)
    np.testing.assert_allclose(table["MSEglobal"], [float(r["MSEglobal"]) for r in rows], rtol=1e-5)
    assert (output / "summary.tsv").is_file() and (output / "report.html").is_file()
    assert "wins" in result.output  # the printed summary


def test_manifest_is_written_last_and_lists_every_model(cv_run):
    config, _ = cv_run
    output = Path(config.output)
    manifest = json.loads((output / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == [f"test{i}-valid{j}" for i in range(3) for j in range(2)]
    assert "report.html" in manifest["outputs"] and "metrics.parquet" in manifest["outputs"]
    newest = max(os.path.getmtime(output / p) for p in manifest["outputs"])
    assert os.path.getmtime(output / "manifest.json") >= newest


def test_cv_again_reuses_the_fold_models_and_a_new_model_setting_retrains(cv_run, compendium):
    config, _ = cv_run
    root, _ = compendium
    output = Path(config.output)
    stamps = {p: p.stat().st_mtime_ns for p in output.glob("models/*/model.json")}
    result = CliRunner().invoke(app, ["cv", str(root / "out.yaml")])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in output.glob("models/*/model.json")} == stamps

    from predictd_core import crossval

    store = SignalStore.open(config.store_path)
    changed = config.model_copy(update={"model": config.model.model_copy(update={"rank": 2})})
    assert not crossval.is_trained(changed, store, 0, 0)
    assert crossval.is_trained(config.model_copy(update={"engine": config.engine.model_copy(
        update={"kind": "spark"})}), store, 0, 0)  # where it ran does not matter


def test_train_one_fold_as_a_job_reproduces_the_cv_model(cv_run, compendium):
    config, _ = cv_run
    root, _ = compendium
    job = _config(root, "job", holdout=config.holdout, store=config.store_path)
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(job), "--test-fold", "1", "--valid-fold", "0"])
    assert result.exit_code == 0, result.output
    ours = Predictd.load(root / "job" / "models" / "test1-valid0")
    theirs = Predictd.load(Path(config.output) / "models" / "test1-valid0")
    np.testing.assert_array_equal(ours.factors_.C, theirs.factors_.C)
    assert (root / "job" / "folds.json").read_bytes() == (Path(config.output) / "folds.json").read_bytes()

    # the ensemble stage refuses to run with models missing, naming the first one
    result = runner.invoke(app, ["impute", str(job)])
    assert result.exit_code == 2
    assert "test0-valid0" in result.stderr and "predictd train --test-fold 0 --valid-fold 0" in result.stderr


@pytest.mark.parametrize("arguments, message", [
    (["--test-fold", "7", "--valid-fold", "0"], "outside 3 test x 2 validation folds"),
    (["--test-fold", "0"], "give both or neither"),
])
def test_bad_fold_options_exit_2_with_one_line(cv_run, compendium, arguments, message):
    config, _ = cv_run
    root, _ = compendium
    result = CliRunner().invoke(app, ["train", str(root / "out.yaml"), *arguments])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_folds_of_another_scheme_are_refused(cv_run, compendium):
    config, _ = cv_run
    root, _ = compendium
    document = yaml.safe_load((root / "out.yaml").read_text())
    document["cv"] = {"n_test": 2, "n_valid": 2}
    other = root / "other-scheme.yaml"
    other.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["folds", str(other)])
    assert result.exit_code == 2
    assert "folds.json" in result.stderr and "remove the file" in result.stderr



def test_region_beds_add_region_mses_and_a_missing_bed_is_named(cv_run, compendium):
    """evaluate again with promoter/gene/enhancer BEDs: MSEprom equals the MSE over the covered bins."""
    config, _ = cv_run
    root, _ = compendium
    (root / "prom.bed").write_text("chrS1\t0\t2500\nchrS9\t0\t100\n")  # 100 bins; chrS9 is not in the run
    (root / "genes.bed").write_text("chrS2\t1000\t3000\n")
    document = yaml.safe_load((root / "out.yaml").read_text())
    document["evaluation"] = {"promoters": "prom.bed", "genes": "genes.bed",
                              "browser_regions": ["chrS2:500-3000"]}
    (root / "regions.yaml").write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["evaluate", str(root / "regions.yaml")])
    assert result.exit_code == 0, result.output
    table = pq.read_table(Path(config.output) / "metrics.parquet").to_pandas()
    assert {"MSEprom", "MSEgene", "baseline_MSEprom"} <= set(table.columns) and "MSEenh" not in table.columns

    store = SignalStore.open(config.store_path)
    row = table.iloc[0]
    column = [e.name for e in store.experiments].index(f"{row['cell_type']}:{row['assay']}")
    observed = store.read_columns([column])[:, 0][:100]
    imputed = np.arcsinh(_bigwig_values(Path(config.output) / "imputed" / f"{row['cell_type']}.{row['assay']}.bigWig"))
    assert row["MSEprom"] == pytest.approx(np.mean((observed - np.maximum(imputed[:100], 0)) ** 2), rel=1e-4)

    document["evaluation"] = {"enhancers": "missing.bed"}
    (root / "regions.yaml").write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["evaluate", str(root / "regions.yaml")])
    assert result.exit_code == 2
    assert "missing.bed" in result.stderr and "evaluation.enhancers" in result.stderr

def test_extend_fits_only_the_new_cell_type_and_scores_it(tmp_path):
    """cv on five cell types, then the sixth's tracks arrive: extend keeps every old row and scores the new ones."""
    simulated = simulate_compendium(tmp_path / "sim", n_cells=6, n_assays=5, n_bins=2400, rank=3, seed=5)
    lines = (tmp_path / "sim" / "tracks.tsv").read_text().splitlines(keepends=True)
    full, newcomer = "".join(lines), "E006"
    (tmp_path / "sim" / "tracks.tsv").write_text("".join(line for line in lines if not line.startswith(newcomer)))
    config = _config(tmp_path, "out")
    runner = CliRunner()
    result = runner.invoke(app, ["extend", str(config)])
    assert result.exit_code == 2 and "run predictd cv first" in result.stderr
    assert runner.invoke(app, ["cv", str(config)]).exit_code == 0
    output = tmp_path / "out"
    before = load_folds(output / "folds.json")
    old_model = Predictd.load(output / "models" / "test1-valid1")
    result = runner.invoke(app, ["extend", str(config)])
    assert result.exit_code == 2 and "no new experiment" in result.stderr and "tracks.tsv" in result.stderr

    (tmp_path / "sim" / "tracks.tsv").write_text(full)
    result = runner.invoke(app, ["cv", str(config)])  # the table grew: the folds no longer fit the store
    assert result.exit_code == 2 and "run predictd extend" in result.stderr
    result = runner.invoke(app, ["extend", str(config)])
    assert result.exit_code == 0, result.output
    after = load_folds(output / "folds.json")
    for name, fold in zip(before.experiments, before.test_fold):
        assert after.test_fold[after.experiments.index(name)] == fold  # old assignments kept
    new = [k for k, name in enumerate(after.experiments) if name.startswith(newcomer)]
    assert len(new) == 5 and (after.test_fold[new] >= 0).any()

    model = Predictd.load(output / "models" / "test1-valid1")
    assert model.layout_.cells[-1] == newcomer
    np.testing.assert_array_equal(model.factors_.C[:5], old_model.factors_.C)  # old cell rows untouched
    np.testing.assert_array_equal(model.factors_.A, old_model.factors_.A)  # no new assay: assay rows untouched
    assert model.history_[-1]["stage"] == "extend"

    lines = (output / "metrics.tsv").read_text().splitlines()
    scored = [line.split("\t")[:3] for line in lines[1:]]
    assert sum(cell == newcomer for cell, _, _ in scored) == int((after.test_fold[new] >= 0).sum())
    assert len(list((output / "imputed").glob(f"{newcomer}.*.bigWig"))) == 5
    # the extended models count as trained for the grown table: cv has nothing left to fit
    stamps = {p: p.stat().st_mtime_ns for p in output.glob("models/*/factors.npz")}
    assert runner.invoke(app, ["cv", str(config)]).exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in output.glob("models/*/factors.npz")} == stamps
    assert simulated.observed  # the compendium was complete: every pair observed


def test_cv_runs_on_a_simulated_store_without_bigwigs(tmp_path):
    """simulate --format store writes only the store: an explicit, complete `store:` is used as it is."""
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", str(tmp_path / "sim"), "--bins", "2400", "--format", "store"])
    assert result.exit_code == 0, result.output
    config = tmp_path / "sim" / "run.yaml"
    document = yaml.safe_load(config.read_text())
    assert document["store"] == "store.zarr" and not list((tmp_path / "sim").glob("*.bigWig"))
    document.update(engine={"kind": "numpy"}, model={"rank": 3, "max_iters": 3}, cv={"n_test": 3, "n_valid": 2})
    config.write_text(yaml.safe_dump(document))
    result = runner.invoke(app, ["cv", str(config)])
    assert result.exit_code == 0, result.output
    store = SignalStore.open(tmp_path / "sim" / "store.zarr")
    rows = (tmp_path / "sim" / "output" / "metrics.tsv").read_text().splitlines()[1:]
    assert len(rows) == store.n_experiments  # every experiment scored: in a test fold or held out


def test_extend_without_a_cross_validated_output_writes_nothing(tmp_path):
    simulate_compendium(tmp_path / "sim", n_cells=6, n_assays=5, n_bins=600, rank=2, seed=1)
    result = CliRunner().invoke(app, ["extend", str(_config(tmp_path, "fresh"))])
    assert result.exit_code == 2 and "run predictd cv first" in result.stderr
    assert not (tmp_path / "fresh").exists()  # no store ingested for a run that cannot extend


def test_imputing_some_pairs_writes_those_tracks_as_the_whole_grid_has_them(cv_run, tmp_path):
    config, _ = cv_run
    store = SignalStore.open(config.store_path)
    run = trained_run(config, store)
    pairs = np.array([7, 2])
    subset = config.model_copy(update={"output": str(tmp_path / "subset")})
    written = run_impute(subset, store, run, LocalEngine(store), pairs=pairs)
    layout = run.ensemble.layout
    cells, assays = layout.all_pairs()
    names = [f"{layout.cells[cells[p]]}.{layout.assays[assays[p]]}.bigWig" for p in pairs]
    assert [Path(path).name for path in written] == names * 2  # imputed/, then spread/
    assert sorted(p.name for p in (tmp_path / "subset" / "imputed").iterdir()) == sorted(names)
    for name in names:
        np.testing.assert_allclose(_bigwig_values(tmp_path / "subset" / "imputed" / name),
                                   _bigwig_values(Path(config.output) / "imputed" / name), rtol=1e-6)
