"""The methods compared: each imputes the 5 targets as arrays on the store's bins (arcsinh).

A method has a ``name``, ``check()`` (raises :class:`MethodUnavailable` or ``PredictdInputError``
before any work when it cannot run) and ``impute(problem, work) -> {"CELL:ASSAY": ndarray of shape
(n_bins,)}``, given a :class:`~bench.accuracy.problem.Problem` and an empty folder of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from bench.accuracy.methods.avocado import AvocadoMethod
from bench.accuracy.methods.baseline import SameAssayAverage
from bench.accuracy.methods.chromimpute import ChromImputeMethod
from bench.accuracy.methods.errors import MethodUnavailable
from bench.accuracy.methods.predictd import PredictdRun
from bench.accuracy.problem import Problem

__all__ = ["DEFAULT_METHODS", "METHODS", "Method", "MethodUnavailable", "PEER_MEAN", "PEER_MEAN_OF", "make_method",
           "peer_mean"]


class Method(Protocol):
    name: str

    def check(self) -> None: ...

    def impute(self, problem: Problem, work: Path) -> dict[str, np.ndarray]: ...


# predictd-2018: the faithful PREDICTD mode (model preset predictd-2018: NAdam-SGD at rank 100) in PREDICTD's
# protocol: the targets are the test fold, imputed by the mean of 8 models, each validating on an eighth of the
# training tracks.
# predictd-gbt / predictd-auto: predictd with the refinement's trees (model.refine.regressor gbt), or with the
# regressor its inner validation prefers (auto); predictd-no-neighbours: without the most similar cells' tracks
# as features (model.refine.neighbours 0); variants of the default, not run unless named.
METHODS = ("predictd", "predictd-2018", "baseline", "avocado", "chromimpute", "predictd-gbt", "predictd-auto",
           "predictd-no-neighbours")
DEFAULT_METHODS = METHODS[:5]
PREDICTD_MODELS = 8  # PREDICTD's validation folds per test fold


# Not a method of its own: whenever both peers run, the mean of their imputations (arcsinh) is scored beside them,
# the combination of the two that the acceptance names.
PEER_MEAN_OF = ("avocado", "chromimpute")
PEER_MEAN = "avocado+chromimpute"


def peer_mean(imputations: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per target, the mean of the :data:`PEER_MEAN_OF` methods' imputations (NaN where either has none)."""
    first, second = (imputations[name] for name in PEER_MEAN_OF)
    return {target: (first[target] + second[target]) / 2 for target in first}


def make_method(name: str, avocado_epochs: int = AvocadoMethod.epochs) -> Method:
    """The method called ``name`` (one of :data:`METHODS`)."""
    factories = {
        "predictd": lambda: PredictdRun(),
        "predictd-2018": lambda: PredictdRun("predictd-2018", {"preset": "predictd-2018"}, ensemble=PREDICTD_MODELS),
        "predictd-gbt": lambda: PredictdRun("predictd-gbt", {"refine": {"regressor": "gbt"}}),
        "predictd-auto": lambda: PredictdRun("predictd-auto", {"refine": {"regressor": "auto"}}),
        "predictd-no-neighbours": lambda: PredictdRun("predictd-no-neighbours", {"refine": {"neighbours": 0}}),
        "baseline": lambda: SameAssayAverage(),
        "avocado": lambda: AvocadoMethod(epochs=avocado_epochs),
        "chromimpute": lambda: ChromImputeMethod(),
    }
    if name not in factories:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    return factories[name]()
