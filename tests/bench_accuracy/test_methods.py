"""predictd and the baseline as the benchmark runs them score exactly what predictd itself reports."""

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
    assert method.model == {"preset": "predictd-2018"}
    method.check()
    with pytest.raises(PredictdInputError) as caught:
        PredictdRun("predictd-1999", {"preset": "predictd-1999"}).check()
    assert caught.value.field == "model.preset"


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown method"):
        make_method("magic")
