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

from predictd_core.solvers.nadam.fit import fit_nadam
from predictd_core.solvers.nadam.passes import (EvalInputs, EvalStats, RoundInputs, RoundResult, evaluate_chunk,
                                                sgd_round)
from predictd_core.solvers.nadam.state import ChunkState, NadamHyper, SharedState, initial_chunk_state
from predictd_core.solvers.nadam.steps import nadam_update, penalty_rows, sample_gradient, sample_loss

__all__ = [
    "ChunkState", "EvalInputs", "EvalStats", "NadamHyper", "RoundInputs", "RoundResult", "SharedState",
    "evaluate_chunk", "fit_nadam", "initial_chunk_state", "nadam_update", "penalty_rows", "sample_gradient",
    "sample_loss", "sgd_round",
]
