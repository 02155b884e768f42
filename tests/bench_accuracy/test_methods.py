"""predictd and the baseline as the benchmark runs them score exactly what predictd itself reports."""

import json

import numpy as np
import pandas as pd
import pytest

from predictd_core.errors import PredictdInputError
from predictd_core.model.measures import MEASURES

from bench.accuracy.methods import METHODS, make_method
from bench.accuracy.methods.baseline import SameAssayAverage
from bench.accuracy.methods.predictd import PredictdRun
from bench.accuracy.problem import prepare_problem
from bench.accuracy.scoring import common_bins, score


@pytest.fixture(scope="module")
def scored(mini_pilot, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    problem = prepare_problem(work, mini_pilot)
    (work / "predictd").mkdir()
    imputations = {"predictd": PredictdRun().impute(problem, work / "predictd"),
                   "baseline": SameAssayAverage().impute(problem, work)}
    return problem, imputations, score(problem, imputations, imputations["baseline"]), work


def test_predictd_and_baseline_scores_equal_predictds_own_metrics(scored):
    problem, _, rows, work = scored
    own = pd.read_csv(work / "predictd" / "output" / "metrics.tsv", sep="\t")
    assert sorted(own["cell_type"] + ":" + own["assay"]) == sorted(t.name for t in problem.targets)
    for row in rows:
        match = own[(own["cell_type"] == row["cell_type"]) & (own["assay"] == row["assay"])].iloc[0]
        assert row["n_bins"] == match["n_bins"]
        prefix = "" if row["method"] == "predictd" else "baseline_"
        for measure in MEASURES:
            assert row[measure] == pytest.approx(match[prefix + measure], rel=1e-5, abs=1e-9), (row["method"], measure)


def test_the_baseline_is_the_mean_of_the_other_cells_same_mark(scored):
    problem, imputations, _, _ = scored
    tracks = problem.training_tracks()
    others = [tracks[(cell, "H3K4me3")] for cell in ("E003", "E017", "E116", "E117")]
    np.testing.assert_allclose(imputations["baseline"]["E065:H3K4me3"], np.mean(others, axis=0), rtol=1e-6)


def test_every_method_is_scored_on_the_same_bins():
    observed = np.array([1.0, np.nan, 2.0, 3.0, 4.0])
    first = np.array([1.0, 1.0, np.nan, 1.0, 1.0])
    second = np.array([1.0, 1.0, 1.0, np.nan, 1.0])
    assert common_bins(observed, [first, second]).tolist() == [True, False, False, False, True]


def test_the_faithful_predictd_mode_is_the_preset_and_a_bad_model_is_refused_naming_the_field():
    assert "predictd-2018" in METHODS
    method = make_method("predictd-2018")
    assert method.model == {"preset": "predictd-2018"} and method.ensemble == 8  # PREDICTD's models per test fold
    method.check()
    with pytest.raises(PredictdInputError) as caught:
        PredictdRun("predictd-1999", {"preset": "predictd-1999"}).check()
    assert caught.value.field == "model.preset"


def test_an_ensemble_run_is_predictd_cv_with_the_targets_as_its_one_test_fold(mini_pilot, tmp_path):
    problem = prepare_problem(tmp_path / "work", mini_pilot)
    method = PredictdRun("two-models", {"max_iters": 3, "refine": {"enabled": False}}, ensemble=2)
    imputed = method.impute(problem, tmp_path / "run")
    assert sorted(imputed) == sorted(t.name for t in problem.targets)
    folds = json.loads((tmp_path / "run" / "output" / "folds.json").read_text())
    assert (folds["n_test"], folds["n_valid"]) == (1, 2) and set(folds["test_fold"]) == {-1}
    assert len(folds["experiments"]) == 20  # the training tracks, each validated on by one model
    assert sorted(p.name for p in (tmp_path / "run" / "output" / "models").iterdir()) == ["test0-valid0",
                                                                                         "test0-valid1"]
    own = pd.read_csv(tmp_path / "run" / "output" / "metrics.tsv", sep="\t")
    assert set(own["kind"]) == {"holdout"} and len(own) == 5
    for target in problem.targets:
        assert np.isfinite(imputed[target.name]).all()


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown method"):
        make_method("magic")
