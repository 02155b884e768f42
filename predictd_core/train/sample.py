"""The bins a model trains on: at most ``model.train_bins``, in whole chunks spread evenly over the genome.

Training fits the cell and assay factors; every bin's genome factors are solved again at imputation from
the bin's own signal (C and A fixed), so a model trained on a sample still imputes the whole genome. This
is PREDICTD's protocol (its models saw ~1% of hg19), and it keeps a whole-genome model's training cost that
of 1.31 M bins.
"""

from __future__ import annotations

from predictd_core.config import RunConfig
from predictd_core.engine import Engine, make_engine
from predictd_core.store.signal_store import SignalStore


def training_chunks(config: RunConfig, store: SignalStore) -> tuple[int, ...]:
    """The store chunks a model of ``config`` trains on (every chunk when the store holds at most
    ``config.model.train_bins`` bins)."""
    return store.spread_chunks(config.model.train_bins)


def training_engine(config: RunConfig, store: SignalStore) -> Engine:
    """The engine of ``config`` over the chunks models train on (:func:`training_chunks`)."""
    return make_engine(config.engine, store, training_chunks(config, store))
