"""The refinement's inputs made comparable, and its features: steps 1, 2 and 5 of
:mod:`predictd_core.impute.refine`.

Each input track's quantile function over the sample (:func:`quantile_tables`) maps it onto its assay's
reference distribution (:func:`monotone_map`), and an additive cell + assay model of those functions
(:func:`additive_scale`) maps a refined value back onto the scale expected of its cell. On the reference
scale, a chunk's features (:class:`ChunkFeatures`) are window means (:func:`window_means`) of the
other cells' average of each assay and of the cell's own tracks.
"""

from __future__ import annotations

import numpy as np

from predictd_core.model.factors import Layout

LEVELS = np.linspace(0.0, 1.0, 1001)
WINDOWS = (0, 4, 40)  # half-widths in bins: 25 bp, 225 bp and 2 kb means


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


def additive_scale(tables: np.ndarray, cells: np.ndarray, assays: np.ndarray, n_cells: int, n_assays: int
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
