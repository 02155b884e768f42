"""The refinement stage for a whole ensemble: sampled from the store, fitted per set of ensemble members,
applied chunk by chunk (:mod:`predictd_core.impute.refine` describes the stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from predictd_core.impute.ensemble import Ensemble, left_out_chunk
from predictd_core.impute.refine.features import quantile_tables
from predictd_core.impute.refine.regression import REGRESSORS, Refiner, fit_refiner
from predictd_core.impute.refine.validation import BlendValidation, choose_blend
from predictd_core.model.settings import RefineSettings
from predictd_core.store.signal_store import SignalStore, evenly_spread, read_signal_rows

SAMPLE_VALUES = 1 << 24  # input values (bins x inputs) the stage is fitted on at most: a ridge of ~100 features
# per assay needs no more, and at Roadmap scale (1,014 inputs) ``sample_bins`` alone would hold gigabytes
PAIRS_PER_PRODUCT = 64  # pairs whose ridges one product computes: three float64 columns a pair beside the chunk
SAMPLE_STRETCHES = 4  # a sample smaller than this many chunks still comes from as many places in the genome


@dataclass(frozen=True)
class Refinement:
    """The stage for a whole ensemble: one :class:`Refiner` per distinct set of members a pair is imputed by
    (the members' inputs are the refiner's inputs; their imputation is the tensor it is mixed with).

    Attributes
    ----------
    refiners : tuple of Refiner
    refiner_of_pair : ndarray of int, shape (n_pairs,)
        Which refiner a pair (cell-major) is imputed with; -1: the tensor ensemble's value stands.
    """

    refiners: tuple[Refiner, ...]
    refiner_of_pair: np.ndarray

    def record(self) -> list[dict]:
        """One JSON-ready entry per refiner: its ``inputs`` and ``validated`` experiments (``"CELL:ASSAY"``),
        the ``regressor``, ``blend``, ``tensor`` share and number of nearest cells (``neighbours``) it uses, the
        largest smallest gain of each regressor tried (``regressors``), the held-out loss with each number of
        neighbours tried (``neighbour_losses``), the cells' ``scale`` model and each model's held-out error
        (``scale_losses``), the ``validation`` table (:class:`BlendValidation`; empty when they were
        given) and the ``refined`` pairs (``"CELL:ASSAY"``) it imputes."""
        entries = []
        for r, refiner in enumerate(self.refiners):
            layout = refiner.layout
            validation = refiner.validation or BlendValidation(refiner.blend, refiner.tensor, (), (),
                                                               refiner.regressor, neighbours=refiner.neighbours)
            entries.append({
                "inputs": list(layout.column_names(refiner.inputs)),
                "regressor": refiner.regressor,
                "regressors": dict(validation.gains),
                "blend": refiner.blend,
                "tensor": refiner.tensor,
                "neighbours": refiner.neighbours,
                "neighbour_losses": {str(count): loss for count, loss in validation.neighbour_losses.items()},
                "scale": validation.scale,
                "scale_losses": dict(validation.scale_losses),
                "validated": list(layout.column_names(validation.tracks)),
                "validation": list(validation.table),
                "refined": [layout.pair_name(*divmod(int(p), len(layout.assays)))
                            for p in np.flatnonzero(self.refiner_of_pair == r)],
            })
        return entries

    def apply(self, Y: np.ndarray, tensor: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """The chunk's imputation of ``pairs``, arcsinh: ``tensor`` (the ensemble's columns for the same
        pairs) with every refinable pair's column overwritten in place by its refined value. Returns
        ``tensor``: a Roadmap chunk's 3,048 columns are too large to copy."""
        out = tensor
        # every refiner reads its inputs column by column: one column-major copy of the chunk serves them all (a
        # row-major chunk's column is a gather of one value per row), and where each column's values fall among its
        # quantile knots is found once
        Y, segments = np.asfortranarray(Y), {}
        for r, refiner in enumerate(self.refiners):
            mine = np.flatnonzero(self.refiner_of_pair[pairs] == r)
            if mine.size == 0:
                continue
            features = refiner.features(Y, segments)
            for columns in whole_cell_batches(mine, pairs[mine] // len(refiner.layout.assays)):
                cells, assays = np.divmod(pairs[columns], len(refiner.layout.assays))
                out[:, columns] = refiner.predict(features, cells, assays, tensor[:, columns])
        return out


def whole_cell_batches(columns: np.ndarray, cells: np.ndarray, size: int = PAIRS_PER_PRODUCT) -> list[np.ndarray]:
    """``columns`` (of pairs of ``cells``) in batches of whole cells, cell by cell, each at most ``size`` columns
    unless one cell alone has more: a cell's own windowed tracks, a large part of a ridge's application, are
    then computed once a chunk, where a cut through a cell computes them for both parts."""
    order = np.argsort(cells, kind="stable")
    columns, cells = columns[order], cells[order]
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    ends = np.r_[starts[1:], cells.size]
    batches, lo = [], 0
    for start, end in zip(starts, ends):
        if end - lo > size and start > lo:
            batches.append(columns[lo:start])
            lo = start
    if cells.size:
        batches.append(columns[lo:])
    return batches


def sample_stretches(store: SignalStore, sample_bins: int) -> list[np.ndarray]:
    """Stretches of the store's bins spread evenly over the genome, about ``sample_bins`` bins in all, fewer
    when that would hold more than :data:`SAMPLE_VALUES` values: whole chunks, or the middle of
    :data:`SAMPLE_STRETCHES` or more chunks when the sample is smaller than that many chunks."""
    sample_bins = max(1, min(sample_bins, SAMPLE_VALUES // store.n_experiments))
    count = min(store.n_chunks, max(SAMPLE_STRETCHES, -(-sample_bins // store.chunk_bins)))
    picks = evenly_spread(store.n_chunks, count)
    length = -(-sample_bins // picks.size)
    stretches = []
    for chunk in picks:
        lo, hi = store.chunk_bounds(int(chunk))
        start = lo + max(0, (hi - lo - length) // 2)
        stretches.append(read_signal_rows(store.path, start, min(hi, start + length)))
    return stretches


def fit_refinement(store: SignalStore, ensemble: Ensemble, settings: RefineSettings,
                   progress: Callable[[int, int], None] | None = None) -> Refinement:
    """Fit one refiner per distinct set of members that imputes a pair of ``ensemble`` (its inputs: the
    members' :meth:`~predictd_core.impute.ensemble.Ensemble.seen_columns`) on a sample of ``store``;
    ``progress(pairs done, pairs)`` after each pair (minutes on a large ensemble)."""
    chunks = sample_stretches(store, settings.sample_bins)
    regressors = REGRESSORS if settings.regressor == "auto" else (settings.regressor,)
    layout, n_assays = ensemble.layout, len(ensemble.layout.assays)
    refiners, index = [], {}
    refiner_of_pair = np.full(ensemble.n_pairs, -1)
    for pair in range(ensemble.n_pairs):
        members = ensemble.weights[:, pair]
        key = members.tobytes()
        if key not in index:
            inputs = ensemble.seen_columns(*divmod(pair, n_assays))
            tables = quantile_tables(chunks, inputs)
            unseen = [left_out_chunk(chunk, ensemble, members, inputs, unseen_only=True) for chunk in chunks]
            stacked = ([left_out_chunk(chunk, ensemble, members, inputs) for chunk in chunks]
                       if "gbt" in regressors else None)  # the trees' feature: every input has one
            validation = choose_blend(chunks, layout, inputs, settings.ridge, settings.inner_tracks, unseen, tables,
                                      regressors, stacked, settings.neighbours)
            index[key] = len(refiners)
            refiners.append(fit_refiner(chunks, layout, inputs, settings.ridge, validation=validation, tables=tables,
                                        left_out=stacked))
        refiner = refiners[index[key]]
        if refiner.refinable(*divmod(pair, n_assays)):
            refiner_of_pair[pair] = index[key]
        if progress is not None:
            progress(pair + 1, ensemble.n_pairs)
    return Refinement(tuple(refiners), refiner_of_pair)
