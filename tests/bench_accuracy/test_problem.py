"""The split every method gets: the 5 targets held out, the other 20 tracks for training, on one store."""

import numpy as np
import pytest

from predictd_core.errors import PredictdInputError

from bench.accuracy.latin_square import PILOT_TARGETS
from bench.accuracy.problem import first_bins_bed, prepare_problem
from tests.bench_accuracy.conftest import N_BINS


@pytest.fixture(scope="module")
def problem(mini_pilot, tmp_path_factory):
    return prepare_problem(tmp_path_factory.mktemp("work"), mini_pilot)


def test_the_targets_are_the_latin_square_and_training_is_everything_else(problem):
    names = [e.name for e in problem.store.experiments]
    assert [t.name for t in problem.targets] == list(PILOT_TARGETS)
    assert [names[t.column] for t in problem.targets] == list(PILOT_TARGETS)
    assert sorted(problem.training.tolist() + [t.column for t in problem.targets]) == list(range(25))
    assert set(problem.training.tolist()).isdisjoint(t.column for t in problem.targets)
    training = {names[k] for k in problem.training}
    assert len(training) == 20
    for cell in ("E003", "E017", "E065", "E116", "E117"):
        assert sum(name.startswith(cell + ":") for name in training) == 4
    for mark in ("H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1"):
        assert sum(name.endswith(":" + mark) for name in training) == 4


def test_training_tracks_and_observed_targets_are_the_store_columns(problem, mini_pilot):
    import pyBigWig

    tracks = problem.training_tracks()
    assert len(tracks) == 20 and ("E065", "H3K4me3") not in tracks
    with pyBigWig.open(str(mini_pilot / "E003.H3K4me3.bigWig")) as handle:
        raw = np.array(handle.values("pilotA", 0, N_BINS * 25))[::25]
    np.testing.assert_allclose(tracks[("E003", "H3K4me3")], np.arcsinh(raw), rtol=1e-6)
    with pyBigWig.open(str(mini_pilot / "E065.H3K4me3.bigWig")) as handle:
        raw = np.array(handle.values("pilotA", 0, N_BINS * 25))[::25]
    np.testing.assert_allclose(problem.observed()["E065:H3K4me3"], np.arcsinh(raw), rtol=1e-6)


def test_a_slice_keeps_the_first_bins(mini_pilot, tmp_path):
    sliced = prepare_problem(tmp_path, mini_pilot, n_bins=120)
    assert sliced.n_bins == 120
    assert (tmp_path / "store-120.zarr").is_dir()


def test_the_first_bins_run_over_contigs_in_order():
    assert first_bins_bed({"a": 100, "b": 1000}, 10) == "a\t0\t100\nb\t0\t150\n"
    assert first_bins_bed({"a": 1000, "b": 1000}, 4) == "a\t0\t100\n"


def test_a_target_that_is_not_in_the_tracks_is_refused(mini_pilot, tmp_path):
    with pytest.raises(PredictdInputError, match="holdout"):
        prepare_problem(tmp_path, mini_pilot, targets=("E003:H3K4me3", "E017:H3K27me3", "E065:H3K36me3",
                                                        "E116:H3K9me3", "E999:H3K4me1"))
