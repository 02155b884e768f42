"""The cross-validated pilot run that the S3 and Azure run tests compare with: its settings, and ``predictd cv``
of them on local files (:func:`local_reference`), run once per test session (``local_run`` in conftest.py).

The refinement is fitted on a sample of 4 stretches with 2 inner tracks (its defaults cost minutes a run): the
cloud tests check where the outputs go and that they equal a local run's, not the blend it chooses.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyBigWig
import yaml

N_TEST, N_VALID = 5, 2
REGIONS = "pilotA\t0\t1500000\npilotA\t7000000\t7500000\n"  # 80,000 of the pilot's 563,234 bins, two spans
PROMOTERS = "".join(f"pilotA\t{start}\t{start + 2000}\n" for start in range(10_000, 7_500_000, 50_000))
SETTINGS = {"bin_size": 25, "chunk_bins": 16384,
            "model": {"solver": "als", "rank": 6, "max_iters": 3,
                      "refine": {"sample_bins": 16384, "inner_tracks": 2}},
            "cv": {"n_test": N_TEST, "n_valid": N_VALID, "spread": True}, "engine": {"kind": "numpy"}}
MODELS = [(i, j) for i in range(N_TEST) for j in range(N_VALID)]


def local_reference(pilot_dir: Path, root: Path) -> Path:
    """``predictd cv`` of :data:`SETTINGS` over the pilot in ``root`` (regions and promoters beside its config);
    returns its output folder."""
    from predictd_core.cli.main import main

    root.mkdir(parents=True, exist_ok=True)
    (root / "regions.bed").write_text(REGIONS)
    (root / "promoters.bed").write_text(PROMOTERS)
    config = {"tracks": str(pilot_dir / "tracks.tsv"), "chrom_sizes": str(pilot_dir / "chrom.sizes"),
              "regions": "regions.bed", "evaluation": {"promoters": "promoters.bed"}, **SETTINGS, "output": "out"}
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["cv", str(root / "run.yaml")]) == 0
    return root / "out"


def tsv(payload: bytes) -> list[dict]:
    """The rows of a tab-separated table with a header."""
    return list(csv.DictReader(io.StringIO(payload.decode()), delimiter="\t"))


def intervals(path: Path) -> dict[str, np.ndarray]:
    """Every contig's (start, end, value) intervals of a bigWig."""
    handle = pyBigWig.open(str(path))
    try:
        return {contig: np.array(handle.intervals(contig) or [], dtype=np.float64) for contig in handle.chroms()}
    finally:
        handle.close()
