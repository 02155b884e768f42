"""A run's fold models: its folds file, and one model per (test fold, validation fold), trained, found and extended.

Layout under ``config.output`` (a local folder or a URL: every read and write goes through
``predictd_core.io``)::

    folds.json                    which experiments each model tests, validates on and trains on
    models/test{i}-valid{j}/      one fitted model each: factors.npz, model.json (config digests,
                                  folds, seed, iteration log)

Configured holdout targets are outside the folds: no model trains on them, every model imputes them.
Each model is an independent job (``predictd train --test-fold i --valid-fold j``), so a cluster can
run them side by side; ``predictd cv`` runs the missing ones in turn and reuses those already fitted
for the same training digest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.crossval.dealing import extend_folds, make_folds
from predictd_core.crossval.folds import Folds
from predictd_core.crossval.folds_file import load_folds, save_folds
from predictd_core.engine.base import Engine
from predictd_core.errors import PredictdInputError
from predictd_core.io import is_file, join_location
from predictd_core.model.factors import Layout
from predictd_core.model.settings import ModelSettings
from predictd_core.progress import Progress
from predictd_core.store.signal_store import SignalStore
from predictd_core.train.columns import input_columns
from predictd_core.train.estimator import Predictd
from predictd_core.train.extend import extend_model
from predictd_core.train.run_step import model_identity, sweep_progress

FOLDS_FILE = "folds.json"
MODELS_FOLDER = "models"


def model_name(test_fold: int, valid_fold: int) -> str:
    """``"test{i}-valid{j}"``: the folder and report name of model (i, j)."""
    return f"test{test_fold}-valid{valid_fold}"


def model_folder(config: RunConfig, test_fold: int, valid_fold: int) -> str | Path:
    """Where model (i, j) of ``config``'s run is saved, and where ``predictd cv`` looks for it."""
    return join_location(config.output, MODELS_FOLDER, model_name(test_fold, valid_fold))


def folds_path(config: RunConfig) -> str | Path:
    """``OUTPUT/folds.json``."""
    return join_location(config.output, FOLDS_FILE)


def plan_folds(config: RunConfig, store: SignalStore) -> Folds:
    """The run's folds: read ``OUTPUT/folds.json`` when it exists, else deal them and save the file.

    An existing file must describe this store's experiments with the configured scheme (n_test,
    n_valid, seed); anything else is an error naming it, because fold models trained on other
    folds cannot be mixed.
    """
    columns = input_columns(config, store)
    layout = _sub_layout(store, columns)
    path = folds_path(config)
    if is_file(path):
        try:
            folds = load_folds(path, layout)
        except PredictdInputError as error:
            if error.field != "experiments":
                raise
            raise PredictdInputError(error.source, error.field, f"{error.message} (tracks added since the folds were "
                                     "made: run predictd extend; otherwise remove folds.json and models/)") from None
        scheme = (folds.n_test, folds.n_valid, folds.seed, folds.tries)
        wanted = (config.cv.n_test, config.cv.n_valid, config.cv.seed, config.cv.tries)
        if scheme != wanted:
            raise PredictdInputError(path, "cv", f"folds were dealt as n_test, n_valid, seed, tries = {scheme}, "
                                     f"the config asks for {wanted}; remove the file (and models/) to deal again")
        return folds
    try:
        folds = make_folds(layout, config.cv.n_test, config.cv.n_valid, config.cv.seed, config.cv.tries)
    except PredictdInputError as error:
        raise PredictdInputError(config.source, f"cv.{error.field}", error.message) from None
    save_folds(folds, path)
    return folds


def _sub_layout(store: SignalStore, columns: np.ndarray) -> Layout:
    return Layout.from_experiments([store.experiments[k] for k in columns])


def model_columns(config: RunConfig, store: SignalStore, folds: Folds, test_fold: int, valid_fold: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Store columns (train, valid, test) of model (i, j): the folds' indices mapped onto the store."""
    columns = input_columns(config, store)
    try:
        train, valid, test = folds.columns(test_fold, valid_fold)
    except IndexError as error:
        raise PredictdInputError(folds_path(config), "test_fold/valid_fold", str(error)) from None
    return columns[train], columns[valid], columns[test]


def fold_settings(config: RunConfig, test_fold: int, valid_fold: int) -> ModelSettings:
    """Model settings of model (i, j): the config's, with a seed of its own so the ensemble's starts differ."""
    return config.model.model_copy(update={"seed": config.model.seed + 1000 * test_fold + valid_fold})


def train_fold(config: RunConfig, store: SignalStore, engine: Engine, folds: Folds, test_fold: int, valid_fold: int,
               progress: Progress | None = None, folder: str | Path | None = None) -> Predictd:
    """Fit model (i, j) on its training columns, stop on its validation fold, save it as an artifact in
    ``folder`` (local or a URL; default :func:`model_folder`, where ``predictd cv`` finds it; a cloud
    fold job writes each attempt to a folder of its own, and the succeeded one is copied there)."""
    train, valid, test = model_columns(config, store, folds, test_fold, valid_fold)
    settings = fold_settings(config, test_fold, valid_fold)
    name = model_name(test_fold, valid_fold)
    model = Predictd(settings)
    model.fit(engine, Layout.from_experiments(store.experiments), train, valid,
              progress=None if progress is None else sweep_progress(progress, name, settings.max_iters))
    _save_fold_model(config, model, test_fold, valid_fold, test, folder=folder)
    return model


def train_missing(config: RunConfig, store: SignalStore, engine: Engine, folds: Folds,
                  progress: Progress | None = None) -> None:
    """Train, one after another, every model of ``folds`` not yet trained for this config (:func:`is_trained`);
    those already fitted are kept."""
    for i, j in folds.models():
        if not is_trained(config, store, i, j):
            train_fold(config, store, engine, folds, i, j, progress)


def _save_fold_model(config: RunConfig, model: Predictd, test_fold: int, valid_fold: int, test_columns: np.ndarray,
                     *, folder: str | Path | None = None, **extra) -> None:
    """Write model (i, j) with what identifies it (:func:`~predictd_core.train.run_step.model_identity`: config
    digests, folds, test columns and seed) and ``extra``, into ``folder`` (default :func:`model_folder`)."""
    identity = model_identity(config, model, test_fold=test_fold, valid_fold=valid_fold,
                              test_columns=test_columns.tolist())
    model.save(folder or model_folder(config, test_fold, valid_fold), extra={**identity, **extra})


def is_trained(config: RunConfig, store: SignalStore, test_fold: int, valid_fold: int) -> bool:
    """Model (i, j) exists, was fitted for this config's training digest and knows the store's experiments.

    The digest names the tracks table, not its rows: a table that gained tracks since (see
    ``predictd extend``) leaves the model stale too.
    """
    try:
        description = Predictd.describe(model_folder(config, test_fold, valid_fold))
    except FileNotFoundError:
        return False
    layout = Layout.from_experiments(store.experiments)
    return (description.get("training_sha256") == config.training_digest()
            and (description["cells"], description["assays"]) == (list(layout.cells), list(layout.assays))
            and (description["cell_of"], description["assay_of"])
            == (layout.cell_of.tolist(), layout.assay_of.tolist()))


def load_fold_models(config: RunConfig, store: SignalStore, folds: Folds) -> dict[tuple[int, int], Predictd]:
    """Every model of the scheme; a missing or stale one is an error naming its folder and the fix."""
    models = {}
    for i, j in folds.models():
        folder = model_folder(config, i, j)
        if not is_trained(config, store, i, j):
            found = is_file(join_location(folder, "model.json"))
            state = "was trained for another config" if found else "is missing"
            raise PredictdInputError(folder, "model.json",
                                     f"model {model_name(i, j)} {state}; run predictd train --test-fold {i} "
                                     f"--valid-fold {j} (or predictd cv)")
        models[(i, j)] = Predictd.load(folder)
    return models


def require_folds(config: RunConfig) -> str | Path:
    """The folds file of a cross-validated output; without one there is nothing to extend."""
    path = folds_path(config)
    if not is_file(path):
        raise PredictdInputError(path, "folds", "nothing to extend: run predictd cv first")
    return path


def extend_fold_models(config: RunConfig, store: SignalStore, engine: Engine, progress: Progress | None = None
                       ) -> tuple[Folds, dict[tuple[int, int], Predictd]]:
    """Fit what the store's new experiments add to every fold model, without retraining the rest.

    The folds file keeps every old assignment and deals the new experiments into the same scheme;
    each model (i, j) then fits only the factor rows of new cell types and new assays (the others
    fixed) on its extended training columns. Models are written once every one is extended, the
    folds file last; running it again after an interruption is safe, because a model that already
    knows every cell type and assay has nothing new to fit.
    """
    path = require_folds(config)
    old = load_folds(path)
    columns = input_columns(config, store)
    names = [store.experiments[k].name for k in columns]
    try:
        folds = extend_folds(old, names)
    except PredictdInputError as error:  # name the file the user can act on
        source = config.tracks if error.field == "experiments" else path
        raise PredictdInputError(source, error.field, error.message) from None
    layout = Layout.from_experiments(store.experiments)
    extended = {}
    for i, j in folds.models():
        folder = model_folder(config, i, j)
        if not is_file(join_location(folder, "model.json")):
            raise PredictdInputError(folder, "model.json", f"model {model_name(i, j)} is missing; run predictd cv")
        train, valid, _ = (columns[k] for k in folds.columns(i, j))
        extended[(i, j)] = extend_model(Predictd.load(folder), engine, layout, train, valid)
        if progress is not None:
            progress("extend", len(extended), len(folds.models()))
    for (i, j), model in extended.items():
        _save_fold_model(config, model, i, j, columns[folds.test_fold == i], extended_from=len(old.experiments))
    save_folds(folds, path)
    return folds, extended
