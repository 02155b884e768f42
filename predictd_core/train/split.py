"""Choosing which training experiments steer early stopping."""

from __future__ import annotations

import numpy as np

from predictd_core.model.factors import Layout


def choose_validation(layout: Layout, columns: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split store columns into training and validation experiments, deterministically by seed.

    About ``fraction`` of the columns go to validation, never leaving a cell type or an assay
    without a training experiment (its factors would be unconstrained).

    Returns
    -------
    train, valid : ndarray of int
        Sorted store columns.
    """
    columns = np.asarray(columns, dtype=np.int64)
    wanted = int(round(fraction * columns.size))
    cell_left = np.bincount(layout.cell_of[columns], minlength=len(layout.cells))
    assay_left = np.bincount(layout.assay_of[columns], minlength=len(layout.assays))
    valid: list[int] = []
    for column in np.random.default_rng(seed).permutation(columns):
        if len(valid) >= wanted:
            break
        c, a = layout.cell_of[column], layout.assay_of[column]
        if cell_left[c] > 1 and assay_left[a] > 1:
            cell_left[c] -= 1
            assay_left[a] -= 1
            valid.append(int(column))
    valid_set = set(valid)
    return np.array(sorted(c for c in columns if c not in valid_set), dtype=np.int64), np.array(sorted(valid), dtype=np.int64)
