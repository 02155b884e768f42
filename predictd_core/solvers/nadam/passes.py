"""The two passes of NAdam-SGD over a store's chunks (engine ``map_state`` functions and their payloads):
an SGD round, whose local cell and assay rows the driver averages, and an evaluation of the current factors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictd_core.solvers import als
from predictd_core.solvers.nadam.state import ChunkState, NadamHyper, SharedState, initial_chunk_state
from predictd_core.solvers.nadam.steps import nadam_update, sample_gradient


@dataclass(frozen=True)
class RoundInputs:
    """The payload of one SGD round (shipped to every chunk)."""

    shared: SharedState
    mu: float
    hyper: NadamHyper
    reg: np.ndarray
    batch_size: int
    seed: int
    round: int
    cell_of: np.ndarray
    assay_of: np.ndarray
    train_columns: np.ndarray
    ridge: float


@dataclass
class RoundResult(als.FieldwiseSum):
    """Sums over chunks of the final local cell and assay rows, moments and step-count increments.

    ``chunks`` counts the chunks that took steps (the divisor of the plain mean).
    """

    cells: np.ndarray
    assays: np.ndarray
    cell_m: np.ndarray
    cell_v: np.ndarray
    assay_m: np.ndarray
    assay_v: np.ndarray
    cell_dt: np.ndarray
    assay_dt: np.ndarray
    chunks: int
    steps: int

    def averaged(self, previous: SharedState) -> SharedState:
        """The driver's update: plain mean over chunks; counters advance by the rounded mean count."""
        if self.chunks == 0:
            return previous
        n = float(self.chunks)
        return SharedState(self.cells / n, self.assays / n, self.cell_m / n, self.cell_v / n,
                           self.assay_m / n, self.assay_v / n,
                           previous.cell_t + np.rint(self.cell_dt / n).astype(np.int64),
                           previous.assay_t + np.rint(self.assay_dt / n).astype(np.int64))


def _draw_observed(rng: np.random.Generator, observed: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (bin, training column) pairs: bin uniform, column uniform, unobserved ones rejected.

    Candidates are drawn in blocks and filtered, which gives the same distribution (uniform over the
    observed entries) as PREDICTD's one-at-a-time rejection loop. ``observed`` must have a True entry.
    """
    n_bins, n_cols = observed.shape
    density = observed.sum() / observed.size
    bins, cols, have = [], [], 0
    while have < count:
        size = int((count - have) / density * 1.2) + 64
        b = rng.integers(0, n_bins, size)
        e = rng.integers(0, n_cols, size)
        keep = observed[b, e]
        bins.append(b[keep])
        cols.append(e[keep])
        have += int(keep.sum())
    return np.concatenate(bins)[:count], np.concatenate(cols)[:count]


def _chunk_rng(seed: int, round_: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed % 2**63, round_, chunk])


def sgd_round(chunk: int, Y: np.ndarray, state: ChunkState | None, inputs: RoundInputs) -> tuple[ChunkState, RoundResult]:
    """One chunk's part of a round: ``batch_size`` sequential NAdam steps on its bins (``map_state`` fn).

    Parameters
    ----------
    chunk : int
        Chunk number (seeds the RNG together with the seed and the round).
    Y : ndarray of shape (n_chunk_bins, n_experiments)
        The chunk, every store column (float32, NaN = not observed).
    state : ChunkState or None
        The chunk's genome rows; None on first use (then :func:`initial_chunk_state`).
    inputs : RoundInputs

    Returns
    -------
    state : ChunkState
        The chunk's new genome rows and NAdam state.
    result : RoundResult
        The chunk's final local cell and assay rows (to be averaged on the driver).
    """
    shared, h = inputs.shared, inputs.hyper
    if state is None:
        state = initial_chunk_state(Y, shared.factors(inputs.mu), inputs.cell_of, inputs.assay_of,
                                    inputs.train_columns, inputs.ridge)
    n_cells, n_assays = shared.cells.shape[0], shared.assays.shape[0]
    Yt = Y[:, inputs.train_columns]
    observed = ~np.isnan(Yt)
    if inputs.batch_size == 0 or not observed.any():
        empty = RoundResult(np.zeros_like(shared.cells), np.zeros_like(shared.assays), np.zeros_like(shared.cells),
                            np.zeros_like(shared.cells), np.zeros_like(shared.assays), np.zeros_like(shared.assays),
                            np.zeros(n_cells), np.zeros(n_assays), 0, 0)
        return state, empty

    # One table for every row a step can touch: cells, then assays, then this chunk's bins.
    P = np.vstack([shared.cells, shared.assays, state.W])
    M = np.vstack([shared.cell_m, shared.assay_m, state.m])
    V = np.vstack([shared.cell_v, shared.assay_v, state.v])
    T = np.concatenate([shared.cell_t, shared.assay_t, state.t]).astype(np.int64)

    rng = _chunk_rng(inputs.seed, inputs.round, chunk)
    bins, cols = _draw_observed(rng, observed, inputs.batch_size)
    ys = Yt[bins, cols].astype(np.float64).tolist()
    cell_of, assay_of = inputs.cell_of[inputs.train_columns], inputs.assay_of[inputs.train_columns]
    steps = np.stack([cell_of[cols], n_cells + assay_of[cols], n_cells + n_assays + bins], axis=1)
    mu, reg, lr, beta1, beta2, eps = inputs.mu, inputs.reg, h.lr, h.beta1, h.beta2, h.eps
    # Sequential SGD cannot be vectorised across steps; each step is a few numpy calls on 3 x (K+1).
    for rows, y in zip(steps, ys):
        theta = P[rows]
        _, grad = sample_gradient(y, mu, theta, reg)
        t = T[rows] + 1
        T[rows] = t
        P[rows], M[rows], V[rows] = nadam_update(theta, grad, M[rows], V[rows], t[:, None], lr, beta1, beta2, eps)

    g = n_cells + n_assays
    new_state = ChunkState(P[g:].copy(), M[g:].copy(), V[g:].copy(), T[g:].copy())
    result = RoundResult(P[:n_cells].copy(), P[n_cells:g].copy(), M[:n_cells].copy(), V[:n_cells].copy(),
                         M[n_cells:g].copy(), V[n_cells:g].copy(), (T[:n_cells] - shared.cell_t).astype(np.float64),
                         (T[n_cells:g] - shared.assay_t).astype(np.float64), 1, len(ys))
    return new_state, result


@dataclass(frozen=True)
class EvalInputs(als.SweepInputs):
    """The payload of an evaluation pass: an ALS sweep's inputs plus the genome-row penalties."""

    reg_genome: np.ndarray


@dataclass
class EvalStats(als.FieldwiseSum):
    """Sums over chunks: squared errors and counts, the genome penalty term, entries per training column."""

    train_sse: float
    train_count: float
    valid_sse: float
    valid_count: float
    genome_penalty: float
    column_count: np.ndarray


def evaluate_chunk(chunk: int, Y: np.ndarray, state: ChunkState | None, inputs: EvalInputs) -> tuple[ChunkState, EvalStats]:
    """Training and validation errors of a chunk with its current G and b_i (``map_state`` fn).

    The state is returned unchanged (created by :func:`initial_chunk_state` if None). Validation
    entries are predicted with the chunk's G and b_i, which were fitted on the training columns only.
    """
    f = inputs.factors
    if state is None:
        state = initial_chunk_state(Y, f, inputs.cell_of, inputs.assay_of, inputs.train_columns, inputs.ridge)
    G, b_i = state.W[:, :-1], state.W[:, -1]

    def errors(columns: np.ndarray) -> tuple[float, np.ndarray]:
        Z, offset = f.design(inputs.cell_of[columns], inputs.assay_of[columns])
        values = Y[:, columns].astype(np.float64)
        err = values - (offset + b_i[:, None] + G @ Z.T)
        seen = ~np.isnan(values)
        return float(np.square(np.where(seen, err, 0.0)).sum()), seen

    train_sse, train_seen = errors(inputs.train_columns)
    valid_sse, valid_seen = errors(inputs.valid_columns)
    per_bin = train_seen.sum(axis=1)
    genome_penalty = float(per_bin @ (np.square(state.W) @ inputs.reg_genome))
    return state, EvalStats(train_sse, float(train_seen.sum()), valid_sse, float(valid_seen.sum()),
                            genome_penalty, train_seen.sum(axis=0).astype(np.float64))
