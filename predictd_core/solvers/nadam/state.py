"""What a NAdam-SGD round starts from: C, A, biases and their NAdam state, shared by every chunk (the
driver's), and each chunk's genome rows, which live with their chunk (:mod:`predictd_core.solvers.nadam`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictd_core.model.factors import CellAssayFactors
from predictd_core.solvers import als


@dataclass(frozen=True)
class NadamHyper:
    """Learning rate and NAdam constants of the current learning-rate stage."""

    lr: float
    beta1: float
    beta2: float
    eps: float


@dataclass(frozen=True)
class SharedState:
    """C, A, biases and their NAdam state: what every chunk starts a round from.

    ``cells`` is ``[C, b_c]`` of shape (n_cells, K + 1), ``assays`` is ``[A, b_a]`` of shape (n_assays, K + 1);
    ``*_m``, ``*_v`` their moments; ``*_t`` the per-row step counters, int64.
    """

    cells: np.ndarray
    assays: np.ndarray
    cell_m: np.ndarray
    cell_v: np.ndarray
    assay_m: np.ndarray
    assay_v: np.ndarray
    cell_t: np.ndarray
    assay_t: np.ndarray

    @classmethod
    def start(cls, factors: CellAssayFactors) -> "SharedState":
        cells = np.column_stack([factors.C, factors.b_c]).astype(np.float64)
        assays = np.column_stack([factors.A, factors.b_a]).astype(np.float64)
        return cls(cells, assays, np.zeros_like(cells), np.zeros_like(cells), np.zeros_like(assays),
                   np.zeros_like(assays), np.zeros(cells.shape[0], np.int64), np.zeros(assays.shape[0], np.int64))

    def factors(self, mu: float) -> CellAssayFactors:
        return CellAssayFactors(mu, self.cells[:, :-1].copy(), self.assays[:, :-1].copy(),
                                self.cells[:, -1].copy(), self.assays[:, -1].copy())


@dataclass(frozen=True)
class ChunkState:
    """One chunk's genome rows ``W = [G, b_i]`` (n_chunk_bins, K + 1), their moments and step counters.

    Never modified in place (snapshots hold references to it).
    """

    W: np.ndarray
    m: np.ndarray
    v: np.ndarray
    t: np.ndarray


def initial_chunk_state(Y: np.ndarray, factors: CellAssayFactors, cell_of: np.ndarray, assay_of: np.ndarray,
                        train_columns: np.ndarray, ridge: float) -> ChunkState:
    """G and b_i of a chunk by closed-form ridge on its training columns, C and A fixed; zero NAdam state.

    Departure from PREDICTD, whose burn-in step (b) fitted G by SGD with C and A fixed
    (:mod:`predictd_core.solvers.nadam`).
    Bins without any training entry get zeros (they are never sampled).
    """
    Z, offset = factors.design(cell_of[train_columns], assay_of[train_columns])
    W, _ = als.genome_step(Y[:, train_columns], Z, offset, ridge)
    return ChunkState(W, np.zeros_like(W), np.zeros_like(W), np.zeros(W.shape[0], np.int64))
