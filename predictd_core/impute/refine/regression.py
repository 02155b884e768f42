"""The refinement's regressions and the refiner that applies them: steps 3-6 of :mod:`predictd_core.impute.refine`.

One ridge per assay on :class:`~predictd_core.impute.refine.features.ChunkFeatures`' design, fitted in
closed form over the input cells that measure the assay (:func:`ridge_weights`), rearranged to predict
all of a cell's assays at once (:class:`RidgeBlocks`); or, as an alternative regression, gradient-boosted
trees per assay (LightGBM, :func:`tree_models`) on the same window features and the tensor ensemble's
imputation of the pair (stacking). A :class:`Refiner` blends the regression with the average, maps the
result onto the cell's scale and mixes it with the tensor ensemble's imputation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from predictd_core.impute.refine.features import (LEVELS, WINDOWS, ChunkFeatures, KnotGrid, cell_scale,
                                                  cell_similarity, knot_grid, monotone_map, n_features, nearest_inputs,
                                                  quantile_tables)
from predictd_core.model.factors import Layout

REGRESSORS = ("ridge", "gbt")
TREE_ROWS = 1 << 18  # training rows per assay's trees at most, spread evenly over its cells' sample bins: the
# trees' fit is linear in rows, and a quarter million already pins ~30 features' splits
TREE_PARAMS = {  # LightGBM's squared error on the reference scale, shallow-ish trees, no bagging (deterministic)
    "objective": "regression", "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 200,
    "lambda_l2": 1.0, "max_bin": 63, "num_threads": 1, "deterministic": True, "force_row_wise": True,
    "seed": 0, "verbosity": -1}
TREE_ROUNDS = 100

if TYPE_CHECKING:  # a refiner records the validation that chose its blend; the validation fits refiners
    from predictd_core.impute.refine.validation import BlendValidation


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
    products : ndarray of shape (n_windows, n_assays, n_assays)
        ``products[w, b, a]``: weight of the cell's assay ``b`` times the average, at window ``w``, in assay
        ``a``'s ridge (0 on the diagonal).
    squares : ndarray of shape (n_windows, n_assays, n_assays)
        ``squares[w, b, a]``: weight of the square of the cell's assay ``b`` at window ``w`` in assay ``a``'s
        ridge (0 on the diagonal).
    average_squares : ndarray of shape (n_windows, n_assays)
        Weight of the square of the assay's other-cell average at each window.
    intercept : ndarray of shape (n_assays,)
    neighbours : ndarray of shape (n_assays, n_neighbours * n_windows)
        Weights of :meth:`ChunkFeatures.neighbour_windows` in each assay's ridge.
    """

    average: np.ndarray
    tracks: np.ndarray
    products: np.ndarray
    squares: np.ndarray
    average_squares: np.ndarray
    intercept: np.ndarray
    neighbours: np.ndarray

    @classmethod
    def from_weights(cls, weights: np.ndarray) -> "RidgeBlocks":
        """From ``weights`` of shape (n_assays, n_features), ordered as :meth:`ChunkFeatures.design`'s
        columns; an unfitted (NaN) assay predicts 0."""
        weights = np.nan_to_num(weights)
        n_assays, n_windows = weights.shape[0], len(WINDOWS)
        per_window = np.cumsum([n_windows, n_windows * (n_assays - 1), n_windows * (n_assays - 1), n_windows * n_assays])
        tracks, products, squares = (np.zeros((n_windows, n_assays, n_assays)) for _ in range(3))
        average_squares = np.zeros((n_windows, n_assays))
        for a in range(n_assays):
            others = np.flatnonzero(np.arange(n_assays) != a)
            own, product, squared = (weights[a, lo:hi] for lo, hi in zip(per_window[:-1], per_window[1:]))
            tracks[:, others, a] = own.reshape(n_windows, n_assays - 1)
            products[:, others, a] = product.reshape(n_windows, n_assays - 1)
            squared = squared.reshape(n_windows, n_assays)  # the average's first
            average_squares[:, a] = squared[:, 0]
            squares[:, others, a] = squared[:, 1:]
        return cls(weights[:, :n_windows].T, tracks, products, squares, average_squares, weights[:, -1],
                   weights[:, per_window[-1]:-1])

    def predict(self, features: ChunkFeatures, cells: np.ndarray, assays: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """The ridge predictions of pairs (``cells``, ``assays``) and their assays' other-cell averages (window
        0), each of shape (n_bins, n_pairs): :meth:`ChunkFeatures.design` times each assay's ridge.

        A cell's features are linear in the chunk's windowed sums and the cell's own windowed tracks: an
        assay's average is its sum less the cell's own track, over the other cells' count, and the cell's track
        of an assay it lacks is the assay's mean over the input cells (:meth:`ChunkFeatures.cell_inputs`), whose
        square is the same for every cell lacking it (:attr:`ChunkFeatures.lacking_squares`). So every pair's
        first-degree terms and squares are one product with the sums and their squares plus one with its cell's
        tracks and their squares; the terms holding the average (times the cell's tracks, squared) are its
        factor, another such product, times the average, window by window; the nearest cells' tracks are added
        pair by pair (:meth:`ChunkFeatures.neighbour_term`)."""
        cells, assays = np.broadcast_arrays(np.asarray(cells, dtype=np.int64), np.asarray(assays, dtype=np.int64))
        order = np.argsort(cells, kind="stable")  # each cell's pairs side by side, as its own product fills them
        cells, assays = cells[order], assays[order]
        n_windows, n_assays, k, n_bins = len(WINDOWS), self.intercept.size, assays.size, features.Z.shape[0]
        on_sums = np.zeros((2, n_windows, n_assays, k))  # weights of each window's sums, then of the squares
        on_factor = np.zeros((n_windows, n_assays, k))  # the average's factor's weights of each window's sums
        # products transposed: a pair's values are a contiguous row, as the cells' parts are added and each pair is
        # mapped to its cell's scale
        linear = np.zeros((k, n_bins))
        factors, averages = np.zeros((n_windows, k, n_bins)), np.zeros((n_windows, k, n_bins))
        starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], k]):
            mine, pairs, m = assays[lo:hi], np.arange(lo, hi), hi - lo
            measured, inverse = features.other_cells(int(cells[lo]))
            own = features.own_rows(int(cells[lo]))  # the cell's tracks at each window, then their squares
            lacking = inverse.copy()  # an assay's sum in the cell's track: only where the cell has no track
            lacking[measured] = 0.0
            own_assay = np.isin(mine, measured)  # imputed assays the cell has: their average leaves its track out
            at, which = np.searchsorted(measured, mine[own_assay]), np.flatnonzero(own_assay)
            on_own = np.zeros((2, n_windows, measured.size, m))  # weights of the cell's tracks, then their squares
            for w in range(n_windows):
                windowed = own[0, w]
                on_sums[0, w, :, lo:hi] = lacking[:, None] * self.tracks[w][:, mine]
                on_sums[0, w, mine, pairs] += inverse[mine] * self.average[w, mine]
                on_sums[1, w, :, lo:hi] = (lacking > 0)[:, None] * self.squares[w][:, mine]
                on_factor[w, :, lo:hi] = lacking[:, None] * self.products[w][:, mine]
                on_own[0, w] = self.tracks[w][measured][:, mine]
                on_own[0, w, at, which] -= (inverse * self.average[w])[mine[own_assay]]
                on_own[1, w] = self.squares[w][measured][:, mine]
                factors[w, lo:hi] = self.products[w][measured][:, mine].T @ windowed
                averages[w, lo:hi] = features.window_sums[w * n_assays + mine] * inverse[mine, None]
                averages[w, lo + which] -= windowed[at] * inverse[mine[which], None]
            linear[lo:hi] = on_own.reshape(-1, m).T @ own.reshape(-1, n_bins)
        linear += on_sums[0].reshape(-1, k).T @ features.window_sums
        linear += on_sums[1].reshape(-1, k).T @ features.lacking_squares
        for w in range(n_windows):
            factor = factors[w]
            factor += on_factor[w].T @ features.window_sums[w * n_assays:(w + 1) * n_assays]
            factor += self.average_squares[w, assays][:, None] * averages[w]
            linear += factor * averages[w]
        linear += self.intercept[assays, None]
        if self.neighbours.size:
            for i, (cell, assay) in enumerate(zip(cells, assays)):
                linear[i] += features.neighbour_term(int(cell), int(assay), self.neighbours[assay])
        average = averages[0]
        if np.any(order != np.arange(k)):
            back = np.argsort(order)
            linear, average = linear[back], average[back]
        return linear.T, average.T


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
        Each pair's expected quantile function (cell-major), from the cell + assay model
        (:func:`~predictd_core.impute.refine.features.cell_scale`).
    weights : ndarray of shape (n_assays, n_features)
        The ridge of each assay; NaN where the assay has fewer than two input cells (or the regressor is
        not the ridge).
    blend : float
        Weight of the regression against the average.
    tensor : float
        Share of the tensor ensemble's imputation in the result.
    validation : BlendValidation or None
        How ``blend`` and ``tensor`` were chosen (None: given).
    regressor : str
        One of :data:`REGRESSORS`: which regression predicts a pair, the ridge (``weights``) or the trees.
    trees : tuple
        With the ``gbt`` regressor, each assay's LightGBM booster (:func:`tree_models`), None where the
        assay has fewer than two input cells.
    neighbours : int
        How many of the other cells most similar to a pair's cell lend their track of its assay as features
        (:attr:`nearest`).
    similarity : ndarray of shape (n_assays, n_cells, n_cells) or None
        :func:`~predictd_core.impute.refine.features.cell_similarity` of the inputs (None without neighbours).
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
    regressor: str = "ridge"
    trees: tuple = ()
    neighbours: int = 0
    similarity: np.ndarray | None = None

    @cached_property
    def nearest(self) -> np.ndarray:
        """Each pair's :attr:`neighbours` most similar other cells' tracks of its assay, as positions in
        ``inputs`` (:func:`~predictd_core.impute.refine.features.nearest_inputs`)."""
        if self.neighbours and self.similarity is None:
            raise ValueError("a refiner with neighbours needs the cells' similarity")
        return nearest_inputs(self.similarity, self.layout, self.inputs, self.neighbours)

    @cached_property
    def _normalizers(self) -> list[tuple[KnotGrid, np.ndarray]]:
        """Each input's quantile knots and the reference's value at each."""
        grids = [knot_grid(table) for table in self.tables]
        assays = self.layout.assay_of[self.inputs]
        return [(grid, grid.targets(self.reference[a])) for grid, a in zip(grids, assays)]

    @cached_property
    def _references(self) -> dict[int, KnotGrid]:
        """Each input assay's reference knots, which :meth:`to_cell_scale` maps every cell's values from."""
        return {int(a): knot_grid(self.reference[a]) for a in np.unique(self.layout.assay_of[self.inputs])}

    @cached_property
    def _blocks(self) -> RidgeBlocks:
        return RidgeBlocks.from_weights(self.weights)

    def refinable(self, cell: int, assay: int) -> bool:
        """Whether the pair has a regression and at least one other input cell measuring its assay."""
        others = (self.layout.assay_of[self.inputs] == assay) & (self.layout.cell_of[self.inputs] != cell)
        if self.regressor == "gbt":
            fitted = assay < len(self.trees) and self.trees[assay] is not None
        else:
            fitted = bool(np.isfinite(self.weights[assay]).all())
        return bool(fitted and others.any())

    def normalized(self, Y: np.ndarray, positions: np.ndarray | None = None, segments: dict | None = None
                   ) -> np.ndarray:
        """The inputs' chunk ``Y[:, inputs]`` (arcsinh, NaN = no data, read as 0) on their assays'
        reference scale; only the inputs at ``positions`` when given. ``segments``: where each column's values
        fall among its quantile knots (:meth:`~predictd_core.impute.refine.features.KnotGrid.segments`), by
        ``(knots, column)``, read where found and added where not: the refiners of an ensemble map the same
        columns of a chunk through the same knots (one sample serves them all) toward their own references."""
        positions = np.arange(self.inputs.size) if positions is None else positions
        Z = np.empty((Y.shape[0], len(positions)), order="F")  # written and windowed column by column
        for i, j in enumerate(positions):
            grid, targets = self._normalizers[j]
            values = np.nan_to_num(Y[:, self.inputs[j]])
            found = None
            if segments is not None:
                key = (grid, int(self.inputs[j]))
                found = segments.get(key)
                if found is None:
                    found = segments[key] = grid.segments(values)
            Z[:, i] = grid.map(values, targets, found)
        return Z

    def features(self, Y: np.ndarray, segments: dict | None = None) -> ChunkFeatures:
        """The chunk ``Y`` (every store column) normalised (``segments`` as :meth:`normalized`'s), ready to
        assemble features."""
        return ChunkFeatures(self.normalized(Y, segments=segments), self.layout, self.inputs, self.nearest)

    def regression(self, features: ChunkFeatures, cells: np.ndarray | int, assays: np.ndarray, tensor: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The regression's prediction and the other-cell average of pairs (``cells``, ``assays``; one cell
        for all when ``cells`` is an int), each of shape (n_bins, n_pairs), reference scale; ``tensor`` (same
        shape, arcsinh) is the tensor ensemble's imputation of the same pairs, a feature of the trees (the
        ridge ignores it)."""
        cells, assays = np.broadcast_arrays(np.asarray(cells, dtype=np.int64), np.asarray(assays, dtype=np.int64))
        if self.regressor != "gbt":
            return self._blocks.predict(features, cells, assays)
        out, average = np.empty((features.Z.shape[0], assays.size)), np.empty((features.Z.shape[0], assays.size))
        for cell in np.unique(cells):  # a cell's inputs once, for all its pairs
            averages, tracks = features.cell_inputs(int(cell))
            for i in np.flatnonzero(cells == cell):
                assay = int(assays[i])
                X = tree_design(averages, tracks, assay, features.neighbour_windows(int(cell), assay, self.neighbours),
                                self.tensor_reference(tensor[:, i], int(cell), assay))
                out[:, i] = self.trees[assay].predict(X, num_threads=TREE_PARAMS["num_threads"])
                average[:, i] = averages[0][:, assay]
        return out, average

    def tensor_reference(self, values: np.ndarray, cell: int, assay: int) -> np.ndarray:
        """The tensor ensemble's imputation of (``cell``, ``assay``) on the assay's reference scale: the
        inverse of :meth:`to_cell_scale`, so that the trees read one scale whatever the cell's depth."""
        pair = cell * len(self.layout.assays) + assay
        return monotone_map(np.nan_to_num(values), self.scale[pair], self.reference[assay])

    def to_cell_scale(self, values: np.ndarray, cell: int, assay: int) -> np.ndarray:
        """Reference-scale values of ``assay`` on the scale expected of ``cell``."""
        grid = self._references[assay]
        return grid.map(values, grid.targets(self.scale[cell * len(self.layout.assays) + assay]))

    def combine(self, ridge: np.ndarray, average: np.ndarray, tensor: np.ndarray, cells: np.ndarray | int,
                assays: np.ndarray | int, blend: float, share: float) -> np.ndarray:
        """Steps 4-6 for pairs (``cells``, ``assays``): ``blend`` of the ridge and the average (reference scale;
        shape (n_bins, n_pairs), or (n_bins,) for one pair), each on its cell's scale, mixed with the tensor
        ensemble's imputation at ``share`` (not read at share 0). Arcsinh, the shape of ``ridge``."""
        mixed = blend * ridge + (1.0 - blend) * average
        columns = mixed if mixed.ndim == 2 else mixed[:, None]  # a view: each column is mapped in place
        cells, assays = np.broadcast_arrays(np.atleast_1d(cells), np.atleast_1d(assays))
        for i, (cell, assay) in enumerate(zip(cells, assays)):
            columns[:, i] = self.to_cell_scale(columns[:, i], int(cell), int(assay))
        if share:
            mixed *= 1.0 - share
            mixed += share * tensor
        return mixed

    def predict(self, features: ChunkFeatures, cells: np.ndarray | int, assays: np.ndarray, tensor: np.ndarray
                ) -> np.ndarray:
        """The refined imputation of pairs (``cells``, ``assays``; one cell for all when ``cells`` is an int),
        shape (n_bins, n_pairs), arcsinh, from the tensor ensemble's imputation of the same pairs (``tensor``,
        same shape)."""
        cells, assays = np.broadcast_arrays(np.asarray(cells, dtype=np.int64), np.asarray(assays, dtype=np.int64))
        regression, average = self.regression(features, cells, assays, tensor)
        return self.combine(regression, average, tensor, cells, assays, self.blend, self.tensor)


def fit_refiner(chunks: list[np.ndarray], layout: Layout, inputs: np.ndarray, ridge: float,
                assays: np.ndarray | None = None, blend: float = 0.5, tensor: float = 0.0,
                validation: BlendValidation | None = None, tables: np.ndarray | None = None,
                regressor: str = "ridge", left_out: list[np.ndarray] | None = None, neighbours: int = 0) -> Refiner:
    """Fit the stage on sample chunks (each (n_bins, n_store_columns), arcsinh) for ``assays``
    (default all), with ``validation``'s regressor, blend, tensor share, number of ``neighbours`` and cells' scale
    model when given (:func:`~predictd_core.impute.refine.validation.choose_blend`), else ``regressor`` (one of
    :data:`REGRESSORS`) at ``blend``, ``tensor`` and ``neighbours`` on the additive scale; ``tables`` are the inputs'
    :func:`quantile_tables` when already computed. The trees need ``left_out``: per chunk, shape
    (n_bins, len(inputs)), the tensor ensemble's imputation of each input from genome factors solved
    without it (:func:`~predictd_core.impute.ensemble.left_out_chunk`), the feature an unmeasured pair has.
    With ``neighbours``, each pair's regression also reads that many other cells' tracks of its assay, those most
    similar to its cell over the sample (:func:`~predictd_core.impute.refine.features.cell_similarity`)."""
    inputs = np.asarray(inputs)
    if validation is not None:
        blend, tensor, regressor = validation.blend, validation.tensor, validation.regressor
        neighbours = validation.neighbours
    if regressor not in REGRESSORS:
        raise ValueError(f"regressor {regressor!r}: expected one of {', '.join(REGRESSORS)}")
    prepared = prepared_refiner(layout, inputs, quantile_tables(chunks, inputs) if tables is None else tables,
                                blend, tensor, validation, "additive" if validation is None else validation.scale)
    normalized = [prepared.normalized(chunk) for chunk in chunks]
    if neighbours:
        prepared = replace(prepared, neighbours=neighbours, similarity=cell_similarity(normalized, layout, inputs))
    features = [ChunkFeatures(Z, layout, inputs, prepared.nearest) for Z in normalized]
    if regressor == "gbt":
        if left_out is None:
            raise ValueError("the gbt regressor needs the tensor ensemble's left-out imputation of the inputs")
        return replace(prepared, regressor="gbt", trees=tree_models(features, prepared, left_out, assays))
    return replace(prepared, weights=ridge_weights(features, layout, inputs, ridge, assays))


def prepared_refiner(layout: Layout, inputs: np.ndarray, tables: np.ndarray, blend: float = 0.5,
                     tensor: float = 0.0, validation: BlendValidation | None = None, scale: str = "additive"
                     ) -> Refiner:
    """A refiner's scales from its inputs' quantile ``tables`` (reference, and the cell scale of the ``scale``
    model: :func:`~predictd_core.impute.refine.features.cell_scale`), before any ridge is fitted (weights NaN)."""
    n_cells, n_assays = len(layout.cells), len(layout.assays)
    input_cells, input_assays = layout.cell_of[inputs], layout.assay_of[inputs]
    reference = np.full((n_assays, LEVELS.size), np.nan)
    for a in np.unique(input_assays):
        reference[a] = tables[input_assays == a].mean(axis=0)
    scales = cell_scale(tables, input_cells, input_assays, n_cells, n_assays, scale)
    weights = np.full((n_assays, n_features(n_assays)), np.nan)
    return Refiner(layout, inputs, tables, reference, scales, weights, blend, tensor, validation)


def peak_weights(values: np.ndarray) -> np.ndarray:
    """Each training bin's weight in the regressions' squared error: 1 + its value (reference arcsinh scale,
    negatives as 0).

    Plain least squares predicts a bin's conditional mean, so the top of every peak is pulled toward the
    mean of the bins that look like it: the peaks MSE1obs and the top-1% measures score come out low. Weighting
    a bin by its signal makes a peak's shortfall cost in proportion to its height, while the background (values
    near 0, most of the genome) keeps weight about 1. Inner validation on the pilot's training tracks prefers it
    to plain least squares (BENCHMARKS.md, "A loss that does not shrink peaks")."""
    return 1.0 + np.maximum(values, 0.0)


def ridge_weights(features: list[ChunkFeatures], layout: Layout, inputs: np.ndarray, ridge: float,
                  assays: np.ndarray | None, neighbours: int | None = None) -> np.ndarray:
    """Each of ``assays``' ridge (default: every input assay), fitted over the cells that measure it, shape
    (n_assays, :func:`n_features`); NaN rows for the other assays and those with fewer than two input cells (a
    row's average needs another cell's track). Each bin's squared error counts :func:`peak_weights` times. The
    ridge reads the first ``neighbours`` of the features' nearest cells (default all of them)."""
    systems = ridge_systems(features, layout, inputs, assays)
    return solve_ridges(systems, len(layout.assays), features[0].nearest.shape[2] if neighbours is None else neighbours,
                        ridge)


def ridge_systems(features: list[ChunkFeatures], layout: Layout, inputs: np.ndarray, assays: np.ndarray | None
                  ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each fitted assay's weighted normal equations, unpenalised: ``{assay: (X'WX, X'Wy)}`` over the design
    rows of the input cells that measure it (:func:`ridge_weights` solves them). The nearest cells' columns
    nest, the ``k`` nearest first, so the system of fewer neighbours is a part of this one."""
    n_assays = len(layout.assays)
    input_cells, input_assays = layout.cell_of[inputs], layout.assay_of[inputs]
    fitted = np.unique(input_assays) if assays is None else np.asarray(assays, dtype=np.int64)
    fitted = fitted[np.bincount(input_assays, minlength=n_assays)[fitted] >= 2]
    width = n_features(n_assays, features[0].nearest.shape[2])
    systems = {int(a): (np.zeros((width, width)), np.zeros(width)) for a in fitted}
    rows = np.flatnonzero(np.isin(input_assays, fitted))
    for chunk in features:
        for cell in np.unique(input_cells[rows]):  # a cell's inputs once, for all its rows
            cell_inputs = chunk.cell_inputs(int(cell))
            for j in rows[input_cells[rows] == cell]:
                a = int(input_assays[j])
                root = np.sqrt(peak_weights(chunk.Z[:, j]))
                X = chunk.design(int(cell), a, cell_inputs)
                X *= root[:, None]  # X'WX as the product of one matrix with itself: a symmetric rank-k update
                gram, moment = systems[a]
                gram += X.T @ X
                moment += X.T @ (root * chunk.Z[:, j])
    return systems


def solve_ridges(systems: dict[int, tuple[np.ndarray, np.ndarray]], n_assays: int, neighbours: int, ridge: float
                 ) -> np.ndarray:
    """:func:`ridge_weights` from :func:`ridge_systems`, reading the first ``neighbours`` of the nearest cells they
    were built with: shape (n_assays, n_features(n_assays, neighbours)), the intercept not shrunk."""
    width = n_features(n_assays, neighbours)
    used = np.r_[np.arange(width - 1), -1]  # the nearest columns come last, before the intercept
    penalty = np.full(width, ridge)
    penalty[-1] = 0.0
    weights = np.full((n_assays, width), np.nan)
    for a, (gram, moment) in systems.items():
        weights[a] = np.linalg.solve(gram[np.ix_(used, used)] + np.diag(penalty), moment[used])
    return weights


def tree_design(averages: list[np.ndarray], tracks: list[np.ndarray], assay: int, neighbours: np.ndarray,
                tensor: np.ndarray) -> np.ndarray:
    """The trees' features of one pair, shape (n_bins, n_windows * n_assays + n_neighbour_columns + 1): the
    other-cell average of ``assay`` and the cell's other assays at each window (:meth:`ChunkFeatures.cell_inputs`),
    the nearest cells' tracks of ``assay`` (:meth:`ChunkFeatures.neighbour_windows`), and the tensor ensemble's
    imputation of the pair on the reference scale (stacking). No products: trees find interactions themselves."""
    others = np.arange(averages[0].shape[1]) != assay
    return np.column_stack([average[:, assay] for average in averages] + [track[:, others] for track in tracks]
                           + [neighbours, tensor])


def tree_models(features: list[ChunkFeatures], prepared: Refiner, left_out: list[np.ndarray],
                assays: np.ndarray | None = None, rows: int = TREE_ROWS) -> tuple:
    """Each of ``assays``' gradient-boosted trees (default every input assay), one LightGBM booster per
    assay fitted over the input cells that measure it, ``None`` for the other assays and those with fewer
    than two input cells; at most ``rows`` training rows per assay, every k-th of its cells' sample bins, each
    weighted by :func:`peak_weights`.

    Parameters
    ----------
    features : list of ChunkFeatures
        The sample chunks normalised by ``prepared`` (its inputs, reference and cell scale).
    prepared : Refiner
        Gives the inputs and the scales the tensor feature is read on (:meth:`Refiner.tensor_reference`).
    left_out : list of ndarray
        Per chunk, shape (n_bins, len(prepared.inputs)): each input's tensor imputation without it.
    """
    try:
        import lightgbm  # only this regressor needs it: the extra `trees`
    except ImportError:
        raise ImportError("model.refine.regressor 'gbt' or 'auto' needs LightGBM: pip install 'predictd[trees]'") from None

    layout, inputs = prepared.layout, prepared.inputs
    n_assays = len(layout.assays)
    input_cells, input_assays = layout.cell_of[inputs], layout.assay_of[inputs]
    fitted = np.unique(input_assays) if assays is None else np.asarray(assays, dtype=np.int64)
    fitted = fitted[np.bincount(input_assays, minlength=n_assays)[fitted] >= 2]
    members = np.flatnonzero(np.isin(input_assays, fitted))
    n_bins = sum(chunk.Z.shape[0] for chunk in features)
    step = {int(a): max(1, -(-n_bins * int((input_assays == a).sum()) // rows)) for a in fitted}
    X_rows, y_rows, seen = {a: [] for a in step}, {a: [] for a in step}, {a: 0 for a in step}
    for chunk, tensor in zip(features, left_out):
        n = chunk.Z.shape[0]
        for cell in np.unique(input_cells[members]):  # a cell's inputs once, for all its rows
            averages, tracks = chunk.cell_inputs(int(cell))
            for j in members[input_cells[members] == cell]:
                a = int(input_assays[j])
                keep = np.arange((-seen[a]) % step[a], n, step[a])  # evenly over the assay's rows, end to end
                seen[a] += n
                reference = prepared.tensor_reference(tensor[keep, j], int(cell), a)
                X_rows[a].append(tree_design([x[keep] for x in averages], [x[keep] for x in tracks], a,
                                             chunk.neighbour_windows(int(cell), a, prepared.neighbours)[keep],
                                             reference))
                y_rows[a].append(chunk.Z[keep, j])
    trees = [None] * n_assays
    for a in step:
        y = np.concatenate(y_rows[a])
        data = lightgbm.Dataset(np.vstack(X_rows[a]), y, weight=peak_weights(y), params={"verbosity": -1})
        trees[a] = lightgbm.train(TREE_PARAMS, data, num_boost_round=TREE_ROUNDS)
    return tuple(trees)
