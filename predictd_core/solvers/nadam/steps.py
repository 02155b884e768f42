"""The per-sample algebra of a NAdam-SGD step (pure functions, tested on their own): the loss one step
descends, its gradient, PREDICTD's NAdam update and the scaled penalties (:mod:`predictd_core.solvers.nadam`)."""

from __future__ import annotations

import math

import numpy as np

from predictd_core.model.settings import Penalties

DECAY = 1.0 - 1e-6  # PREDICTD's per-step decay of beta1 and of the learning rate
_LOG_DECAY = math.log1p(-1e-6)
# For the rows (cell, assay, bin) of a step, the two other rows whose factors multiply it.
_OTHER_1 = np.array([1, 0, 0])
_OTHER_2 = np.array([2, 2, 1])


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
    """One NAdam step of PREDICTD's schedule (:mod:`predictd_core.solvers.nadam`) for rows whose counter is now ``t``.

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
