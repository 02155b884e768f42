"""A run's store columns by role: the configured holdout targets, and the inputs every model may see.

Holdout targets (``config.holdout``, ``CELL:ASSAY`` names) are never trained on and always scored; every
other observed experiment is an input: ``predictd run``'s one model trains on them, ``predictd cv``
deals them into folds.
"""

from __future__ import annotations

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.errors import PredictdInputError
from predictd_core.store.signal_store import SignalStore


def holdout_indices(config: RunConfig, names: list[str]) -> np.ndarray:
    """Positions in ``names`` (experiment names, ``CELL:ASSAY``) of the configured holdout targets, in
    ``config.holdout`` order; a target that is not among them is an error naming it."""
    columns = []
    for index, target in enumerate(config.holdout):
        if target not in names:
            raise PredictdInputError(config.source, f"holdout[{index}]",
                                     f"unknown holdout target {target!r}: not an experiment of {config.tracks}")
        columns.append(names.index(target))
    return np.array(columns, dtype=np.int64)


def holdout_columns(config: RunConfig, store: SignalStore) -> np.ndarray:
    """Store columns of the configured holdout targets; an unknown target is an error."""
    return holdout_indices(config, [e.name for e in store.experiments])


def input_columns(config: RunConfig, store: SignalStore) -> np.ndarray:
    """Store columns the model may see: every observed experiment but the held-out ones."""
    return np.setdiff1d(np.arange(store.n_experiments), holdout_columns(config, store))


def holdout_targets(config: RunConfig, store: SignalStore) -> list[tuple[int, str]]:
    """The holdout targets as scored experiments: (store column, ``"holdout"``)."""
    return [(int(k), "holdout") for k in holdout_columns(config, store)]
