"""The fitted side of a run, what imputation, scoring and the report work from; and ``predictd run``'s one
model as such a run (``predictd cv``'s is :func:`predictd_core.crossval.cv_run`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.impute.ensemble import Ensemble, EnsembleMember
from predictd_core.model.factors import Layout
from predictd_core.store.signal_store import SignalStore
from predictd_core.train.columns import holdout_targets, input_columns
from predictd_core.train.estimator import Predictd


@dataclass(frozen=True)
class TrainedRun:
    """The fitted side of a run: the ensemble that imputes, its models by name, what gets scored.

    Attributes
    ----------
    ensemble : Ensemble
    models : dict of str to Predictd
        ``"model"``, or each fold model by its name (``"test0-valid1"``).
    targets : list of (int, str)
        The scored experiments: (store column, kind), kind ``"test-fold"`` or ``"holdout"``.
    with_spread : bool
        Also write the ensemble members' spread beside the imputed tracks.
    """

    ensemble: Ensemble
    models: dict[str, Predictd]
    targets: list[tuple[int, str]]
    with_spread: bool


def single_model_ensemble(config: RunConfig, store: SignalStore, model: Predictd) -> Ensemble:
    """``predictd run``'s one model as an ensemble of one: it imputes every pair from the non-held-out tracks."""
    layout = Layout.from_experiments(store.experiments)
    n_pairs = len(layout.cells) * len(layout.assays)
    member = EnsembleMember("model", model.factors_, input_columns(config, store), model.train_columns_)
    return Ensemble(layout, model.ridge_, (member,), np.ones((1, n_pairs), dtype=bool))


def single_model_run(config: RunConfig, store: SignalStore, model: Predictd) -> TrainedRun:
    """``predictd run``'s fitted side: its one model as an ensemble of one, scored on the holdout targets."""
    return TrainedRun(single_model_ensemble(config, store, model), {"model": model}, holdout_targets(config, store),
                      with_spread=False)
