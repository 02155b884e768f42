"""Scoring reads the store in passes shared by many targets: the same rows as a pass per target, far fewer reads."""

import numpy as np
import pytest

from predictd_core import RunConfig, run_cv, simulate_compendium
from predictd_core.crossval.ensemble import cv_run
from predictd_core.crossval.ensemble import test_fold_targets as scored_targets
from predictd_core.crossval.fold_models import plan_folds
from predictd_core.evaluate.scoring import run_evaluate, scoring_passes
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
