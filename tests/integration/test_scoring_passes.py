"""Scoring reads the store in passes shared by many targets (the same rows as a pass per target, far fewer
reads), or, on Spark, scores on the executors from chunk bundles: the same rows, samples and panels again."""

import os

import numpy as np
import pytest

from predictd_core import RunConfig, run_cv, simulate_compendium
from predictd_core.crossval.ensemble import cv_run
from predictd_core.crossval.ensemble import test_fold_targets as scored_targets
from predictd_core.crossval.fold_models import plan_folds
from predictd_core.engine.local import LocalEngine
from predictd_core.errors import PredictdInputError
from predictd_core.evaluate.distributed import (ScoreTask, SignalTask, bundle_target_signal, group_targets,
                                                score_group)
from predictd_core.evaluate.scoring import run_evaluate, scoring_passes
from predictd_core.evaluate.targets import baseline_columns, panel_targets
from predictd_core.store.signal_store import SignalStore


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scoring")
    simulated = simulate_compendium(tmp / "sim", n_cells=4, n_assays=3, n_bins=600, signal_format="store",
                                    chunk_bins=200)
    config = RunConfig(tracks=str(simulated.tracks_tsv), chrom_sizes=str(simulated.chrom_sizes),
                       store=str(simulated.store), holdout=["E001:H3K4me3"], output=str(tmp / "run"),
                       engine={"kind": "numpy"}, model={"max_iters": 3}, cv={"n_test": 2, "n_valid": 2})
    rows = run_cv(config).rows
    store = SignalStore.open(simulated.store)
    targets = scored_targets(config, store, plan_folds(config, store))
    return config, store, cv_run(config, store).ensemble, targets, rows


def _evaluate_counting_reads(monkeypatch, config, store, ensemble, targets, budget):
    reads = []
    original = SignalStore.read_chunk

    def counted(self, chunk):
        reads.append(chunk)
        return original(self, chunk)

    monkeypatch.setattr(SignalStore, "read_chunk", counted)
    evaluation = run_evaluate(config, store, ensemble, targets, lambda *args: None, budget=budget)
    monkeypatch.undo()
    return evaluation, reads


def test_one_pass_scores_every_target_as_a_pass_per_target_does(finished_run, monkeypatch):
    config, store, ensemble, targets, rows = finished_run
    assert store.n_chunks == 3 and len(targets) == 8
    shared, shared_reads = _evaluate_counting_reads(monkeypatch, config, store, ensemble, targets, 2**30)
    single, single_reads = _evaluate_counting_reads(monkeypatch, config, store, ensemble, targets, 1)
    assert len(shared_reads) == store.n_chunks  # the whole store once
    assert len(single_reads) == len(targets) * store.n_chunks  # a target alone over the budget: a pass each
    assert shared.rows == single.rows == rows  # and what run_cv wrote
    for name, (observed, imputed) in single.scatter.items():
        np.testing.assert_array_equal(shared.scatter[name][0], observed)
        np.testing.assert_array_equal(shared.scatter[name][1], imputed)
    assert [p.target for p in shared.panels] == [p.target for p in single.panels]


def test_passes_are_consecutive_runs_within_the_budget():
    targets = [(0, "test-fold"), (1, "test-fold"), (2, "test-fold"), (3, "holdout")]
    columns = [[0, 4, 5], [1, 4, 5], [2, 6], [3, 6, 7, 8, 9]]
    passes = [(run, list(read)) for run, read in scoring_passes(targets, columns, n_bins=10, budget=5 * 10 * 4)]
    assert passes == [([0, 1], [0, 1, 4, 5]), ([2], [2, 6]), ([3], [3, 6, 7, 8, 9])]


def _same_evaluation(got, expected) -> None:
    assert got.rows == expected.rows
    assert list(got.scatter) == list(expected.scatter)
    for name, (observed, imputed) in expected.scatter.items():
        np.testing.assert_array_equal(got.scatter[name][0], observed)
        np.testing.assert_array_equal(got.scatter[name][1], imputed)
    assert [p.target for p in got.panels] == [p.target for p in expected.panels]
    for mine, theirs in zip(got.panels, expected.panels):
        assert (mine.contig, mine.start) == (theirs.contig, theirs.start)
        for name in ("observed", "imputed", "baseline"):
            np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name))


@pytest.mark.spark
def test_spark_scores_on_the_executors_as_this_process_does(finished_run, spark_session):
    from predictd_core.engine.spark import SparkEngine

    config, store, ensemble, targets, rows = finished_run
    here = run_evaluate(config, store, ensemble, targets, lambda *args: None)
    engine = SparkEngine(store, master="local[2]")
    heard = []
    assert group_targets(len(targets), store.bins.n_bins, engine.parallelism, 2**30) == 1  # 8 tasks of one
    on_spark = run_evaluate(config, store, ensemble, targets, lambda *event: heard.append(event), engine=engine)
    engine.close()
    assert on_spark.rows == rows  # what run_cv wrote
    _same_evaluation(on_spark, here)
    assert heard[-1] == ("evaluate", 8, 8)
    assert ".parts" not in os.listdir(config.output)


def test_scoring_tasks_of_several_targets_score_as_one_process_does(finished_run):
    config, store, ensemble, targets, _ = finished_run
    here = run_evaluate(config, store, ensemble, targets, lambda *args: None)
    engine = LocalEngine(store)
    engine.distributed = True  # its tasks run here, one after another: the stages and bundles are the same
    assert group_targets(len(targets), store.bins.n_bins, engine.parallelism, 3 * 8 * store.bins.n_bins) == 2
    _same_evaluation(run_evaluate(config, store, ensemble, targets, lambda *args: None, budget=3 * 8 * 600,
                                  engine=engine), here)
    assert ".parts" not in os.listdir(config.output)


def test_a_damaged_scoring_bundle_is_an_error_naming_it_and_the_target(finished_run, tmp_path):
    config, store, ensemble, targets, _ = finished_run
    columns = tuple((column, *baseline_columns(ensemble, column).tolist()) for column, _ in targets)
    written = LocalEngine(store).map_chunks_remote(
        bundle_target_signal, SignalTask(columns, store.chunk_bins, store.bins.n_bins, str(tmp_path)))
    offsets = np.stack([index for _, (_, index) in written])
    first = tuple((t, store.experiments[column], kind, False) for t, (column, kind) in enumerate(targets[:2]))
    task = ScoreTask(config, store.bins, first, tuple(location for _, (location, _) in written), (0, 1, 2),
                     offsets[:, :3].copy(), store.chunk_bins, ())
    assert [score.row for score in score_group(task)] == \
        run_evaluate(config, store, ensemble, targets[:2], lambda *args: None).rows
    damaged = written[1][1][0]
    data = bytearray(open(damaged, "rb").read())
    data[int(offsets[1, 1]) + 20] ^= 0xFF  # inside the second target's piece of chunk 1
    open(damaged, "wb").write(bytes(data))
    with pytest.raises(PredictdInputError, match=rf"{damaged}: {store.experiments[targets[1][0]].name}: damaged"):
        score_group(task)


def test_panels_go_to_the_first_target_of_each_assay(finished_run):
    _, store, ensemble, targets, _ = finished_run
    chosen = panel_targets(ensemble, targets)
    assays = [store.experiments[column].assay for column, _ in targets]
    assert [assays[t] for t in range(len(targets)) if chosen[t]] == list(dict.fromkeys(assays))


def test_scoring_on_an_engine_over_part_of_the_store_is_refused(finished_run):
    config, store, ensemble, targets, _ = finished_run
    engine = LocalEngine(store, chunks=[0])
    engine.distributed = True
    with pytest.raises(ValueError, match=r"scoring reads every bin: the engine maps 1 of the store's 3 chunks"):
        run_evaluate(config, store, ensemble, targets, lambda *args: None, engine=engine)
