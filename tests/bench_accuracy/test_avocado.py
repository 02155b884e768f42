"""Avocado's Keras 3 shim, and (when the bench extra is installed) a small real fit."""

import importlib.util

import numpy as np
import pytest

from bench.accuracy.methods.avocado import AvocadoMethod, fit_generator_shim
from bench.accuracy.problem import prepare_problem

avocado_installed = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("avocado", "keras", "torch")),
    reason="the bench extra (avocado-epigenome, keras, torch) is not installed (bench/accuracy/install.sh)")


class _RecordingModel:
    def __init__(self):
        self.calls = []

    def fit(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return "history"


def test_the_shim_turns_avocados_fit_generator_call_into_keras_3_fit():
    model = _RecordingModel()
    generator = iter(())
    # As avocado 0.4.0's Avocado.fit calls it (positional steps and epochs, Keras 2 multiprocessing flags).
    result = fit_generator_shim(model)(generator, 57, 20, workers=1, pickle_safe=True, verbose=2, callbacks=None)
    assert result == "history"
    assert model.calls == [((generator,), {"steps_per_epoch": 57, "epochs": 20, "verbose": 2, "callbacks": None})]


@avocado_installed
def test_avocado_learns_the_targets_of_the_mini_pilot(mini_pilot, tmp_path):
    problem = prepare_problem(tmp_path, mini_pilot)
    tracks = AvocadoMethod(epochs=40, batch_size=problem.n_bins).impute(problem, tmp_path)
    observed = problem.observed()
    assert sorted(tracks) == sorted(t.name for t in problem.targets)
    for name, track in tracks.items():
        assert track.shape == (problem.n_bins,) and np.isfinite(track).all()
        assert np.corrcoef(track, observed[name])[0, 1] > 0.3, name  # it saw the planted genome signal
