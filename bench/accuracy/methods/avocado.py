"""Avocado (Schreiber et al. 2020), PyPI ``avocado-epigenome`` 0.4.0, on Keras 3 with the PyTorch CPU backend.

Settings: the architecture of Avocado's own tutorial on this very data (the 5 x 5 Roadmap pilot,
``Avocado Training Demo.ipynb`` of jmschrei/avocado): 1 hidden layer of 128 nodes, 32 cell-type and
24 assay factors, 10 / 20 / 30 genome factors at 25 bp / 250 bp / 5 kb, batches of 10,000. The
package's defaults (2 x 2048 nodes, 256 assay factors, batches of 40,000, 1,014 tracks) are the
manuscript's Roadmap-wide model for GPUs, far too large for 20 tracks on 2 cores. As in the
tutorial, an epoch is one sequential pass over the bins (``ceil(n_bins / batch_size)`` batches,
each bin seen once with one random training track), so ``epochs`` passes show each training value
about ``epochs / 20`` times; the default of 20 shows each of the 11 M training values once on
average, the most this benchmark can afford on 2 shared cores (the tutorial itself trains 1 epoch).

Keras 3 compatibility, applied here and not in site-packages: Avocado 0.4.0 trains with
``Model.fit_generator(generator, steps, epochs, workers=1, pickle_safe=True, ...)``, which Keras 3
removed; :class:`_Keras3Avocado` gives each model it builds a ``fit_generator`` that calls
``Model.fit`` with the same generator, steps and epochs (the multiprocessing flags have no Keras 3
equivalent and are dropped). Avocado's ``load`` (which would need ``compile=False``) is not used:
the model is trained and used in one process.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.accuracy.methods.errors import MethodUnavailable
from bench.accuracy.problem import Problem

TUTORIAL_ARCHITECTURE = {"n_layers": 1, "n_nodes": 128, "n_celltype_factors": 32, "n_assay_factors": 24,
                         "n_25bp_factors": 10, "n_250bp_factors": 20, "n_5kbp_factors": 30}
INSTALL_HINT = "install the bench extra: bash bench/accuracy/install.sh"


def fit_generator_shim(model):
    """A Keras 2 style ``fit_generator`` for a Keras 3 ``model``, as Avocado 0.4.0 calls it."""

    def fit_generator(generator, steps_per_epoch, epochs, workers=None, pickle_safe=None, **kwargs):
        return model.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, **kwargs)

    return fit_generator


def _keras3_avocado():
    """Avocado's model class, patched for Keras 3 (imported here: torch and keras are optional)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")  # read when keras is first imported
    try:
        import keras
        from avocado import Avocado
    except ImportError as error:
        raise MethodUnavailable(f"avocado: {error}; {INSTALL_HINT}") from None

    class _Keras3Avocado(Avocado):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model.fit_generator = fit_generator_shim(self.model)

    return keras, _Keras3Avocado


@dataclass(frozen=True)
class AvocadoMethod:
    """Avocado trained on the 20 training tracks (arcsinh), predicting the 5 targets."""

    epochs: int = 20
    batch_size: int = 10_000
    seed: int = 0
    name: str = "avocado"

    def check(self) -> None:
        """MethodUnavailable unless avocado-epigenome, keras and a backend import."""
        _keras3_avocado()

    def impute(self, problem: Problem, work: Path) -> dict[str, np.ndarray]:
        """Fit on the training tracks, predict every target over all bins (arcsinh); ``work`` is not used."""
        keras, Avocado = _keras3_avocado()
        keras.utils.set_random_seed(self.seed)  # python, numpy (Avocado's batch sampling) and torch
        layout = problem.layout
        tracks = problem.training_tracks()
        for (cell, assay), values in tracks.items():
            if np.isnan(values).any():
                raise ValueError(f"avocado: {cell}:{assay} has bins without data; Avocado needs complete tracks")
        model = Avocado(list(layout.cells), list(layout.assays), n_genomic_positions=problem.n_bins,
                        batch_size=self.batch_size, **TUTORIAL_ARCHITECTURE)
        model.fit({key: values.astype(np.float32) for key, values in tracks.items()}, n_epochs=self.epochs,
                  epoch_size=math.ceil(problem.n_bins / self.batch_size), verbose=2)
        return {target.name: model.predict(target.cell_type, target.assay).astype(np.float64)
                for target in problem.targets}
