"""The refinement's inputs made comparable, and its features: steps 1, 2 and 5 of
:mod:`predictd_core.impute.refine`.

Each input track's quantile function over the sample (:func:`quantile_tables`) maps it onto its assay's
reference distribution (:func:`monotone_map`), and a cell + assay model of those functions
(:func:`cell_scale`) maps a refined value back onto the scale expected of its cell. On the reference
scale, a chunk's features (:class:`ChunkFeatures`) are window means (:func:`window_means`) of the
other cells' average of each assay and of the cell's own tracks.
"""

from __future__ import annotations

import weakref

import numpy as np

from predictd_core.model.factors import Layout

LEVELS = np.linspace(0.0, 1.0, 1001)
# half-widths in bins, a decade apart: 25 bp, 225 bp, 2 kb and 20 kb means (a broad mark's domain spans the last;
# the inner validation's held-out loss fell on both design squares with it: BENCHMARKS.md, "A 20 kb window")
WINDOWS = (0, 4, 40, 400)


def monotone_map(values: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise-linear map through points ``(xp, fp)`` with ``xp`` non-decreasing; tied ``xp`` (a track's
    many zero bins) map to the mean of their ``fp``, as ranks shared by ties would (:class:`KnotGrid`)."""
    grid = KnotGrid(xp)
    return grid.map(values, grid.targets(fp))


class KnotGrid:
    """The distinct knots of a piecewise-linear map, indexed to map many arrays through them.

    ``map`` gives ``np.interp`` through the distinct knots, value for value (the same formula on the same
    segment), at a third of its cost or less: a value's segment is looked up in a uniform grid over the knots'
    range, then advanced past the few knots inside its grid cell, all in vectorised steps, where ``np.interp``
    binary-searches each value (~60 ns a value over a quantile function's 1,001 knots).

    Parameters
    ----------
    xp : ndarray
        The knots, non-decreasing; ties are merged (:meth:`targets` averages their targets).
    cells_per_knot : int
        Grid cells per distinct knot: the more, the fewer values share a cell with a knot below them (4: ~13 ns
        a value through a quantile function's knots, 32 KB of grid; 1: ~30 ns).
    """

    def __init__(self, xp: np.ndarray, cells_per_knot: int = 4):
        self.knots, self._tie_of = np.unique(xp, return_inverse=True)
        self._ties = np.bincount(self._tie_of)
        self._lo, hi = float(self.knots[0]), float(self.knots[-1])
        self._n_cells = cells_per_knot * self.knots.size
        self._per_unit = self._n_cells / (hi - self._lo) if hi > self._lo else 0.0
        self._hi = hi
        # the cell is monotone in the value, so every knot in a cell before a value's lies below the value: the
        # last of them is where the value's search starts
        below = np.searchsorted(self._cell(self.knots.astype(np.float64)), np.arange(self._n_cells), side="left")
        self._first = np.maximum(below - 1, 0)
        self._next = np.append(self.knots[1:], np.inf)  # the knot after each one; none after the last

    def _cell(self, x: np.ndarray) -> np.ndarray:
        """The grid cell of each of ``x`` (float64, within the knots' range; NaN lands in an end cell)."""
        with np.errstate(invalid="ignore"):  # NaN's cell: any, its value stays NaN
            cells = ((x - self._lo) * self._per_unit).astype(np.intp)
        return np.clip(cells, 0, self._n_cells - 1, out=cells)

    def targets(self, fp: np.ndarray) -> np.ndarray:
        """The target of each distinct knot: the mean of ``fp`` over the knots ``xp`` tied there."""
        return np.bincount(self._tie_of, weights=fp) / self._ties

    def segments(self, values: np.ndarray) -> np.ndarray:
        """The segment of each of ``values``: the index of the last knot at or below it (clipped to the knots'
        range), as :meth:`map` finds it; uint16 when the knots allow (2 bytes a value)."""
        return self._segments(np.clip(np.asarray(values, dtype=np.float64), self._lo, self._hi)).astype(
            np.uint16 if self.knots.size <= 1 << 16 else np.intp)

    def _segments(self, x: np.ndarray) -> np.ndarray:
        """:meth:`segments` of ``x`` (float64, within the knots' range), as intp."""
        j = self._first[self._cell(x)]
        ahead = np.flatnonzero(self._next[j] <= x)
        while ahead.size:  # values past a knot inside their cell: rarely more than one step
            j[ahead] += 1
            ahead = ahead[self._next[j[ahead]] <= x[ahead]]
        return j

    def map(self, values: np.ndarray, targets: np.ndarray, segments: np.ndarray | None = None) -> np.ndarray:
        """``np.interp(values, knots, targets)`` (float64; values outside the knots map to the end targets,
        NaN to NaN). ``segments``: the values' :meth:`segments` when already found (the search is ~60% of the
        cost, and every refiner maps the same column through the same knots toward its own targets)."""
        x = np.array(values, dtype=np.float64)
        np.clip(x, self._lo, self._hi, out=x)
        j = self._segments(x) if segments is None else segments.astype(np.intp)
        slopes = np.append(np.diff(targets) / np.diff(self.knots), 0.0)  # as np.interp computes them
        x -= self.knots[j]
        x *= slopes[j]
        x += targets[j]
        return x


_GRIDS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def knot_grid(xp: np.ndarray) -> KnotGrid:
    """The :class:`KnotGrid` of ``xp``, one object for equal knots while anything holds it: an ensemble's
    refiners read the same store columns through the same quantile tables (one sample serves them all)."""
    key = np.ascontiguousarray(xp, dtype=np.float64).tobytes()
    grid = _GRIDS.get(key)
    if grid is None:
        grid = _GRIDS[key] = KnotGrid(xp)
    return grid


def window_means(x: np.ndarray, half_width: int) -> np.ndarray:
    """Mean over ``[i - half_width, i + half_width]`` along axis 0, clipped at the array's ends (float64)."""
    return x if half_width == 0 else _windowed(_running_sums(x), half_width)


def all_windows(x: np.ndarray) -> np.ndarray:
    """:func:`window_means` of ``x`` (n, k) at every one of :data:`WINDOWS` side by side, shape
    (n, len(WINDOWS) * k), window-major; one running sum serves them all."""
    sums = _running_sums(x)
    return np.hstack([x if half_width == 0 else _windowed(sums, half_width) for half_width in WINDOWS])


def _running_sums(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Sums of the first 0 .. n entries of ``x`` along ``axis`` (0 or 1), that axis n + 1 long, float64."""
    sums = np.empty(x.shape[:axis] + (x.shape[axis] + 1,) + x.shape[axis + 1:])
    first, rest = (np.s_[0], np.s_[1:]) if axis == 0 else (np.s_[:, 0], np.s_[:, 1:])
    sums[first] = 0.0
    np.cumsum(x, axis=axis, out=sums[rest])
    return sums


def _windowed(sums: np.ndarray, half_width: int, out: np.ndarray | None = None) -> np.ndarray:
    """Window means from :func:`_running_sums`: the rows whose window fits whole from two slices, the
    clipped ends from the rows their windows reach; written into ``out`` when given (any layout)."""
    n, width = sums.shape[0] - 1, 2 * half_width + 1
    out = np.empty((n,) + sums.shape[1:]) if out is None else out
    if n > 2 * half_width:
        np.subtract(sums[width:], sums[:n - 2 * half_width], out=out[half_width:n - half_width])
        out[half_width:n - half_width] /= width
    rows = np.arange(n)
    ends = rows[(rows < half_width) | (rows >= n - half_width)]
    lo, hi = np.maximum(ends - half_width, 0), np.minimum(ends + half_width + 1, n)
    out[ends] = (sums[hi] - sums[lo]) / (hi - lo).reshape((-1,) + (1,) * (sums.ndim - 1))
    return out


def n_features(n_assays: int, n_neighbours: int = 0) -> int:
    """Features per pair: at each window, the average, each other assay, each other assay times the average, and
    the squares of the average and of each other assay (:meth:`ChunkFeatures.design`); each of the
    ``n_neighbours`` most similar other cells' track at each window; the intercept."""
    return len(WINDOWS) * (3 * n_assays - 1 + n_neighbours) + 1


def cell_similarity(Z: list[np.ndarray], layout: Layout, inputs: np.ndarray) -> np.ndarray:
    """How alike two cells are when imputing each assay, shape (n_assays, n_cells, n_cells): for assay ``m``,
    the mean over the other assays both cells measure of the Pearson correlation of their tracks (chunks ``Z``
    of the inputs on their reference scale, stacked); NaN where they share none. ``m`` itself is left out, as a
    target cell has no track of it: a measured cell's neighbours are ranked as an unmeasured one's would be.
    ChromImpute ranks the samples it takes features from by such a similarity."""
    n_cells, n_assays = len(layout.cells), len(layout.assays)
    cells, assays = layout.cell_of[inputs], layout.assay_of[inputs]
    values = np.vstack(Z)
    correlation = np.full((n_assays, n_cells, n_cells), np.nan)
    for a in np.unique(assays):
        mine = np.flatnonzero(assays == a)
        if mine.size > 1:
            with np.errstate(invalid="ignore", divide="ignore"):  # a flat track correlates with nothing: NaN
                correlation[a][np.ix_(cells[mine], cells[mine])] = np.corrcoef(values[:, mine], rowvar=False)
    shared, filled = np.isfinite(correlation), np.nan_to_num(correlation)
    others_sums, others_counts = filled.sum(axis=0) - filled, shared.sum(axis=0) - shared
    return np.where(others_counts > 0, others_sums / np.maximum(others_counts, 1), np.nan)


def nearest_inputs(similarity: np.ndarray, layout: Layout, inputs: np.ndarray, k: int) -> np.ndarray:
    """For every pair (cell, assay), the positions in ``inputs`` of its assay's tracks in the ``k`` other cells
    most similar to the cell for it (:func:`cell_similarity`; NaN last, ties in input order), shape
    (n_cells, n_assays, k); where fewer than ``k`` other cells measure the assay the last one repeats, -1 where
    none does."""
    n_cells, n_assays = len(layout.cells), len(layout.assays)
    cells, assays = layout.cell_of[inputs], layout.assay_of[inputs]
    nearest = np.full((n_cells, n_assays, k), -1, dtype=np.int64)
    if k == 0:
        return nearest
    for a in np.unique(assays):
        mine = np.flatnonzero(assays == a)
        for cell in range(n_cells):
            others = mine[cells[mine] != cell]
            if others.size == 0:
                continue
            score = np.nan_to_num(similarity[a, cell, cells[others]], nan=-np.inf)
            ranked = others[np.argsort(-score, kind="stable")][:k]
            nearest[cell, a] = np.pad(ranked, (0, k - ranked.size), mode="edge")
    return nearest


class ChunkFeatures:
    """A normalised chunk of inputs, from which any pair's features are assembled (step 2 of
    :mod:`predictd_core.impute.refine`).

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
    nearest : ndarray of int, optional
        :func:`nearest_inputs` of ``inputs``: each pair's most similar other cells' tracks of its assay, whose
        window means are features of the pair (none when not given).
    """

    def __init__(self, Z: np.ndarray, layout: Layout, inputs: np.ndarray, nearest: np.ndarray | None = None):
        n_assays = len(layout.assays)
        cells, assays = layout.cell_of[inputs], layout.assay_of[inputs]
        indicator = np.zeros((inputs.size, n_assays))
        indicator[np.arange(inputs.size), assays] = 1.0
        self.Z = Z
        self.n_assays = n_assays
        # every window's sums as rows, window-major, shape (n_windows * n_assays, n_bins): RidgeBlocks.predict
        # gathers a pair's rows and multiplies them whole; each window's (n_bins, n_assays) view is cell_inputs'
        self.window_sums = np.ascontiguousarray(all_windows(Z @ indicator).T)
        self.sums = [self.window_sums[w * n_assays:(w + 1) * n_assays].T for w in range(len(WINDOWS))]
        self.counts = indicator.sum(axis=0)
        # a cell's track of an assay it lacks is the assay's mean over every input cell, the same for each such
        # cell: its squares at every window (rows as window_sums'), once per chunk
        means = np.divide(1.0, self.counts, out=np.zeros(n_assays), where=self.counts > 0)
        self.lacking_squares = np.square(self.window_sums * np.tile(means, len(WINDOWS))[:, None])
        self.position = np.full((len(layout.cells), n_assays), -1)
        self.position[cells, assays] = np.arange(inputs.size)
        self.nearest = np.full((len(layout.cells), n_assays, 0), -1) if nearest is None else nearest

    def neighbour_windows(self, cell: int, assay: int, k: int | None = None) -> np.ndarray:
        """The tracks of ``assay`` in the ``k`` cells nearest ``cell`` (``nearest``; default all it holds) at each
        window, shape (n_bins, k * n_windows), neighbour-major; 0 where no other cell measures ``assay``, as its
        average."""
        tracks = self._nearest_tracks(cell, assay, k)
        n, n_bins = tracks.shape[1], self.Z.shape[0]
        if n == 0:
            return np.zeros((n_bins, self.nearest[cell, assay, :k].size * len(WINDOWS)))
        windows = all_windows(tracks)  # window-major
        return windows.reshape(n_bins, len(WINDOWS), n).transpose(0, 2, 1).reshape(n_bins, n * len(WINDOWS))

    def _nearest_tracks(self, cell: int, assay: int, k: int | None) -> np.ndarray:
        """The reference-scale tracks of ``assay`` in the ``k`` cells nearest ``cell`` (default all ``nearest``
        holds), shape (n_bins, k); no column where no other cell measures ``assay``."""
        positions = self.nearest[cell, assay, :k]
        return self.Z[:, positions[positions >= 0]]

    def cell_inputs(self, cell: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per window, shape (n_bins, n_assays): each assay's mean over the input cells other than
        ``cell`` (0 without one), and the cell's own track of each assay (its other-cell mean where it
        has none)."""
        measured, inverse = self.other_cells(cell)
        windows = self.own_rows(cell, squares=False)[0]
        averages, tracks = [], []
        for w in range(len(WINDOWS)):
            mine = windows[w].T
            average = self.sums[w] * inverse
            average[:, measured] -= mine * inverse[measured]
            track = average.copy()
            track[:, measured] = mine
            averages.append(average)
            tracks.append(track)
        return averages, tracks

    def neighbour_term(self, cell: int, assay: int, weights: np.ndarray) -> np.ndarray:
        """:meth:`neighbour_windows` of the first ``weights.size / n_windows`` nearest cells times ``weights``
        (neighbour-major, as its columns), shape (n_bins,), without the windowed columns (a ridge's application
        calls it for every pair of every chunk). A window mean is linear, so each window's weighted sum of the
        tracks is windowed once, rather than each track."""
        n = weights.size // len(WINDOWS)
        tracks = self._nearest_tracks(cell, assay, n)
        if tracks.shape[1] == 0:
            return np.zeros(self.Z.shape[0])
        mixed = tracks @ weights.reshape(n, len(WINDOWS))  # each window's weighted sum of the tracks
        sums = _running_sums(mixed)  # one running sum for every window
        out = np.zeros(self.Z.shape[0])
        for w, half_width in enumerate(WINDOWS):
            out += mixed[:, w] if half_width == 0 else _windowed(sums[:, w], half_width)
        return out

    def other_cells(self, cell: int) -> tuple[np.ndarray, np.ndarray]:
        """The assays ``cell`` has among the inputs, and for every assay 1 / the number of input cells other
        than ``cell`` measuring it (0 without one): an assay's other-cell average is its sum less the cell's own
        track, times that."""
        measured = np.flatnonzero(self.position[cell] >= 0)
        counts = self.counts.copy()
        counts[measured] -= 1
        return measured, np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)

    def own_rows(self, cell: int, squares: bool = True) -> np.ndarray:
        """``cell``'s own tracks (those of :meth:`other_cells`' assays, in order) at each window, then (with
        ``squares``) their squares, as rows: shape (1 + squares, n_windows, n_own, n_bins). Written in place, row
        by row, from one running sum: a ridge's application multiplies them whole, for every cell of every
        chunk, and :meth:`cell_inputs` reads their transposes."""
        own = self.position[cell]
        tracks = self.Z.T[own[own >= 0]]  # contiguous rows where Z is column-major, as Refiner.normalized writes it
        rows = np.empty((1 + squares, len(WINDOWS), tracks.shape[0], tracks.shape[1]))
        sums = _running_sums(tracks, axis=1)
        for w, half_width in enumerate(WINDOWS):
            if half_width == 0:
                rows[0, w] = tracks
            else:
                _windowed(sums.T, half_width, out=rows[0, w].T)
        if squares:
            np.square(rows[0], out=rows[1])
        return rows

    def design(self, cell: int, assay: int, cell_inputs: tuple | None = None) -> np.ndarray:
        """The design matrix of (cell, assay), shape (n_bins, :func:`n_features`), each block window-major: the
        other-cell average of ``assay`` at each window, the cell's other assays at each window (an assay it lacks:
        that assay's average), each of them times the average at the same window, the squares of the average and
        of the cell's other assays at each window (the average's first), the nearest cells' tracks of ``assay``
        (:meth:`neighbour_windows`) and the intercept. ``cell_inputs``: :meth:`cell_inputs` of ``cell`` when
        already computed.

        The second-degree terms let a peak grow faster than its evidence: where the other cells' average and the
        cell's own marks are high at once, the top of a peak is higher than a sum of their parts reaches, and a
        linear model pulls it toward the mean (BENCHMARKS.md, "Second-degree features")."""
        averages, tracks = self.cell_inputs(cell) if cell_inputs is None else cell_inputs
        others = np.arange(self.n_assays) != assay
        n_bins, n_windows, n_others = self.Z.shape[0], len(WINDOWS), self.n_assays - 1
        neighbours = self._nearest_tracks(cell, assay, None)
        n_neighbours = neighbours.shape[1] or self.nearest[cell, assay].size
        # column-major, filled block by block in place: the normal equations read it column by column, and
        # stacking the blocks into a row-major array costs more than the blocks themselves
        X = np.empty((n_bins, n_features(self.n_assays, n_neighbours)), order="F")
        own = X[:, n_windows:n_windows * (1 + n_others)]
        products = X[:, n_windows * (1 + n_others):n_windows * (1 + 2 * n_others)]
        squares = X[:, n_windows * (1 + 2 * n_others):n_windows * (2 + 3 * n_others)]
        for w, (average, track) in enumerate(zip(averages, tracks)):
            window = slice(w * n_others, (w + 1) * n_others)
            X[:, w] = average[:, assay]
            own[:, window] = track[:, others]
            np.multiply(own[:, window], X[:, [w]], out=products[:, window])
            np.square(X[:, w], out=squares[:, w * (1 + n_others)])
            np.square(own[:, window], out=squares[:, w * (1 + n_others) + 1:(w + 1) * (1 + n_others)])
        nearest = X[:, n_windows * (2 + 3 * n_others):-1]
        if neighbours.shape[1] == 0:
            nearest[:] = 0.0
        else:  # neighbour-major: a neighbour's windows side by side
            by_window = nearest.reshape(n_bins, n_windows, n_neighbours, order="F")
            sums = _running_sums(neighbours)
            for w, half_width in enumerate(WINDOWS):
                by_window[:, w, :] = neighbours if half_width == 0 else _windowed(sums, half_width)
        X[:, -1] = 1.0
        return X


SCALE_MODELS = ("additive", "multiplicative")


def cell_scale(tables: np.ndarray, cells: np.ndarray, assays: np.ndarray, n_cells: int, n_assays: int,
               model: str = "additive") -> np.ndarray:
    """Every pair's quantile function from ``mu + cell + assay`` fitted to the inputs' (least squares,
    level by level; a cell or assay without input gets 0), made non-negative and non-decreasing; with ``model``
    ``"multiplicative"`` the sum is fitted to ``log(1 + q)``, so that a cell's effect multiplies ``1 + q``:
    a cell whose peaks are twice as high in every assay, where an additive effect would raise the background
    as much as the peaks (:data:`SCALE_MODELS`; the refinement's inner validation chooses)."""
    if model not in SCALE_MODELS:
        raise ValueError(f"scale model {model!r}: expected one of {', '.join(SCALE_MODELS)}")
    design = np.zeros((cells.size, 1 + n_cells + n_assays))
    design[:, 0] = 1.0
    design[np.arange(cells.size), 1 + cells] = 1.0
    design[np.arange(cells.size), 1 + n_cells + assays] = 1.0
    multiplicative = model == "multiplicative"
    coef = np.linalg.lstsq(design, np.log1p(np.maximum(tables, 0.0)) if multiplicative else tables, rcond=None)[0]
    grid_cells, grid_assays = np.meshgrid(np.arange(n_cells), np.arange(n_assays), indexing="ij")
    pairs = coef[0] + coef[1 + grid_cells.ravel()] + coef[1 + n_cells + grid_assays.ravel()]
    if multiplicative:
        pairs = np.expm1(pairs)
    return np.maximum.accumulate(np.maximum(pairs, 0.0), axis=1)


def quantile_tables(chunks: list[np.ndarray], columns: np.ndarray) -> np.ndarray:
    """Each store column's quantile function at :data:`LEVELS` over the sample (NaN read as 0)."""
    return sorted_quantiles(np.sort(np.nan_to_num(np.vstack([chunk[:, columns] for chunk in chunks])), axis=0)).T


def sorted_quantiles(values: np.ndarray, levels: np.ndarray = LEVELS) -> np.ndarray:
    """``np.quantile(values, levels, axis=0)`` (its default, linear method), value for value, of ``values`` sorted
    along axis 0. np.quantile partitions around each of the ~2,000 ranks 1,001 levels fall between, which takes
    seconds on float32 columns of a few thousand bins; a sort takes milliseconds."""
    n = values.shape[0]
    virtual = (n - 1) * levels  # as np.quantile places each level, and interpolates (numpy's _lerp)
    previous = np.floor(virtual)
    below = previous.astype(np.intp)
    above = np.minimum(below + 1, n - 1)
    below[virtual >= n - 1] = n - 1
    gamma = (virtual - previous).reshape((-1,) + (1,) * (values.ndim - 1))
    a, b = values[below], values[above]
    step = b - a
    out = np.add(a, step * gamma)
    np.subtract(b, step * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe")
    return out
