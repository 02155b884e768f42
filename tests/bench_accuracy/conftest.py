"""A miniature of the pilot: its 5 cells x 5 marks (so the benchmark's Latin square applies), few bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_bigwig

CELLS = ("E003", "E017", "E065", "E116", "E117")
MARKS = ("H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1")
N_BINS = 400


def write_mini_pilot(folder: Path, n_bins: int = N_BINS) -> Path:
    """tracks.tsv, chrom.sizes and 25 bigWigs on one contig of ``n_bins`` bins: a rank-2 signal plus noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    genome = rng.gamma(0.6, 1.5, size=(n_bins, 2))
    rows = ["cell_type\tassay\tpath"]
    for c, cell in enumerate(CELLS):
        for m, mark in enumerate(MARKS):
            weights = np.array([1.0 + 0.2 * c, 0.5 + 0.3 * m])
            values = genome @ weights + rng.gamma(0.3, 0.5, n_bins)
            write_bigwig(folder / f"{cell}.{mark}.bigWig", {"pilotA": n_bins * 25}, {"pilotA": values})
            rows.append(f"{cell}\t{mark}\t{cell}.{mark}.bigWig")
    (folder / "tracks.tsv").write_text("\n".join(rows) + "\n")
    (folder / "chrom.sizes").write_text(f"pilotA\t{n_bins * 25}\n")
    return folder


@pytest.fixture(scope="package")
def mini_pilot(tmp_path_factory) -> Path:
    """The miniature pilot of :data:`N_BINS` bins, shared by the package's tests."""
    return write_mini_pilot(tmp_path_factory.mktemp("mini-pilot"))
