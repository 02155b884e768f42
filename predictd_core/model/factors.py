"""The fitted parameters that do not depend on the bin: mu, C, A and the cell and assay biases.

Genome factors G and bin biases b_i are never stored: for any bin they are the closed-form ridge
solution given these parameters and the bin's observed experiments (see ``solvers.als``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """How store columns map to the cell x assay grid.

    Attributes
    ----------
    cells, assays : tuple of str
        The grid's axes, in order of first appearance in the tracks table.
    cell_of, assay_of : ndarray of shape (n_experiments,), int
        Row of each store column on each axis.
    """

    cells: tuple[str, ...]
    assays: tuple[str, ...]
    cell_of: np.ndarray
    assay_of: np.ndarray

    @classmethod
    def from_experiments(cls, experiments) -> "Layout":
        cells = tuple(dict.fromkeys(e.cell_type for e in experiments))
        assays = tuple(dict.fromkeys(e.assay for e in experiments))
        return cls(cells, assays, np.array([cells.index(e.cell_type) for e in experiments], dtype=np.int64),
                   np.array([assays.index(e.assay) for e in experiments], dtype=np.int64))

    def all_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (cell, assay) of the grid, observed or not: two index arrays, cell-major."""
        cells, assays = np.meshgrid(np.arange(len(self.cells)), np.arange(len(self.assays)), indexing="ij")
        return cells.ravel(), assays.ravel()

    def pair_name(self, cell: int, assay: int) -> str:
        """``"CELL:ASSAY"`` of a grid pair, as experiments are named in folds, configs and reports."""
        return f"{self.cells[cell]}:{self.assays[assay]}"

    def column_names(self, columns: np.ndarray | None = None) -> tuple[str, ...]:
        """``"CELL:ASSAY"`` of each store column (default: all of them)."""
        columns = np.arange(self.cell_of.size) if columns is None else np.asarray(columns)
        return tuple(self.pair_name(self.cell_of[k], self.assay_of[k]) for k in columns)

    def same_assay_columns(self, seen: np.ndarray, column: int) -> np.ndarray:
        """The columns among ``seen`` that measure ``column``'s assay in another cell: the average baseline's
        inputs."""
        return seen[(self.assay_of[seen] == self.assay_of[column]) & (self.cell_of[seen] != self.cell_of[column])]


@dataclass(frozen=True)
class CellAssayFactors:
    """mu, C (n_cells, K), A (n_assays, K), b_c (n_cells,), b_a (n_assays,)."""

    mu: float
    C: np.ndarray
    A: np.ndarray
    b_c: np.ndarray
    b_a: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.C.shape[1])

    def design(self, cell_idx: np.ndarray, assay_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``z = C[c] * A[a]`` (n, K) and offsets ``mu + b_c[c] + b_a[a]`` (n,) for given pairs."""
        return self.C[cell_idx] * self.A[assay_idx], self.mu + self.b_c[cell_idx] + self.b_a[assay_idx]

    def to_bytes(self) -> bytes:
        """Serialise as a ``.npz`` payload."""
        buffer = io.BytesIO()
        np.savez(buffer, mu=np.float64(self.mu), C=self.C, A=self.A, b_c=self.b_c, b_a=self.b_a)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> "CellAssayFactors":
        with np.load(io.BytesIO(payload)) as data:
            return cls(float(data["mu"]), data["C"], data["A"], data["b_c"], data["b_a"])


def initial_factors(layout: Layout, rank: int, seed: int, column_sums: np.ndarray, column_counts: np.ndarray,
                    train_columns: np.ndarray) -> CellAssayFactors:
    """PREDICTD's initialisation: factors from Uniform(-0.33, 0.33); mu and biases by residual means.

    mu is the mean of the training entries, b_c the mean per cell of the centred training entries,
    b_a the mean per assay of what remains (``calc_dim_bias`` in PREDICTD).

    Parameters
    ----------
    column_sums, column_counts : ndarray of shape (n_experiments,)
        Sum and number of observed (non-NaN) entries of each store column.
    train_columns : ndarray of int
        Store columns used for training.
    """
    rng = np.random.default_rng(seed)
    n_cells, n_assays = len(layout.cells), len(layout.assays)
    C = rng.uniform(-0.33, 0.33, size=(n_cells, rank))
    A = rng.uniform(-0.33, 0.33, size=(n_assays, rank))
    sums, counts = column_sums[train_columns], column_counts[train_columns]
    cell_of, assay_of = layout.cell_of[train_columns], layout.assay_of[train_columns]
    mu = float(sums.sum() / counts.sum())
    centred = sums - mu * counts
    b_c = _group_mean(centred, counts, cell_of, n_cells)
    b_a = _group_mean(centred - b_c[cell_of] * counts, counts, assay_of, n_assays)
    return CellAssayFactors(mu, C, A, b_c, b_a)


def _group_mean(sums: np.ndarray, counts: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    total = np.bincount(group, weights=sums, minlength=n_groups)
    n = np.bincount(group, weights=counts, minlength=n_groups)
    return np.divide(total, n, out=np.zeros(n_groups), where=n > 0)
