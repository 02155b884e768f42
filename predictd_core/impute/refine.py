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
   average keeps the peaks' ranks. ``blend`` is chosen by inner validation (every measured track
   refitted without itself, at most ``inner_tracks`` of them) to maximise the smallest relative gain
   over the average baseline across the quality measures: the product's goal is to win every column.
5. Back to the cell's own scale through the expected quantile function of (c, m): an additive
   cell + assay model of the measured tracks' quantile functions (a cell sequenced deeper has higher
   peaks in every assay).

Everything is fitted in the driver on an evenly spread sample of the store's chunks
(``sample_bins``); a pair is refined only when its assay is measured in at least two input cells
other than itself, else the tensor ensemble's value stands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from predictd_core.evaluate.measures import lower_is_better, quality_measures
from predictd_core.model.factors import Layout
from predictd_core.model.settings import RefineSettings
from predictd_core.store.signal_store import SignalStore

LEVELS = np.linspace(0.0, 1.0, 1001)
WINDOWS = (0, 4, 40)  # half-widths in bins: 25 bp, 225 bp and 2 kb means
BLENDS = np.round(np.linspace(0.0, 1.0, 11), 2)
SCORED = ("MSEglobal", "MSE1obs", "MSE1imp", "GWcorr", "Match1", "Catch1obs", "Catch1imp", "AucObs1", "AucImp1")


def monotone_map(values: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise-linear map through points ``(xp, fp)`` with ``xp`` non-decreasing; tied ``xp`` (a track's
    many zero bins) map to the mean of their ``fp``, as ranks shared by ties would."""
    knots, inverse = np.unique(xp, return_inverse=True)
    targets = np.bincount(inverse, weights=fp) / np.bincount(inverse)
    return np.interp(values, knots, targets)


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
    validation : BlendValidation or None
        How ``blend`` was chosen (None: given).
    """

    layout: Layout
    inputs: np.ndarray
    tables: np.ndarray
    reference: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    blend: float
    validation: "BlendValidation | None" = None

    def refinable(self, cell: int, assay: int) -> bool:
        """Whether the pair has a ridge and at least one other input cell measuring its assay."""
        others = (self.layout.assay_of[self.inputs] == assay) & (self.layout.cell_of[self.inputs] != cell)
        return bool(np.isfinite(self.weights[assay]).all() and others.any())

    def normalized(self, Y: np.ndarray) -> np.ndarray:
        """The inputs' chunk ``Y[:, inputs]`` (arcsinh, NaN = no data, read as 0) on their assays'
        reference scale."""
        assays = self.layout.assay_of[self.inputs]
        Z = np.empty((Y.shape[0], self.inputs.size))
        for j, column in enumerate(self.inputs):
            Z[:, j] = monotone_map(np.nan_to_num(Y[:, column]), self.tables[j], self.reference[assays[j]])
        return Z

    def parts(self, Z: np.ndarray, cell: int, assay: int) -> tuple[np.ndarray, np.ndarray]:
        """The ridge's prediction and the other-cell average of (cell, assay), reference scale."""
        X = pair_features(Z, self.layout, self.inputs, cell, assay)
        return X @ self.weights[assay], X[:, 0]

    def to_cell_scale(self, values: np.ndarray, cell: int, assay: int) -> np.ndarray:
        """Reference-scale values of ``assay`` on the scale expected of ``cell``."""
        pair = cell * len(self.layout.assays) + assay
        return monotone_map(values, self.reference[assay], self.scale[pair])

    def predict(self, Z: np.ndarray, cell: int, assay: int) -> np.ndarray:
        """The refined imputation of (cell, assay) from the normalised chunk ``Z``, arcsinh."""
        ridge, average = self.parts(Z, cell, assay)
        return self.to_cell_scale(self.blend * ridge + (1.0 - self.blend) * average, cell, assay)


def pair_features(Z: np.ndarray, layout: Layout, inputs: np.ndarray, cell: int, assay: int) -> np.ndarray:
    """The design matrix of (cell, assay) on a chunk (see the module's step 2), shape (n_bins, n_features).

    The average of ``assay`` leaves out ``cell``; another assay the cell has no input for is its own
    average over the other cells.
    """
    cells, assays = layout.cell_of[inputs], layout.assay_of[inputs]

    def average(a: int) -> np.ndarray:
        return Z[:, (assays == a) & (cells != cell)].mean(axis=1)

    base = average(assay)
    own = []
    for a in range(len(layout.assays)):
        if a == assay:
            continue
        measured = np.flatnonzero((assays == a) & (cells == cell))
        if measured.size:
            own.append(Z[:, measured[0]])
        elif ((assays == a) & (cells != cell)).any():
            own.append(average(a))
        else:
            own.append(np.zeros(Z.shape[0]))
    own = np.column_stack(own)
    return np.column_stack([window_means(base, w) for w in WINDOWS] + [window_means(own, w) for w in WINDOWS]
                           + [own * base[:, None], np.ones(Z.shape[0])])


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


def fit_refiner(chunks: list[np.ndarray], layout: Layout, inputs: np.ndarray, ridge: float,
                assays: np.ndarray | None = None, blend: float = 0.5, validation: BlendValidation | None = None
                ) -> Refiner:
    """Fit the stage on sample chunks (each (n_bins, n_store_columns), arcsinh) for ``assays``
    (default all), blending at ``validation.blend`` when given (:func:`choose_blend`), else at ``blend``."""
    refiner = _fit_on_sample(chunks, layout, inputs, ridge, assays, blend)[0]
    return refiner if validation is None else replace(refiner, blend=validation.blend, validation=validation)


def _fit_on_sample(chunks: list[np.ndarray], layout: Layout, inputs: np.ndarray, ridge: float,
                   assays: np.ndarray | None, blend: float) -> tuple[Refiner, list[np.ndarray]]:
    """:func:`fit_refiner`, and the sample chunks normalised by it (``Refiner.normalized``)."""
    inputs = np.asarray(inputs)
    n_cells, n_assays = len(layout.cells), len(layout.assays)
    sample = np.nan_to_num(np.vstack([chunk[:, inputs] for chunk in chunks]))
    tables = np.quantile(sample, LEVELS, axis=0).T
    input_cells, input_assays = layout.cell_of[inputs], layout.assay_of[inputs]
    reference = np.full((n_assays, LEVELS.size), np.nan)
    for a in np.unique(input_assays):
        reference[a] = tables[input_assays == a].mean(axis=0)
    scale = _additive_scale(tables, input_cells, input_assays, n_cells, n_assays)
    weights = np.full((n_assays, n_features(n_assays)), np.nan)
    refiner = Refiner(layout, inputs, tables, reference, scale, weights, blend)  # weights filled below
    normalized = [refiner.normalized(chunk) for chunk in chunks]
    penalty = np.full(n_features(n_assays), ridge)
    penalty[-1] = 0.0  # the intercept is not shrunk
    for a in (np.unique(input_assays) if assays is None else assays):
        rows = np.flatnonzero(input_assays == a)
        if rows.size < 2:
            continue  # a cell's rows need another cell's track for their average
        gram, moment = np.diag(penalty), np.zeros(penalty.size)
        for Z in normalized:
            for j in rows:
                X = pair_features(Z, layout, inputs, int(input_cells[j]), int(a))
                gram += X.T @ X
                moment += X.T @ Z[:, j]
        weights[a] = np.linalg.solve(gram, moment)
    return refiner, normalized


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
        The chosen weight of the ridge.
    tracks : tuple of int
        Store columns of the tracks left out in turn.
    table : tuple of dict
        One row per :data:`BLENDS` weight: ``blend``, ``min_gain`` (the criterion) and the mean of each
        :data:`SCORED` measure over the left-out tracks; then a row ``blend: None`` with the baseline's means.
    """

    blend: float
    tracks: tuple[int, ...]
    table: tuple[dict, ...]


def choose_blend(chunks: list[np.ndarray], layout: Layout, inputs: np.ndarray, ridge: float, limit: int
                 ) -> BlendValidation:
    """The blend with the largest smallest relative gain over the average baseline, and the table behind it.

    Each validation track is left out of everything (quantile reference, scale model, its assay's
    ridge), predicted at every :data:`BLENDS` weight, and scored with :func:`quality_measures` on the
    sample; the baseline is the raw average of its assay over the other input cells, as predictd reports.
    A gain is ``(blend - baseline) / |baseline|`` (sign flipped for errors), per measure, of the means
    over the validation tracks. With no track to validate on, 0.5.
    """
    held = inner_tracks(layout, inputs, limit)
    if held.size == 0:
        return BlendValidation(0.5, (), ())
    scores = {blend: [] for blend in BLENDS}
    baseline = []
    for j in held:
        cell, assay = int(layout.cell_of[inputs[j]]), int(layout.assay_of[inputs[j]])
        rest = np.delete(inputs, j)
        refiner, normalized = _fit_on_sample(chunks, layout, rest, ridge, np.array([assay]), 0.5)
        ridge_parts, averages = zip(*(refiner.parts(Z, cell, assay) for Z in normalized))
        ridge_part, average = np.concatenate(ridge_parts), np.concatenate(averages)
        observed = np.concatenate([chunk[:, inputs[j]] for chunk in chunks])
        others = layout.same_assay_columns(rest, inputs[j])
        with np.errstate(all="ignore"):
            raw_average = np.concatenate([np.nanmean(chunk[:, others], axis=1) for chunk in chunks])
        seen = ~np.isnan(observed) & ~np.isnan(raw_average)
        baseline.append(quality_measures(observed[seen], raw_average[seen]))
        for blend in BLENDS:
            imputed = refiner.to_cell_scale(blend * ridge_part + (1.0 - blend) * average, cell, assay)
            scores[blend].append(quality_measures(observed[seen], imputed[seen]))
    base = {m: float(np.mean([row[m] for row in baseline])) for m in SCORED}
    table = []
    for blend, rows in scores.items():
        means = {m: float(np.mean([row[m] for row in rows])) for m in SCORED}
        table.append({"blend": float(blend), "min_gain": smallest_gain(means, base), **means})
    best = max(table, key=lambda row: row["min_gain"])
    return BlendValidation(best["blend"], tuple(int(k) for k in inputs[held]),
                           tuple(table) + ({"blend": None, "min_gain": 0.0, **base},))


def smallest_gain(scores: dict[str, float], baseline: dict[str, float]) -> float:
    """The smallest relative gain of ``scores`` over ``baseline`` across :data:`SCORED` (sign flipped for
    errors). A baseline of 0 (a perfect MSE, no overlap at all) makes any change infinite, any tie 0; a
    measure that is NaN on either side (a constant track has no correlation) is left out; -inf when none is left."""
    gains = []
    for measure in SCORED:
        change = scores[measure] - baseline[measure]
        if lower_is_better(measure):
            change = -change
        if not np.isnan(change):
            if baseline[measure]:
                gains.append(change / abs(baseline[measure]))
            else:
                gains.append(0.0 if change == 0 else float(np.copysign(np.inf, change)))
    return min(gains, default=-np.inf)


@dataclass(frozen=True)
class Refinement:
    """The stage for a whole ensemble: one :class:`Refiner` per distinct set of input tracks.

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
        the ``blend`` it uses, the ``validation`` table (:class:`BlendValidation`; empty when the blend was
        given) and the ``refined`` pairs (``"CELL:ASSAY"``) it imputes."""
        entries = []
        for r, refiner in enumerate(self.refiners):
            layout = refiner.layout
            validation = refiner.validation or BlendValidation(refiner.blend, (), ())
            entries.append({
                "inputs": list(layout.column_names(refiner.inputs)),
                "blend": refiner.blend,
                "validated": list(layout.column_names(validation.tracks)),
                "validation": list(validation.table),
                "refined": [layout.pair_name(*divmod(int(p), len(layout.assays)))
                            for p in np.flatnonzero(self.refiner_of_pair == r)],
            })
        return entries

    def apply(self, Y: np.ndarray, tensor: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """The chunk's imputation of ``pairs``: refined where possible, else ``tensor`` (the ensemble's
        columns for the same pairs), arcsinh, float64."""
        out = np.array(tensor, dtype=np.float64)
        for r, refiner in enumerate(self.refiners):
            mine = np.flatnonzero(self.refiner_of_pair[pairs] == r)
            if mine.size == 0:
                continue
            Z = refiner.normalized(Y)
            for position in mine:
                cell, assay = divmod(int(pairs[position]), len(refiner.layout.assays))
                out[:, position] = refiner.predict(Z, cell, assay)
        return out


def sample_chunks(store: SignalStore, sample_bins: int) -> list[np.ndarray]:
    """Whole chunks spread evenly over the genome, about ``sample_bins`` bins in all (at least one)."""
    count = min(store.n_chunks, max(1, -(-sample_bins // store.chunk_bins)))
    picks = np.unique(np.linspace(0, store.n_chunks - 1, count).round().astype(int))
    return [store.read_chunk(int(k)) for k in picks]


def fit_refinement(store: SignalStore, layout: Layout, pair_inputs: list[np.ndarray], settings: RefineSettings
                   ) -> Refinement:
    """Fit one refiner per distinct input set of ``pair_inputs`` (each pair's input store columns,
    cell-major) on a sample of ``store``."""
    chunks = sample_chunks(store, settings.sample_bins)
    keys = [tuple(np.unique(columns).tolist()) for columns in pair_inputs]
    refiners, index = [], {}
    refiner_of_pair = np.full(len(keys), -1)
    n_assays = len(layout.assays)
    for pair, key in enumerate(keys):
        if key not in index:
            inputs = np.array(key, dtype=np.int64)
            validation = choose_blend(chunks, layout, inputs, settings.ridge, settings.inner_tracks)
            index[key] = len(refiners)
            refiners.append(fit_refiner(chunks, layout, inputs, settings.ridge, validation=validation))
        refiner = refiners[index[key]]
        if refiner.refinable(*divmod(pair, n_assays)):
            refiner_of_pair[pair] = index[key]
    return Refinement(tuple(refiners), refiner_of_pair)
