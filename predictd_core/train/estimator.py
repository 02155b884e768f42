"""The PREDICTD estimator: fit cell, assay and bias parameters; impute any (cell, assay) pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from predictd_core.engine.base import Engine
from predictd_core.io import join_location, read_bytes, write_atomic
from predictd_core.model.factors import CellAssayFactors, Layout, initial_factors
from predictd_core.model.settings import ModelSettings
from predictd_core.solvers import als
from predictd_core.solvers.als_fit import fit_als
from predictd_core.solvers.nadam import fit_nadam

ProgressFn = Callable[[dict[str, Any]], None]


class Predictd:
    """PREDICTD's tensor model: ``mu + sum_k C[c,k] A[a,k] G[i,k] + b_c + b_a + b_i`` on arcsinh signal.

    Parameters
    ----------
    settings : ModelSettings
        Rank, solver, penalties, stopping rules (validated by pydantic).

    Attributes
    ----------
    factors_ : CellAssayFactors
        The iterate with the lowest validation MSE.
    rank_ : int
    history_ : list of dict
        One row per sweep: iteration, objective, train_mse, valid_mse, seconds.
    best_iteration_ : int
    ridge_ : float
        The genome-factor ridge used by every G step (PREDICTD's ri2).

    Examples
    --------
    >>> import tempfile
    >>> from predictd_core import Predictd, simulate_compendium
    >>> from predictd_core.engine import LocalEngine
    >>> from predictd_core.model.factors import Layout
    >>> from predictd_core.model.settings import ModelSettings
    >>> from predictd_core.store.signal_store import SignalStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> simulated = simulate_compendium(tmp.name, n_cells=4, n_assays=3, n_bins=1000, signal_format="store")
    >>> store = SignalStore.open(simulated.store)
    >>> layout = Layout.from_experiments(store.experiments)   # cell type and assay of each store column
    >>> model = Predictd(ModelSettings(rank=3, max_iters=20)).fit(LocalEngine(store), layout,
    ...                                                           train_columns=range(10), valid_columns=[10, 11])
    >>> model.rank_, len(model.history_), model.best_iteration_
    (3, 13, 3)
    >>> round(min(row["valid_mse"] for row in model.history_), 4)
    0.1882
    >>> model.save(tmp.name + "/model")
    >>> Predictd.load(tmp.name + "/model").factors_.C.shape   # cell types x rank
    (4, 3)
    """

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()

    def fit(self, engine: Engine, layout: Layout, train_columns: np.ndarray, valid_columns: np.ndarray,
            progress: ProgressFn | None = None) -> "Predictd":
        """Fit on the store columns ``train_columns``; stop and select on ``valid_columns``.

        Parameters
        ----------
        engine : Engine
            Maps solver functions over the store's chunks.
        layout : Layout
            Cell and assay of every store column.
        train_columns, valid_columns : ndarray of int
            Disjoint store columns. Columns in neither (held-out targets) are never read.
        progress : callable, optional
            Called with each history row.
        """
        train_columns = np.asarray(train_columns, dtype=np.int64)
        valid_columns = np.asarray(valid_columns, dtype=np.int64)
        if train_columns.size == 0:
            raise ValueError("no training experiments: the compendium is empty once held-out tracks are removed")
        if np.intersect1d(train_columns, valid_columns).size:
            raise ValueError("training and validation experiments overlap")
        self.rank_ = self.settings.resolved_rank(train_columns.size, len(layout.assays))
        self.ridge_ = self.settings.penalties.ri2
        self.layout_ = layout
        moments = engine.map_reduce(als.column_moments, None)
        self.n_bins_ = int(engine.n_bins)
        start = initial_factors(layout, self.rank_, self.settings.seed, moments[0], moments[1], train_columns)
        if self.settings.solver == "als":
            fitted = fit_als(engine, start, layout, train_columns, valid_columns, self.settings, progress)
        else:
            fitted = fit_nadam(engine, start, layout, train_columns, valid_columns, self.settings, self.n_bins_,
                               progress)
        self.factors_, self.history_, self.best_iteration_ = fitted
        self.train_columns_, self.valid_columns_ = train_columns, valid_columns
        return self

    def scaled_penalties(self) -> als.ScaledPenalties:
        """The settings' penalties scaled to this model's rank and layout, as ALS and extension use them."""
        return als.ScaledPenalties.from_settings(self.settings, self.rank_, len(self.layout_.cells),
                                                 len(self.layout_.assays))

    def predict_chunk(self, Y: np.ndarray, input_columns: np.ndarray, out_cells: np.ndarray,
                      out_assays: np.ndarray) -> np.ndarray:
        """Imputed arcsinh signal of a chunk for the requested pairs, from the given input columns."""
        return als.predict(Y[:, input_columns], self.factors_, self.layout_.cell_of[input_columns],
                           self.layout_.assay_of[input_columns], out_cells, out_assays, self.ridge_)

    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write ``factors.npz`` and ``model.json`` (settings, layout, columns, history) into ``folder``.

        ``folder`` is local or a URL (``s3://``). Each file is written atomically, ``model.json`` last:
        a folder whose ``model.json`` can be read holds a whole model.
        """
        description = {
            "settings": self.settings.model_dump(), "rank": self.rank_, "ridge": self.ridge_,
            "cells": list(self.layout_.cells), "assays": list(self.layout_.assays),
            "cell_of": self.layout_.cell_of.tolist(), "assay_of": self.layout_.assay_of.tolist(),
            "train_columns": self.train_columns_.tolist(), "valid_columns": self.valid_columns_.tolist(),
            "n_bins": self.n_bins_, "best_iteration": self.best_iteration_, "history": self.history_,
            **(extra or {}),
        }
        write_atomic(join_location(folder, "factors.npz"), self.factors_.to_bytes())
        write_atomic(join_location(folder, "model.json"), json.dumps(description, indent=2).encode())

    @staticmethod
    def describe(folder: str | Path) -> dict[str, Any]:
        """The ``model.json`` of a saved model (settings, layout, history and the ``extra`` given to save).

        ``folder`` is local or a URL. Raises FileNotFoundError when ``folder`` holds no model.
        """
        return json.loads(read_bytes(join_location(folder, "model.json")))

    @classmethod
    def load(cls, folder: str | Path) -> "Predictd":
        """Read a model written by :meth:`save` (local or at a URL)."""
        description = cls.describe(folder)
        model = cls(ModelSettings(**description["settings"]))
        model.rank_, model.ridge_ = description["rank"], description["ridge"]
        model.layout_ = Layout(tuple(description["cells"]), tuple(description["assays"]),
                               np.array(description["cell_of"], dtype=np.int64),
                               np.array(description["assay_of"], dtype=np.int64))
        model.train_columns_ = np.array(description["train_columns"], dtype=np.int64)
        model.valid_columns_ = np.array(description["valid_columns"], dtype=np.int64)
        model.n_bins_, model.best_iteration_ = description["n_bins"], description["best_iteration"]
        model.history_ = description["history"]
        model.factors_ = CellAssayFactors.from_bytes(read_bytes(join_location(folder, "factors.npz")))
        return model
