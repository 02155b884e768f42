"""The ridge algebra of one parameter row, written once: its normal equations, penalty and solve.

Every solve in PREDICTD's model is a ridge regression of one row ``x = [factors; bias]`` on a design
``D`` whose last column is the bias's 1: a bin's ``[G_i, b_i]`` (the G step, the genome rows of the
left-out predictions and of an extension), a cell type's ``[C_c, b_c]`` or an assay's ``[A_a, b_a]``
(ALS's C, A and bias steps, and the rows an extension adds). Each minimises

    |D x - y|^2 + (x - m)' diag(p) (x - m),   so   (D'D + diag(p)) x = D'y + p o m

with ``p`` the ridge on each entry of ``x`` (:func:`ridge_penalty`: one value on the factors, another
on the bias), ``m`` the prior the row shrinks toward and ``o`` the elementwise product. The callers
differ only in where ``D'D`` and ``D'y`` come from, and the solve comes in two shapes:

- **Many rows, one design** (the bins of a chunk observed in the same experiments): one inverse of the
  small Gram matrix serves every row (:func:`solve_shared_design`), and gives each observation's
  leverage (:func:`leverages`). The prior is 0.
- **One design per row** (cell types, assays): the caller builds each row's :class:`NormalEquations`
  from its sufficient statistics and :func:`solve_rows` solves them one at a time, with penalties that
  grow with the row's number of entries (Spark's ALS-WR "weighted lambda", PREDICTD's per-sample
  penalty). :func:`row_penalty` is their value in the objective.

Pure numpy, no knowledge of cells, assays or engines: as Spark MLlib's ``NormalEquation`` and
``CholeskySolver`` are kept apart from the distribution of its ALS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np


def with_bias_column(X: np.ndarray) -> np.ndarray:
    """``[X 1]``: the design of rows with a bias, from the columns that multiply their factors."""
    return np.hstack([X, np.ones((X.shape[0], 1))])


def ridge_penalty(n_factors: int, factor: float, bias: float) -> np.ndarray:
    """The ridge on each entry of ``[factors; bias]``: ``factor`` on the ``n_factors`` factors, ``bias`` on the bias."""
    return np.append(np.full(n_factors, float(factor)), bias)


def gram_inverse(design: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """``(D'D + diag(penalty))^-1``; with ridge 0 and fewer experiments than factors, the pseudo-inverse
    (the minimum-norm answer)."""
    gram = design.T @ design + np.diag(penalty)
    try:
        return np.linalg.inv(gram)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(gram)


def solve_shared_design(rhs: np.ndarray, design: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """The ridge solutions (prior 0) of rows that share ``design``, from their right-hand sides ``rhs = Y D``.

    Parameters
    ----------
    rhs : ndarray of shape (n_rows, n_columns)
        ``D'y`` of each row, as a row.
    design : ndarray of shape (n_observations, n_columns)
    penalty : ndarray of shape (n_columns,)

    Returns
    -------
    ndarray of shape (n_rows, n_columns)
    """
    # One product with the inverse of the small Gram matrix: a matrix product over the rows runs several
    # times faster than LAPACK's triangular solves on a transposed copy of rhs, and the ridge keeps the
    # Gram matrix well conditioned.
    return rhs @ gram_inverse(design, penalty)


def solution_operator(design: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """``D (D'D + diag(penalty))^-1``: the matrix that takes a row's observations ``y`` (as a row) to its ridge
    solution ``y D (D'D + diag(penalty))^-1`` (prior 0).

    Rows that share ``design`` are solved by one product with it; operators of several designs side by side
    solve every design's rows from one read of the observations.

    Parameters
    ----------
    design : ndarray of shape (n_observations, n_columns)
    penalty : ndarray of shape (n_columns,)

    Returns
    -------
    ndarray of shape (n_observations, n_columns)
    """
    return design @ gram_inverse(design, penalty)


def leverages(design: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """The diagonal of ``D (D'D + diag(penalty))^-1 D'``: each observation's weight on its own fit."""
    return np.einsum("ij,jk,ik->i", design, gram_inverse(design, penalty), design)


@dataclass(frozen=True)
class NormalEquations:
    """The unpenalised normal equations of one row ``x = [factors; bias]``.

    Attributes
    ----------
    gram : ndarray of shape (K + 1, K + 1)
        ``D'D``.
    rhs : ndarray of shape (K + 1,)
        ``D'y``.
    entries : float
        Observations behind them (``N``), which the row's penalties are scaled by.
    """

    gram: np.ndarray
    rhs: np.ndarray
    entries: float


def solve(equations: NormalEquations, penalty: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """``x = (D'D + diag(penalty))^-1 (D'y + penalty o prior)``: the row's ridge solution toward ``prior``.

    Where the system is singular (no penalty and too few entries), the minimum-norm least-squares answer.
    """
    lhs = equations.gram + np.diag(penalty)
    rhs = equations.rhs + penalty * prior
    try:
        return np.linalg.solve(lhs, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


def solve_rows(equations: Callable[[int], NormalEquations], rows: Iterable[int], X: np.ndarray, b: np.ndarray,
               lam: float, lam_bias: float, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``[X_r; b_r]`` of each of ``rows`` from ``equations(r)``; every other row is kept.

    Each row's penalty is per entry: ``lam N`` on its factors, which shrink toward ``centre``, and
    ``lam_bias N`` on its bias, which shrinks toward 0, with ``N`` the row's ``entries``.

    Parameters
    ----------
    equations : callable
        The :class:`NormalEquations` of row ``r``.
    rows : iterable of int
        The rows to solve, in this order.
    X : ndarray of shape (n_rows, K)
    b : ndarray of shape (n_rows,)
    lam, lam_bias : float
    centre : ndarray of shape (K,)

    Returns
    -------
    X, b : ndarray
        New arrays (the inputs are not modified).
    """
    X, b = X.copy(), b.copy()
    K = X.shape[1]
    prior = np.append(centre, 0.0)
    for r in rows:
        row = equations(r)
        solution = solve(row, ridge_penalty(K, lam * row.entries, lam_bias * row.entries), prior)
        X[r], b[r] = solution[:K], solution[K]
    return X, b


def row_penalty(entries: np.ndarray, X: np.ndarray, b: np.ndarray, lam: float, lam_bias: float,
                centre: np.ndarray | float) -> tuple[float, float]:
    """The penalties of rows in the objective: ``sum_r lam N_r |X_r - centre|^2`` and ``sum_r lam_bias N_r b_r^2``.

    Returned apart, so the objective adds its terms one at a time in its own order.

    Parameters
    ----------
    entries : ndarray of shape (n_rows,)
        ``N_r``, the entries of each row.
    X : ndarray of shape (n_rows, K)
    b : ndarray of shape (n_rows,)
    """
    return lam * entries @ np.square(X - centre).sum(axis=1), lam_bias * entries @ np.square(b)
