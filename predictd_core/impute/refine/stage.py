"""The refinement stage: each cell's own tracks sharpen the imputation of its missing assays.

The tensor model predicts a pair from factors shared by the whole grid, and on a small grid it
flattens peaks (``../shared/docs/predictd-reference.md``); the plain average of the same assay in
the other cells ranks peaks better but cannot see what is special about the cell. ChromImpute's
answer is a regression per target assay on local features of the cell's own tracks. This stage is
that idea, small and closed-form:

1. Every input track is *quantile-normalised* to its assay's reference distribution (the mean of the
   assay's quantile functions): sequencing depth and lab-to-lab scale no longer differ between cells.
2. For a pair (cell c, assay m), the features are the average of m over the other cells, and the
   cell's other assays (measured, or their own other-cell average where not), each as the bin's
   value and its mean over 9 and 81 bins, plus each other assay times the average (peaks shared by
   the cell's marks and the other cells). Windows stay inside the store's chunk.
3. One ridge per assay, fitted over the cells where the assay is measured, each cell's rows built
   without its own track in the average.
4. The refined value is ``blend * ridge + (1 - blend) * average``: the ridge wins the errors and the
   average keeps the peaks' ranks.
5. Back to the cell's own scale through the expected quantile function of (c, m): an additive
   cell + assay model of the measured tracks' quantile functions (a cell sequenced deeper has higher
   peaks in every assay).
6. Mixed with the tensor ensemble's imputation of the pair: ``(1 - tensor) * refined + tensor * ensemble``.
   On a small grid the tensor model flattens peaks and gets no share; on a grid of Roadmap's size it
   knows more than the other cells' average and the cell's few marks, and keeps the share it earns.

``blend`` and then ``tensor`` are chosen by inner validation: every measured track refitted without
itself (at most ``inner_tracks`` of them), its tensor imputation from genome factors solved without it
(:func:`~predictd_core.impute.ensemble.left_out_chunk`), to maximise the smallest share of the average
baseline's error that is closed, across the quality measures: the product's goal is to win every column.

Everything is fitted in the driver on stretches of the store spread evenly over the genome
(``sample_bins``, at most :data:`SAMPLE_VALUES` values); a pair is refined only when its assay is measured in at least two input cells
other than itself, else the tensor ensemble's value stands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Callable

import numpy as np

from predictd_core.evaluate.measures import lower_is_better, quality_measures
from predictd_core.impute.ensemble import Ensemble, left_out_chunk
from predictd_core.model.factors import Layout
from predictd_core.model.settings import RefineSettings
from predictd_core.store.signal_store import SignalStore, read_signal_rows

LEVELS = np.linspace(0.0, 1.0, 1001)
WINDOWS = (0, 4, 40)  # half-widths in bins: 25 bp, 225 bp and 2 kb means
BLENDS = np.round(np.linspace(0.0, 1.0, 11), 2)
TENSOR_SHARES = np.round(np.linspace(0.1, 1.0, 10), 2)  # tried at the best blend (0: that blend's own row)
SCORED = ("MSEglobal", "MSE1obs", "MSE1imp", "GWcorr", "Match1", "Catch1obs", "Catch1imp", "AucObs1", "AucImp1")
SAMPLE_VALUES = 1 << 24  # input values (bins x inputs) the stage is fitted on at most: a ridge of ~100 features
# per assay needs no more, and at Roadmap scale (1,014 inputs) ``sample_bins`` alone would hold gigabytes
SAMPLE_STRETCHES = 4  # a sample smaller than this many chunks still comes from as many places in the genome


def monotone_map(values: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise-linear map through points ``(xp, fp)`` with ``xp`` non-decreasing; tied ``xp`` (a track's
    many zero bins) map to the mean of their ``fp``, as ranks shared by ties would."""
    return np.interp(values, *monotone_knots(xp, fp))


def monotone_knots(xp: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct knots of :func:`monotone_map` and their targets, to map many arrays through them."""
    knots, inverse = np.unique(xp, return_inverse=True)
    return knots, np.bincount(inverse, weights=fp) / np.bincount(inverse)


def window_means(x: np.ndarray, half_width: int) -> np.ndarray:
    """Mean over ``[i - half_width, i + half_width]`` along axis 0, clipped at the array's ends."""
    if half_width == 0:
        return x
    n = x.shape[0]
    sums = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    lo = np.clip(np.arange(n) - half_width, 0, n)
    hi = np.clip(np.arange(n) + half_width + 1, 0, n)
    return (sums[hi] - sums[lo]) / (hi - lo).reshape((n,) + (1,) * (x.ndim - 1))


def n_features(n_assays: int) -> int:
    """Features per pair: the average at each window, each other assay at each window and times the
    average, and the intercept."""
    return len(WINDOWS) + (n_assays - 1) * (len(WINDOWS) + 1) + 1


class ChunkFeatures:
    """A normalised chunk of inputs, from which any pair's features are assembled (the module's step 2).

    Window means are linear, so the other-cell average of an assay at a window is the assay's windowed
    sum less the cell's own windowed track, over the count: the sums are windowed once per chunk, and
    a cell's own tracks once per cell, instead of every feature once per pair.

    Parameters
    ----------
    Z : ndarray of shape (n_bins, n_inputs)
        The inputs on their assays' reference scale.
    layout : Layout
    inputs : ndarray of int
        Store column of each column of ``Z``.
    """

    def __init__(self, Z: np.ndarray, layout: Layout, inputs: np.ndarray):
        n_assays = len(layout.assays)
        cells, assays = layout.cell_of[inputs], layout.assay_of[inputs]
        indicator = np.zeros((inputs.size, n_assays))
        indicator[np.arange(inputs.size), assays] = 1.0
        self.Z = Z
        self.n_assays = n_assays
        self.sums = [window_means(Z @ indicator, w) for w in WINDOWS]
        self.counts = indicator.sum(axis=0)
        self.position = np.full((len(layout.cells), n_assays), -1)
        self.position[cells, assays] = np.arange(inputs.size)

    def cell_inputs(self, cell: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per window, shape (n_bins, n_assays): each assay's mean over the input cells other than
        ``cell`` (0 without one), and the cell's own track of each assay (its other-cell mean where it
        has none)."""
        own = self.position[cell]
        measured = np.flatnonzero(own >= 0)
        counts = self.counts.copy()
        counts[measured] -= 1
        inverse = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)  # no other cell: 0
        averages, tracks = [], []
        for w, half_width in enumerate(WINDOWS):
            mine = window_means(self.Z[:, own[measured]], half_width)
            average = self.sums[w] * inverse
            average[:, measured] -= mine * inverse[measured]
            track = average.copy()
            track[:, measured] = mine
            averages.append(average)
            tracks.append(track)
        return averages, tracks

    def design(self, cell: int, assay: int, cell_inputs: tuple | None = None) -> np.ndarray:
        """The design matrix of (cell, assay), shape (n_bins, :func:`n_features`): the other-cell average
        of ``assay`` at each window, the cell's other assays at each window and each times the average,
        and the intercept. ``cell_inputs``: :meth:`cell_inputs` of ``cell`` when already computed."""
        averages, tracks = self.cell_inputs(cell) if cell_inputs is None else cell_inputs
        others = np.arange(self.n_assays) != assay
        base = [average[:, assay] for average in averages]
        return np.column_stack(base + [track[:, others] for track in tracks]
                               + [tracks[0][:, others] * base[0][:, None], np.ones(self.Z.shape[0])])


@dataclass(frozen=True)
class RidgeBlocks:
    """Every assay's ridge rearranged to predict all assays of a cell with a few matrix products.

    Attributes
    ----------
    average : ndarray of shape (n_windows, n_assays)
        Weight of the assay's other-cell average at each window.
    tracks : ndarray of shape (n_windows, n_assays, n_assays)
        ``tracks[w, b, a]``: weight of the cell's assay ``b`` at window ``w`` in assay ``a``'s ridge (0 on
        the diagonal: an assay's own track is never a feature of its imputation).
    products : ndarray of shape (n_assays, n_assays)
        ``products[b, a]``: weight of assay ``b`` times the average, in assay ``a``'s ridge.
    intercept : ndarray of shape (n_assays,)
    """

    average: np.ndarray
    tracks: np.ndarray
    products: np.ndarray
    intercept: np.ndarray

    @classmethod
    def from_weights(cls, weights: np.ndarray) -> "RidgeBlocks":
        """From ``weights`` of shape (n_assays, n_features), ordered as :meth:`ChunkFeatures.design`'s
        columns; an unfitted (NaN) assay predicts 0."""
        weights = np.nan_to_num(weights)
        n_assays, n_windows = weights.shape[0], len(WINDOWS)
        tracks, products = np.zeros((n_windows, n_assays, n_assays)), np.zeros((n_assays, n_assays))
        for a in range(n_assays):
            others = np.flatnonzero(np.arange(n_assays) != a)
            blocks = weights[a, n_windows:-1].reshape(n_windows + 1, n_assays - 1)
            tracks[:, others, a] = blocks[:n_windows]
            products[others, a] = blocks[n_windows]
        return cls(weights[:, :n_windows].T, tracks, products, weights[:, -1])

    def predict(self, averages: list[np.ndarray], tracks: list[np.ndarray]) -> np.ndarray:
        """Every assay's ridge prediction for one cell, shape (n_bins, n_assays), from
        :meth:`ChunkFeatures.cell_inputs`."""
        out = self.intercept + averages[0] * (tracks[0] @ self.products)
        for w in range(len(WINDOWS)):
            out += averages[w] * self.average[w] + tracks[w] @ self.tracks[w]
        return out


@dataclass(frozen=True)
class Refiner:
    """The fitted stage for one set of input tracks (every pair imputed from those inputs).

    Attributes
    ----------
    layout : Layout
    inputs : ndarray of int
        Store columns the stage reads.
    tables : ndarray of shape (n_inputs, len(LEVELS))
        Each input's quantile function (arcsinh).
    reference : ndarray of shape (n_assays, len(LEVELS))
        Each assay's mean quantile function over its inputs (NaN: no input).
    scale : ndarray of shape (n_cells * n_assays, len(LEVELS))
        Each pair's expected quantile function (cell-major), from the additive cell + assay model.
    weights : ndarray of shape (n_assays, n_features)
        The ridge of each assay; NaN where the assay has fewer than two input cells.
    blend : float
        Weight of the ridge against the average.
    tensor : float
        Share of the tensor ensemble's imputation in the result.
    validation : BlendValidation or None
        How ``blend`` and ``tensor`` were chosen (None: given).
    """

    layout: Layout
    inputs: np.ndarray
    tables: np.ndarray
    reference: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    blend: float
    tensor: float = 0.0
    validation: "BlendValidation | None" = None

    @cached_property
    def _normalizers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        assays = self.layout.assay_of[self.inputs]
        return [monotone_knots(table, self.reference[a]) for table, a in zip(self.tables, assays)]

    @cached_property
    def _blocks(self) -> RidgeBlocks:
        return RidgeBlocks.from_weights(self.weights)

    def refinable(self, cell: int, assay: int) -> bool:
        """Whether the pair has a ridge and at least one other input cell measuring its assay."""
        others = (self.layout.assay_of[self.inputs] == assay) & (self.layout.cell_of[self.inputs] != cell)
        return bool(np.isfinite(self.weights[assay]).all() and others.any())

    def normalized(self, Y: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
        """The inputs' chunk ``Y[:, inputs]`` (arcsinh, NaN = no data, read as 0) on their assays'
        reference scale; only the inputs at ``positions`` when given."""
        positions = np.arange(self.inputs.size) if positions is None else positions
        Z = np.empty((Y.shape[0], len(positions)))
        for i, j in enumerate(positions):
            Z[:, i] = np.interp(np.nan_to_num(Y[:, self.inputs[j]]), *self._normalizers[j])
        return Z

    def features(self, Y: np.ndarray) -> ChunkFeatures:
        """The chunk ``Y`` (every store column) normalised, ready to assemble features."""
        return ChunkFeatures(self.normalized(Y), self.layout, self.inputs)

    def parts(self, features: ChunkFeatures, cell: int) -> tuple[np.ndarray, np.ndarray]:
        """The ridge's prediction and the other-cell average of every assay of ``cell``, each of shape
        (n_bins, n_assays), reference scale."""
        averages, tracks = features.cell_inputs(cell)
        return self._blocks.predict(averages, tracks), averages[0]

    def to_cell_scale(self, values: np.ndarray, cell: int, assay: int) -> np.ndarray:
        """Reference-scale values of ``assay`` on the scale expected of ``cell``."""
        pair = cell * len(self.layout.assays) + assay
        return monotone_map(values, self.reference[assay], self.scale[pair])

    def combine(self, ridge: np.ndarray, average: np.ndarray, tensor: np.ndarray, cell: int, assay: int,
                blend: float, share: float) -> np.ndarray:
        """Steps 4-6 for one pair: ``blend`` of the ridge and the average (reference scale), on ``cell``'s
        scale, mixed with the tensor ensemble's imputation at ``share``. Arcsinh, the shape of ``ridge``."""
        refined = self.to_cell_scale(blend * ridge + (1.0 - blend) * average, cell, assay)
        return (1.0 - share) * refined + share * tensor

    def predict(self, features: ChunkFeatures, cell: int, assays: np.ndarray, tensor: np.ndarray) -> np.ndarray:
        """The refined imputation of ``cell``'s ``assays``, shape (n_bins, len(assays)), arcsinh, from the
        tensor ensemble's imputation of the same pairs (``tensor``, same shape)."""
        ridge, average = self.parts(features, cell)
        return np.column_stack([self.combine(ridge[:, a], average[:, a], tensor[:, i], cell, int(a), self.blend,
                                             self.tensor) for i, a in enumerate(assays)])


def _additive_scale(tables: np.ndarray, cells: np.ndarray, assays: np.ndarray, n_cells: int, n_assays: int
                    ) -> np.ndarray:
    """Every pair's quantile function from ``mu + cell + assay`` fitted to the inputs' (least squares,
    level by level; a cell or assay without input gets 0), made non-negative and non-decreasing."""
    design = np.zeros((cells.size, 1 + n_cells + n_assays))
    design[:, 0] = 1.0
    design[np.arange(cells.size), 1 + cells] = 1.0
    design[np.arange(cells.size), 1 + n_cells + assays] = 1.0
    coef = np.linalg.lstsq(design, tables, rcond=None)[0]
    grid_cells, grid_assays = np.meshgrid(np.arange(n_cells), np.arange(n_assays), indexing="ij")
    pairs = coef[0] + coef[1 + grid_cells.ravel()] + coef[1 + n_cells + grid_assays.ravel()]
    return np.maximum.accumulate(np.maximum(pairs, 0.0), axis=1)


def quantile_tables(chunks: list[np.ndarray], columns: np.ndarray) -> np.ndarray:
    """Each store column's quantile function at :data:`LEVELS` over the sample (NaN read as 0)."""
    return np.quantile(np.nan_to_num(np.vstack([chunk[:, columns] for chunk in chunks])), LEVELS, axis=0).T


def fit_refiner(chunks: list[np.ndarray], layout: Layout, inputs: np.ndarray, ridge: float,
                assays: np.ndarray | None = None, blend: float = 0.5, tensor: float = 0.0,
                validation: BlendValidation | None = None, tables: np.ndarray | None = None) -> Refiner:
    """Fit the stage on sample chunks (each (n_bins, n_store_columns), arcsinh) for ``assays``
    (default all), blending at ``validation``'s blend and tensor share when given (:func:`choose_blend`),
    else at ``blend`` and ``tensor``; ``tables`` are the inputs' :func:`quantile_tables` when already computed."""
    inputs = np.asarray(inputs)
    if validation is not None:
        blend, tensor = validation.blend, validation.tensor
    prepared = _prepared(layout, inputs, quantile_tables(chunks, inputs) if tables is None else tables,
                         blend, tensor, validation)
    features = [prepared.features(chunk) for chunk in chunks]
    return replace(prepared, weights=_ridge_weights(features, layout, inputs, ridge, assays))


def _prepared(layout: Layout, inputs: np.ndarray, tables: np.ndarray, blend: float = 0.5, tensor: float = 0.0,
              validation: BlendValidation | None = None) -> Refiner:
    """A refiner's scales from its inputs' quantile ``tables`` (reference and additive cell scale),
    before any ridge is fitted (weights NaN)."""
    n_cells, n_assays = len(layout.cells), len(layout.assays)
    input_cells, input_assays = layout.cell_of[inputs], layout.assay_of[inputs]
    reference = np.full((n_assays, LEVELS.size), np.nan)
    for a in np.unique(input_assays):
        reference[a] = tables[input_assays == a].mean(axis=0)
    scale = _additive_scale(tables, input_cells, input_assays, n_cells, n_assays)
    weights = np.full((n_assays, n_features(n_assays)), np.nan)
    return Refiner(layout, inputs, tables, reference, scale, weights, blend, tensor, validation)


def _ridge_weights(features: list[ChunkFeatures], layout: Layout, inputs: np.ndarray, ridge: float,
                   assays: np.ndarray | None) -> np.ndarray:
    """Each of ``assays``' ridge (default: every input assay), fitted over the cells that measure it, shape
    (n_assays, n_features); NaN rows for the other assays and those with fewer than two input cells (a
    row's average needs another cell's track)."""
    n_assays = len(layout.assays)
    input_cells, input_assays = layout.cell_of[inputs], layout.assay_of[inputs]
    fitted = np.unique(input_assays) if assays is None else np.asarray(assays, dtype=np.int64)
    fitted = fitted[np.bincount(input_assays, minlength=n_assays)[fitted] >= 2]
    penalty = np.full(n_features(n_assays), ridge)
    penalty[-1] = 0.0  # the intercept is not shrunk
    grams = {int(a): np.diag(penalty) for a in fitted}
    moments = {int(a): np.zeros(penalty.size) for a in fitted}
    rows = np.flatnonzero(np.isin(input_assays, fitted))
    for chunk in features:
        for cell in np.unique(input_cells[rows]):  # a cell's inputs once, for all its rows
            cell_inputs = chunk.cell_inputs(int(cell))
            for j in rows[input_cells[rows] == cell]:
                a = int(input_assays[j])
                X = chunk.design(int(cell), a, cell_inputs)
                grams[a] += X.T @ X
                moments[a] += X.T @ chunk.Z[:, j]
    weights = np.full((n_assays, n_features(n_assays)), np.nan)
    for a in grams:
        weights[a] = np.linalg.solve(grams[a], moments[a])
    return weights


def inner_tracks(layout: Layout, inputs: np.ndarray, limit: int) -> np.ndarray:
    """Positions in ``inputs`` of the tracks the blend is validated on: those whose assay has at least
    three input cells (two remain to fit without it), at most ``limit``, taken round-robin over the assays."""
    assays = layout.assay_of[inputs]
    counts = np.bincount(assays, minlength=len(layout.assays))
    eligible = [int(j) for j in np.flatnonzero(counts[assays] >= 3)]
    turn = {j: sum(assays[k] == assays[j] for k in eligible if k < j) for j in eligible}
    return np.array(sorted(eligible, key=lambda j: (turn[j], j))[:limit], dtype=np.int64)


@dataclass(frozen=True)
class BlendValidation:
    """What :func:`choose_blend` measured.

    Attributes
    ----------
    blend : float
        The chosen weight of the ridge against the average.
    tensor : float
        The chosen share of the tensor ensemble's imputation.
    tracks : tuple of int
        Store columns of the tracks left out in turn.
    table : tuple of dict
        One row per candidate: ``blend``, ``tensor``, ``min_gain`` (the criterion) and the mean of each
        :data:`SCORED` measure over the left-out tracks: every :data:`BLENDS` weight with no tensor share,
        then the best of them with each of :data:`TENSOR_SHARES`; last a row ``blend: None, tensor: None``
        with the baseline's means.
    """

    blend: float
    tensor: float
    tracks: tuple[int, ...]
    table: tuple[dict, ...]


@dataclass(frozen=True)
class _LeftOutTrack:
    """One validation track as :func:`choose_blend` scores it: observed where the baseline is defined (and
    sorted once), the refit's ridge and average (reference scale), the tensor's left-out imputation."""

    cell: int
    assay: int
    refiner: Refiner
    observed: np.ndarray
    order: np.ndarray
    ridge: np.ndarray
    average: np.ndarray
    tensor: np.ndarray

    def scores(self, blend: float, share: float) -> dict:
        imputed = self.refiner.combine(self.ridge, self.average, self.tensor, self.cell, self.assay, blend, share)
        return quality_measures(self.observed, imputed, observed_order=self.order)


def choose_blend(chunks: list[np.ndarray], layout: Layout, inputs: np.ndarray, ridge: float, limit: int,
                 tensor: list[np.ndarray], tables: np.ndarray | None = None) -> BlendValidation:
    """The blend, then the tensor share, with the largest smallest gain over the average baseline, and the
    table behind them.

    Each validation track is left out of everything (quantile reference, scale model, its assay's
    ridge), predicted at every :data:`BLENDS` weight, and scored with :func:`quality_measures` on the
    sample; the baseline is the raw average of its assay over the other input cells, as predictd reports.
    The best blend is then mixed with the tensor's imputation of the track at each of
    :data:`TENSOR_SHARES`. The criterion is :func:`smallest_gain` of the means over the validation tracks.
    With no track to validate on, blend 0.5 and no tensor share.

    Parameters
    ----------
    tensor : list of ndarray
        Per chunk, shape (n_bins, len(inputs)): the tensor ensemble's imputation of each input from genome
        factors solved without it (:func:`~predictd_core.impute.ensemble.left_out_chunk`).
    tables : ndarray, optional
        The inputs' :func:`quantile_tables` when already computed.
    """
    held = inner_tracks(layout, inputs, limit)
    if held.size == 0:
        return BlendValidation(0.5, 0.0, (), ())
    if tables is None:
        tables = quantile_tables(chunks, inputs)  # a track's quantiles do not depend on the others: once
    everyone = _prepared(layout, inputs, tables)
    normalized = [everyone.normalized(chunk) for chunk in chunks]
    tracks, baseline = [], []
    for j in held:
        cell, assay = int(layout.cell_of[inputs[j]]), int(layout.assay_of[inputs[j]])
        rest = np.delete(inputs, j)
        prepared = _prepared(layout, rest, np.delete(tables, j, axis=0))
        moved = np.flatnonzero(layout.assay_of[rest] == assay)  # without j only its assay's reference moves
        features = []
        for chunk, Z in zip(chunks, normalized):
            Z = np.delete(Z, j, axis=1)
            Z[:, moved] = prepared.normalized(chunk, moved)
            features.append(ChunkFeatures(Z, layout, rest))
        refiner = replace(prepared, weights=_ridge_weights(features, layout, rest, ridge, np.array([assay])))
        ridge_parts, averages = zip(*(refiner.parts(chunk, cell) for chunk in features))
        observed = np.concatenate([chunk[:, inputs[j]] for chunk in chunks])
        others = layout.same_assay_columns(rest, inputs[j])
        with np.errstate(all="ignore"):
            raw_average = np.concatenate([np.nanmean(chunk[:, others], axis=1) for chunk in chunks])
        seen = ~np.isnan(observed) & ~np.isnan(raw_average)
        order = np.argsort(observed[seen], kind="stable")  # sorted once, scored at every candidate
        baseline.append(quality_measures(observed[seen], raw_average[seen], observed_order=order))
        tracks.append(_LeftOutTrack(cell, assay, refiner, observed[seen], order,
                                    np.concatenate(ridge_parts)[seen, assay], np.concatenate(averages)[seen, assay],
                                    np.concatenate([part[:, j] for part in tensor])[seen]))
    base = _mean_scores(baseline)

    def row(blend: float, share: float) -> dict:
        means = _mean_scores([track.scores(blend, share) for track in tracks])
        return {"blend": float(blend), "tensor": float(share), "min_gain": smallest_gain(means, base), **means}

    table = [row(blend, 0.0) for blend in BLENDS]
    best_blend = max(table, key=lambda entry: entry["min_gain"])["blend"]
    table += [row(best_blend, share) for share in TENSOR_SHARES]
    best = max(table, key=lambda entry: entry["min_gain"])
    return BlendValidation(best["blend"], best["tensor"], tuple(int(k) for k in inputs[held]),
                           tuple(table) + ({"blend": None, "tensor": None, "min_gain": 0.0, **base},))


def _mean_scores(rows: list[dict]) -> dict[str, float]:
    """The mean of each :data:`SCORED` measure over ``rows``."""
    return {m: float(np.mean([row[m] for row in rows])) for m in SCORED}


def smallest_gain(scores: dict[str, float], baseline: dict[str, float]) -> float:
    """The smallest share of the baseline's error that ``scores`` close, across :data:`SCORED`.

    Every measure is read as an error: the MSEs as they are, the others (correlations, overlaps and AUCs,
    at most 1) as ``1 - score``. A gain is ``(baseline error - error) / baseline error``: a tenth of the
    error closed counts the same on an MSE and on an AUC near its ceiling, where a change relative to the
    score itself would be tiny and every candidate would tie. A baseline error of 0 makes any change
    infinite, any tie 0; a measure that is NaN on either side (a constant track has no correlation) is
    left out; -inf when none is left."""
    gains = []
    for measure in SCORED:
        if lower_is_better(measure):
            before, after = baseline[measure], scores[measure]
        else:
            before, after = 1.0 - baseline[measure], 1.0 - scores[measure]
        closed = before - after
        if not np.isnan(closed):
            if before:
                gains.append(closed / abs(before))
            else:
                gains.append(0.0 if closed == 0 else float(np.copysign(np.inf, closed)))
    return min(gains, default=-np.inf)


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
        the ``blend`` and ``tensor`` share it uses, the ``validation`` table (:class:`BlendValidation`; empty
        when they were given) and the ``refined`` pairs (``"CELL:ASSAY"``) it imputes."""
        entries = []
        for r, refiner in enumerate(self.refiners):
            layout = refiner.layout
            validation = refiner.validation or BlendValidation(refiner.blend, refiner.tensor, (), ())
            entries.append({
                "inputs": list(layout.column_names(refiner.inputs)),
                "blend": refiner.blend,
                "tensor": refiner.tensor,
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
        for r, refiner in enumerate(self.refiners):
            mine = np.flatnonzero(self.refiner_of_pair[pairs] == r)
            if mine.size == 0:
                continue
            features = refiner.features(Y)
            cells, assays = np.divmod(pairs[mine], len(refiner.layout.assays))
            for cell in np.unique(cells):  # all of a cell's assays come from the same few products
                columns = mine[cells == cell]
                out[:, columns] = refiner.predict(features, int(cell), assays[cells == cell], tensor[:, columns])
        return out


def sample_stretches(store: SignalStore, sample_bins: int) -> list[np.ndarray]:
    """Stretches of the store's bins spread evenly over the genome, about ``sample_bins`` bins in all, fewer
    when that would hold more than :data:`SAMPLE_VALUES` values: whole chunks, or the middle of
    :data:`SAMPLE_STRETCHES` or more chunks when the sample is smaller than that many chunks."""
    sample_bins = max(1, min(sample_bins, SAMPLE_VALUES // store.n_experiments))
    count = min(store.n_chunks, max(SAMPLE_STRETCHES, -(-sample_bins // store.chunk_bins)))
    picks = np.unique(np.linspace(0, store.n_chunks - 1, count).round().astype(int))
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
    layout, n_assays = ensemble.layout, len(ensemble.layout.assays)
    refiners, index = [], {}
    refiner_of_pair = np.full(ensemble.n_pairs, -1)
    for pair in range(ensemble.n_pairs):
        members = ensemble.weights[:, pair]
        key = members.tobytes()
        if key not in index:
            inputs = ensemble.seen_columns(*divmod(pair, n_assays))
            tables = quantile_tables(chunks, inputs)
            tensor = [left_out_chunk(chunk, ensemble, members, inputs) for chunk in chunks]
            validation = choose_blend(chunks, layout, inputs, settings.ridge, settings.inner_tracks, tensor, tables)
            index[key] = len(refiners)
            refiners.append(fit_refiner(chunks, layout, inputs, settings.ridge, validation=validation, tables=tables))
        refiner = refiners[index[key]]
        if refiner.refinable(*divmod(pair, n_assays)):
            refiner_of_pair[pair] = index[key]
        if progress is not None:
            progress(pair + 1, ensemble.n_pairs)
    return Refinement(tuple(refiners), refiner_of_pair)
