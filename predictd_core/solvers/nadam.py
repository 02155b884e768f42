"""PREDICTD's parallel NAdam SGD (``nadam-sgd``), kept as published: the faithful baseline.

Model and data as in :mod:`predictd_core.solvers.als`::

    y_hat[i, e] = mu + b_c[c] + b_a[a] + b_i[i] + sum_k C[c, k] A[a, k] G[i, k]      (mu fixed)

One SGD step samples an observed training entry (i, e = (c, a)) and descends the per-sample loss

    l = 0.5 err^2 + 0.5 (rc |C_c|^2 + rbc b_c^2 + ra |A_a|^2 + rba b_a^2 + ri |G_i|^2 + rbi b_i^2),
    err = y_hat[i, e] - y[i, e],

whose gradient is PREDICTD's (``err * (A_a o G_i) + rc C_c`` and so on, no factor 2). Its expectation
over the sampled entries is the gradient of ``J / (2 n_entries)`` with the objective reported in the
history,

    J = sum_(observed training entries) err^2 + sum_c N_c (rc |C_c|^2 + rbc b_c^2)
        + sum_a N_a (ra |A_a|^2 + rba b_a^2) + sum_i N_i (ri |G_i|^2 + rbi b_i^2),

where N_c, N_a, N_i count the observed training entries of cell c, assay a, bin i (each penalty acts
per entry, as in PREDICTD's per-sample SGD). Penalties are scaled as ``train_model.py`` did:
rc / (K n_cells), ra / (K n_assays), ri / (K n_bins); the bias penalties are used as given.

Optimiser (``one_iteration`` in ``predictd_lib.py``): NAdam with a step counter t per parameter row
(cell row [C_c, b_c], assay row [A_a, b_a], bin row [G_i, b_i]; a factor row and its bias share t)::

    beta1_t = beta1 d^(t-1),  lr_t = lr d^(t-1),  d = 1 - 1e-6,  P_t = prod_(j<=t) beta1_j
    g_hat = g / (1 - P_t)
    m = beta1_t m + (1 - beta1_t) g,      m_hat = m / (1 - P_(t+1))
    v = beta2 v + (1 - beta2) g^2,        v_hat = v / (1 - beta2^t)
    m_bar = (1 - beta1_t) g_hat + beta1_(t+1) m_hat
    theta <- theta - lr_t m_bar / (sqrt(v_hat) + eps)

(P_t in closed form, beta1^t d^(t(t-1)/2); PREDICTD kept a running product.) The three rows touched by
a step are updated together from their pre-step values.

Parallel scheme (one round = PREDICTD's "parallel SGD iteration"): every chunk of bins starts from the
same C, A, b_c, b_a and their NAdam state (the payload), runs ``batch_size`` sequential steps on its own
bins, and returns its final local copy; the driver takes the plain mean over the chunks that took steps
(values and moments; counters advance by the rounded mean of the per-chunk step counts). G, b_i and
their NAdam state live with their chunk (the engine's per-chunk state) and are only ever updated there.
No accumulators: results are returned and summed by the engine, so a retried task cannot count twice,
and each chunk's RNG is derived from (seed, round, chunk) so a retried task repeats its answer.

Validation and stopping: after every round (PREDICTD's ``iters_per_mse`` was 3; here every round, since
the evaluation pass is one matrix product per chunk and so cheap next to the SGD round, and so that
``patience`` counts rounds as it counts sweeps for ALS) the training and validation MSE are computed
with each chunk's current G and b_i. The best snapshot by validation MSE (C, A, biases, their NAdam
state, and every chunk's state) is kept and returned. After ``patience`` evaluations without a relative
improvement above ``tol`` the fit reverts to the best snapshot, halves lr and sets
beta1 <- beta1 - (1 - beta1) (never below 0), at most ``lrate_search_num`` times; the next plateau
stops. It also stops after ``max_iters`` rounds or on a non-finite MSE (as PREDICTD did).
The rank-sum plateau test of PREDICTD (15/5/15 evaluations) is replaced by this patience rule.

Departures from PREDICTD, on purpose:

- Missing data are NaN; an observed 0 is a sample like any other (PREDICTD skipped zeros).
- No burn-in. PREDICTD's burn-in (a) fitted C, A on 8000 bins for half an epoch and (b) fitted G with
  C, A fixed by SGD; here (a) is skipped (C, A, biases start from ``initial_factors``) and (b) is
  replaced by the closed-form ridge :func:`predictd_core.solvers.als.genome_step` on the training
  columns (lambda = ri2), which is the exact minimiser that step-(b) SGD approaches.
- The history has an iteration-0 row: the start (initial factors, ridge G) scored before any round.
- A revert also restores the step counters (PREDICTD restored values and moments only).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from predictd_core.model.factors import CellAssayFactors, Layout
from predictd_core.model.settings import ModelSettings, Penalties
from predictd_core.solvers import als

if TYPE_CHECKING:  # typing only: the solvers call an engine's methods and import none of its modules
    from predictd_core.engine.base import Engine

DECAY = 1.0 - 1e-6  # PREDICTD's per-step decay of beta1 and of the learning rate
_LOG_DECAY = math.log1p(-1e-6)
# For the rows (cell, assay, bin) of a step, the two other rows whose factors multiply it.
_OTHER_1 = np.array([1, 0, 0])
_OTHER_2 = np.array([2, 2, 1])

__all__ = [
    "ChunkState", "EvalInputs", "EvalStats", "NadamHyper", "RoundInputs", "RoundResult", "SharedState",
    "evaluate_chunk", "fit_nadam", "initial_chunk_state", "nadam_update", "penalty_rows", "sample_gradient",
    "sample_loss", "sgd_round",
]


# --------------------------------------------------------------------------------------------------
# The per-sample algebra (pure functions, tested on their own)
# --------------------------------------------------------------------------------------------------

def sample_loss(y: float, mu: float, rows: np.ndarray, reg: np.ndarray) -> float:
    """Per-sample loss ``0.5 err^2 + 0.5 sum(reg * rows^2)`` (the function one SGD step descends).

    Parameters
    ----------
    y : float
        Observed value of the entry.
    mu : float
        The fixed global mean.
    rows : ndarray of shape (3, K + 1)
        ``[C_c, b_c]``, ``[A_a, b_a]``, ``[G_i, b_i]``.
    reg : ndarray of shape (3, K + 1)
        Scaled penalties of each element (see :func:`penalty_rows`).
    """
    err = mu + rows[:, -1].sum() + float(np.prod(rows[:, :-1], axis=0).sum()) - y
    return 0.5 * err * err + 0.5 * float((reg * rows * rows).sum())


def sample_gradient(y: float, mu: float, rows: np.ndarray, reg: np.ndarray) -> tuple[float, np.ndarray]:
    """Error and gradient of :func:`sample_loss` for one sampled entry.

    Returns
    -------
    err : float
        ``y_hat - y``.
    grad : ndarray of shape (3, K + 1)
        Row 0 ``[err (A_a o G_i) + rc C_c, err + rbc b_c]``, row 1 ``[err (C_c o G_i) + ra A_a, err + rba b_a]``,
        row 2 ``[err (C_c o A_a) + ri G_i, err + rbi b_i]`` (``o`` elementwise), all at the given values.
    """
    factors = rows[:, :-1]
    partner = factors[_OTHER_1] * factors[_OTHER_2]
    err = mu + rows[:, -1].sum() + partner[0] @ factors[0] - y
    grad = reg * rows
    grad[:, :-1] += err * partner
    grad[:, -1] += err
    return float(err), grad


def nadam_update(theta: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t,
                 lr: float, beta1: float, beta2: float, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One NAdam step of PREDICTD's schedule (module docstring) for rows whose counter is now ``t``.

    Parameters
    ----------
    theta, grad, m, v : ndarray
        Parameters, their gradient and first and second moments (same shape).
    t : int or ndarray
        The step number being taken (>= 1), broadcastable against ``theta`` (shape (n_rows, 1) for rows).

    Returns
    -------
    theta, m, v : ndarray
        New values (the inputs are not modified).
    """
    t = np.asarray(t, dtype=np.float64)
    decayed = np.exp((t - 1.0) * _LOG_DECAY)  # d^(t-1)
    beta1_t = beta1 * decayed
    beta1_next = beta1_t * DECAY
    # prod_(j<=t) beta1_j = beta1^t d^(t(t-1)/2); beta1 = 0 (after many lr halvings) gives 0.
    prod_t = beta1 ** t * np.exp((0.5 * t) * (t - 1.0) * _LOG_DECAY)
    m = beta1_t * m + (1.0 - beta1_t) * grad
    v = beta2 * v + (1.0 - beta2) * (grad * grad)
    m_bar = ((1.0 - beta1_t) / (1.0 - prod_t)) * grad + (beta1_next / (1.0 - prod_t * beta1_next)) * m
    theta = theta - (lr * decayed) * m_bar / (np.sqrt(v / (1.0 - beta2 ** t)) + eps)
    return theta, m, v


def penalty_rows(penalties: Penalties, rank: int, n_cells: int, n_assays: int, n_bins: int) -> np.ndarray:
    """Scaled penalties per element of the cell, assay and bin rows: ndarray of shape (3, K + 1).

    ``rc / (K n_cells)``, ``ra / (K n_assays)``, ``ri / (K n_bins)`` on the factors (PREDICTD's
    ``train_model.py``); ``rbc``, ``rba``, ``rbi`` on the biases (last column) as given.
    """
    K = rank
    reg = np.empty((3, K + 1))
    reg[0, :K], reg[0, K] = penalties.rc / (K * n_cells), penalties.rbc
    reg[1, :K], reg[1, K] = penalties.ra / (K * n_assays), penalties.rba
    reg[2, :K], reg[2, K] = penalties.ri / (K * n_bins), penalties.rbi
    return reg


# --------------------------------------------------------------------------------------------------
# State: shared (driver) and per chunk
# --------------------------------------------------------------------------------------------------

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

    Departure from PREDICTD, whose burn-in step (b) fitted G by SGD with C and A fixed (module docstring).
    Bins without any training entry get zeros (they are never sampled).
    """
    Z, offset = factors.design(cell_of[train_columns], assay_of[train_columns])
    W, _ = als.genome_step(Y[:, train_columns], Z, offset, ridge)
    return ChunkState(W, np.zeros_like(W), np.zeros_like(W), np.zeros(W.shape[0], np.int64))


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


# --------------------------------------------------------------------------------------------------
# Evaluation pass
# --------------------------------------------------------------------------------------------------

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


def _objective(stats: EvalStats, shared: SharedState, reg: np.ndarray, cell_of: np.ndarray,
               assay_of: np.ndarray) -> float:
    """J of the module docstring: SSE plus the per-entry-weighted penalties."""
    n_cell = np.bincount(cell_of, weights=stats.column_count, minlength=shared.cells.shape[0])
    n_assay = np.bincount(assay_of, weights=stats.column_count, minlength=shared.assays.shape[0])
    return float(stats.train_sse + stats.genome_penalty + n_cell @ (np.square(shared.cells) @ reg[0])
                 + n_assay @ (np.square(shared.assays) @ reg[1]))


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Snapshot:
    shared: SharedState
    states: dict
    score: float
    iteration: int


def fit_nadam(engine: Engine, start: CellAssayFactors, layout: Layout, train_columns: np.ndarray,
              valid_columns: np.ndarray, settings: ModelSettings, n_bins: int,
              progress: Callable[[dict[str, Any]], None] | None) -> tuple[CellAssayFactors, list[dict], int]:
    """Fit by PREDICTD's parallel NAdam SGD; return the iterate with the lowest validation MSE.

    Parameters
    ----------
    engine : Engine
        Provides ``map_state``, ``reset_state`` and ``collect_state`` over the store's chunks. Its
        per-chunk state is replaced; on return it holds the best snapshot's genome rows.
    start : CellAssayFactors
        Initial mu (kept fixed), C, A, b_c, b_a.
    layout : Layout
    train_columns, valid_columns : ndarray of int
        Store columns to fit and to select on.
    settings : ModelSettings
        ``learning_rate``, ``beta1``, ``beta2``, ``epsilon``, ``batch_size``, ``penalties``, ``seed``,
        ``max_iters`` (rounds), ``patience``, ``tol``, ``lrate_search_num``.
    n_bins : int
        Bins in the store (scales ``ri``).
    progress : callable, optional
        Called with each history row.

    Returns
    -------
    factors : CellAssayFactors
        The best snapshot by validation MSE.
    history : list of dict
        Rows ``iteration`` (0 = the start, before any round), ``objective``, ``train_mse``, ``valid_mse``,
        ``seconds``.
    best_iteration : int
    """
    train_columns = np.asarray(train_columns, dtype=np.int64)
    valid_columns = np.asarray(valid_columns, dtype=np.int64)
    mu = float(start.mu)
    reg = penalty_rows(settings.penalties, start.rank, len(layout.cells), len(layout.assays), n_bins)
    ridge = settings.penalties.ri2
    hyper = NadamHyper(settings.learning_rate, settings.beta1, settings.beta2, settings.epsilon)
    train_cells, train_assays = layout.cell_of[train_columns], layout.assay_of[train_columns]

    def evaluate(shared: SharedState, iteration: int, started: float) -> dict[str, Any]:
        inputs = EvalInputs(shared.factors(mu), layout.cell_of, layout.assay_of, train_columns, valid_columns,
                            ridge, reg[2])
        stats = engine.map_state(evaluate_chunk, inputs)
        train_mse = stats.train_sse / max(stats.train_count, 1.0)
        valid_mse = stats.valid_sse / stats.valid_count if stats.valid_count else train_mse
        row = {"iteration": iteration, "objective": _objective(stats, shared, reg, train_cells, train_assays),
               "train_mse": float(train_mse), "valid_mse": float(valid_mse),
               "seconds": time.perf_counter() - started}
        if progress is not None:
            progress(row)
        return row

    engine.reset_state(None)
    shared = SharedState.start(start)
    row = evaluate(shared, 0, time.perf_counter())  # also fits every chunk's starting G and b_i
    history = [row]
    best = _Snapshot(shared, engine.collect_state(), row["valid_mse"], 0)
    since_best, searches_left = 0, settings.lrate_search_num
    for round_ in range(1, settings.max_iters + 1):
        started = time.perf_counter()
        inputs = RoundInputs(shared, mu, hyper, reg, settings.batch_size, settings.seed, round_, layout.cell_of,
                             layout.assay_of, train_columns, ridge)
        shared = engine.map_state(sgd_round, inputs).averaged(shared)
        row = evaluate(shared, round_, started)
        history.append(row)
        if not (np.isfinite(row["valid_mse"]) and np.isfinite(row["train_mse"])):
            break  # diverged: keep the best snapshot (PREDICTD stopped on a NaN MSE too)
        if row["valid_mse"] < best.score * (1.0 - settings.tol):
            best, since_best = _Snapshot(shared, engine.collect_state(), row["valid_mse"], round_), 0
        else:
            since_best += 1
        if since_best >= settings.patience:
            if searches_left == 0:
                break
            searches_left -= 1
            shared, since_best = best.shared, 0
            engine.reset_state(best.states)
            hyper = replace(hyper, lr=hyper.lr / 2.0, beta1=max(0.0, hyper.beta1 - (1.0 - hyper.beta1)))
    engine.reset_state(best.states)
    return best.shared.factors(mu), history, best.iteration
