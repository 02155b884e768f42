"""The fitted side of a cross-validated run: PREDICTD's ensemble of the fold models, and what it scores.

Every observed experiment is imputed by the models whose test fold holds it (they never saw it) and
scored; holdout targets and pairs never measured are imputed by every model.
"""

from __future__ import annotations

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.crossval.fold_models import load_fold_models, model_columns, model_name, plan_folds
from predictd_core.crossval.folds import Folds
from predictd_core.impute.ensemble import Ensemble, EnsembleMember
from predictd_core.impute.trained_run import TrainedRun
from predictd_core.model.factors import Layout
from predictd_core.store.signal_store import SignalStore
from predictd_core.train.columns import holdout_targets, input_columns
from predictd_core.train.estimator import Predictd


def cv_ensemble(config: RunConfig, store: SignalStore, folds: Folds,
                models: dict[tuple[int, int], Predictd]) -> Ensemble:
    """PREDICTD's ensemble: test-fold experiments from their fold's models, every other pair from all.

    Each member's genome factors come from the experiments it may see: all but its test fold and the
    holdout targets.
    """
    layout = Layout.from_experiments(store.experiments)
    fold_of_pair = np.full(len(layout.cells) * len(layout.assays), -1)
    columns = input_columns(config, store)
    fold_of_pair[layout.cell_of[columns] * len(layout.assays) + layout.assay_of[columns]] = folds.test_fold
    members, weights = [], []
    for (i, j), model in sorted(models.items()):
        _, _, test = model_columns(config, store, folds, i, j)
        members.append(EnsembleMember(model_name(i, j), model.factors_, np.setdiff1d(columns, test),
                                      model.train_columns_))
        weights.append((fold_of_pair == i) | (fold_of_pair == -1))
    ridges = {model.ridge_ for model in models.values()}
    if len(ridges) != 1:
        raise ValueError(f"fold models disagree on the genome ridge: {sorted(ridges)}")
    return Ensemble(layout, ridges.pop(), tuple(members), np.array(weights))


def test_fold_targets(config: RunConfig, store: SignalStore, folds: Folds) -> list[tuple[int, str]]:
    """Scored experiments: every test-fold experiment, then the holdout targets, as (store column, kind)."""
    columns = input_columns(config, store)
    return [(int(k), "test-fold") for k in columns[folds.test_fold >= 0]] + holdout_targets(config, store)


def cv_run(config: RunConfig, store: SignalStore) -> TrainedRun:
    """The run's folds (``OUTPUT/folds.json``) and every fold model, trained for this config (a missing or
    stale one is an error naming its folder and the fix), as PREDICTD's ensemble; with the members' spread
    when ``config.cv.spread``."""
    folds = plan_folds(config, store)
    models = load_fold_models(config, store, folds)
    return TrainedRun(cv_ensemble(config, store, folds, models),
                      {model_name(i, j): model for (i, j), model in models.items()},
                      test_fold_targets(config, store, folds), config.cv.spread)
