"""Where a run's imputed tracks go: ``OUTPUT/imputed/CELL.ASSAY.bigWig`` (-log10 p) and, when the run writes
the ensemble's spread, ``OUTPUT/spread/CELL.ASSAY.bigWig`` (arcsinh). Imputation writes them; evaluation,
the manifest and the benchmarks read them back by these names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from predictd_core.io import join_location
from predictd_core.model.factors import Layout

IMPUTED_FOLDER = "imputed"
SPREAD_FOLDER = "spread"


def track_file(cell: str, assay: str) -> str:
    """The file name of the (cell, assay) track in ``imputed/`` and ``spread/``."""
    return f"{cell}.{assay}.bigWig"


def imputed_path(output: str | Path, cell: str, assay: str) -> str | Path:
    """Where the imputed track of (cell, assay) goes."""
    return join_location(output, IMPUTED_FOLDER, track_file(cell, assay))


def spread_path(output: str | Path, cell: str, assay: str) -> str | Path:
    """Where the ensemble's spread of (cell, assay) goes."""
    return join_location(output, SPREAD_FOLDER, track_file(cell, assay))


def imputed_folders(with_spread: bool) -> list[str]:
    """The folders an imputation writes: ``imputed/``, then ``spread/`` when it writes the spread (the order
    of :func:`~predictd_core.impute.job.impute_chunk`'s results)."""
    return [IMPUTED_FOLDER] + ([SPREAD_FOLDER] if with_spread else [])


def track_names(layout: Layout, pairs: np.ndarray | None = None) -> list[str]:
    """The file name of every pair's track (or of ``pairs``', indices into the cell-major pairs), in the
    layout's (cell-major) order."""
    cells, assays = layout.all_pairs()
    if pairs is not None:
        cells, assays = cells[pairs], assays[pairs]
    return [track_file(layout.cells[c], layout.assays[a]) for c, a in zip(cells, assays)]


def imputed_outputs(output: str | Path, layout: Layout, with_spread: bool,
                    pairs: np.ndarray | None = None) -> list[str | Path]:
    """Every track an imputation of ``layout``'s pairs (or of ``pairs``) writes under ``output``: folder by
    folder (:func:`imputed_folders`), pairs in the layout's (cell-major) order."""
    names = track_names(layout, pairs)
    return [join_location(output, folder, name) for folder in imputed_folders(with_spread) for name in names]
