"""Which (cell type, assay) pairs a simulated compendium measures: a grid with dropped pairs, or a Roadmap layout.

A Roadmap layout folder holds ``predictd_splits.json`` (the observed experiments, ``CELL-ASSAY``, in their
train/val/test split) and optionally ``idmap.json`` (the order of cell types and assays). Without one, the
grid is ``n_cells`` cell types named as Roadmap's (E001, E002, ...) by the first ``n_assays`` of
:data:`ASSAYS`, with a share of pairs left unmeasured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from predictd_core.errors import PredictdInputError

ASSAYS = ("H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1", "H3K27ac", "H3K9ac", "DNase",
          "H3K4me2", "H2A.Z", "H3K79me2", "H4K20me1", "H3K79me1", "H3K4ac", "H2AK5ac", "H2BK120ac",
          "H2BK5ac", "H3K18ac", "H3K23ac", "H4K8ac", "H2BK12ac", "H3K14ac", "H4K91ac", "H2BK15ac")
"""The 24 Roadmap assays, the most often measured first (the order used without a layout)."""

DEFAULT_GRID = (6, 5)
"""Cell types and assays of a compendium without a layout, unless asked otherwise."""


def roadmap_cell_names(n: int) -> list[str]:
    """Roadmap epigenome ids E001, E002, ... (E060 and E064 do not exist, as in Roadmap)."""
    names, number = [], 1
    while len(names) < n:
        if number not in (60, 64):
            names.append(f"E{number:03d}")
        number += 1
    return names


def load_roadmap_layout(folder: str | os.PathLike) -> tuple[list[str], list[str], set[tuple[str, str]],
                                                          dict[tuple[str, str], str]]:
    """Read a Roadmap layout folder (``predictd_splits.json``, ``idmap.json``): cells, assays, observed
    experiments, split.

    Cells come in ``idmap.json`` order (E001..E129; sorted names without it). Assays come from the
    most measured to the least (ties in ``idmap.json`` order), so the first five are the five core
    marks every epigenome has and a small sub-grid is not mostly empty.

    Returns
    -------
    cells, assays, observed, split
        ``observed`` holds (cell, assay) pairs; ``split`` maps each to ``train``, ``val`` or ``test``.
    """
    root = Path(folder)
    splits_path = root / "predictd_splits.json"
    if not root.is_dir():
        raise PredictdInputError(str(root), "layout", "layout folder not found (a Roadmap layout folder holds "
                                 "predictd_splits.json and idmap.json)")
    if not splits_path.is_file():
        raise PredictdInputError(str(splits_path), "layout",
                                 f"the layout folder {root} has no predictd_splits.json (the observed "
                                 "experiments and their split)")
    try:
        splits = json.loads(splits_path.read_text())
        split: dict[tuple[str, str], str] = {}
        for part, names in splits.items():
            for name in names:
                cell, assay = name.split("-", 1)
                split[(cell, assay)] = part
    except (ValueError, AttributeError) as error:
        raise PredictdInputError(str(splits_path), "layout",
                                 f"expected {{split: ['CELL-ASSAY', ...]}}: {error}") from error
    observed = set(split)
    idmap_path = root / "idmap.json"
    if idmap_path.is_file():
        idmap = json.loads(idmap_path.read_text())
        cell_rank = {name: i for i, name in enumerate(sorted(idmap["cell2id"], key=idmap["cell2id"].get))}
        assay_rank = {name: i for i, name in enumerate(sorted(idmap["assay2id"], key=idmap["assay2id"].get))}
    else:
        cell_rank = {name: i for i, name in enumerate(sorted({c for c, _ in observed}))}
        assay_rank = {name: i for i, name in enumerate(sorted({a for _, a in observed}))}
    counts = {a: 0 for a in assay_rank}
    for _, assay in observed:
        counts[assay] = counts.get(assay, 0) + 1
    cells = sorted(cell_rank, key=cell_rank.get)
    assays = sorted(counts, key=lambda a: (-counts[a], assay_rank.get(a, len(assay_rank)), a))
    return cells, assays, observed, split


def _drop_pairs(rng: np.random.Generator, n_cells: int, n_assays: int, fraction: float) -> np.ndarray:
    """An observed mask with ``round(fraction * pairs)`` pairs dropped, >= 2 kept per row and column."""
    mask = np.ones((n_cells, n_assays), dtype=bool)
    target = int(round(fraction * mask.size))
    if target == 0:
        return mask
    if n_cells < 2 or n_assays < 2:
        raise PredictdInputError("simulate", "missing_fraction",
                                 "dropping experiments needs at least 2 cell types and 2 assays")
    row, col = np.full(n_cells, n_assays), np.full(n_assays, n_cells)
    dropped = 0
    for flat in rng.permutation(mask.size):
        c, a = divmod(int(flat), n_assays)
        if row[c] > 2 and col[a] > 2:
            mask[c, a] = False
            row[c] -= 1
            col[a] -= 1
            dropped += 1
            if dropped == target:
                return mask
    raise PredictdInputError("simulate", "missing_fraction",
                             f"{fraction} of {mask.size} pairs is {target}, but only {dropped} can be dropped "
                             f"while every cell type and assay keeps 2 experiments")


def compendium_grid(n_cells: int | None, n_assays: int | None, missing_fraction: float,
                    layout: str | os.PathLike | None, rng: np.random.Generator
                    ) -> tuple[list[str], list[str], np.ndarray, dict[tuple[str, str], str]]:
    """Cell types, assays, observed mask and (with a layout) the Roadmap split of each observed pair.

    Arguments are those of :func:`~predictd_core.simulate.simulate_compendium`; ``rng`` draws the
    dropped pairs of a grid without a layout.
    """
    if layout is None:
        n_cells = DEFAULT_GRID[0] if n_cells is None else n_cells
        n_assays = DEFAULT_GRID[1] if n_assays is None else n_assays
        if n_assays > len(ASSAYS):
            raise PredictdInputError("simulate", "n_assays", f"at most {len(ASSAYS)} (the Roadmap assays), "
                                     f"got {n_assays}")
        cells, assays = roadmap_cell_names(n_cells), list(ASSAYS[:n_assays])
        return cells, assays, _drop_pairs(rng, n_cells, n_assays, missing_fraction), {}
    if missing_fraction:
        raise PredictdInputError("simulate", "missing_fraction",
                                 "a layout keeps the real holes; leave missing_fraction at 0")
    all_cells, all_assays, observed, split = load_roadmap_layout(layout)
    n_cells = len(all_cells) if n_cells is None else n_cells
    n_assays = len(all_assays) if n_assays is None else n_assays
    if n_cells > len(all_cells) or n_assays > len(all_assays):
        raise PredictdInputError("simulate", "n_cells/n_assays", f"the Roadmap layout has {len(all_cells)} "
                                 f"cell types and {len(all_assays)} assays, asked for {n_cells} x {n_assays}")
    cells, assays = all_cells[:n_cells], all_assays[:n_assays]
    mask = np.array([[(c, a) in observed for a in assays] for c in cells], dtype=bool)
    empty = [c for c, n in zip(cells, mask.sum(axis=1)) if n == 0] + \
            [a for a, n in zip(assays, mask.sum(axis=0)) if n == 0]
    if empty:
        raise PredictdInputError("simulate", "n_cells/n_assays",
                                 f"in the first {n_cells} x {n_assays} of the Roadmap layout "
                                 f"{', '.join(empty)} have no observed experiment; take more cell types "
                                 f"or fewer assays")
    return cells, assays, mask, split

