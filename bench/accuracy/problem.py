"""The benchmark's data: the pilot tracks in predictd's signal store, split into training and targets.

Every method reads the same store (``predictd run``'s bins, arcsinh scale) and is scored on it, so
all of them see the same bins. ``n_bins`` keeps only the first bins of the genome (a ``regions:`` BED
in the run config, as a user would restrict a run) for quick runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from predictd_core import pipeline
from predictd_core.config import RunConfig, load_config
from predictd_core.model.factors import Layout
from predictd_core.store.signal_store import SignalStore
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.train.columns import holdout_columns, input_columns

from bench.accuracy.latin_square import PILOT_TARGETS, check_latin_square

PILOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "roadmap-pilot"
BIN_SIZE = 25


@dataclass(frozen=True)
class Target:
    """One held-out track: its store column and names."""

    column: int
    cell_type: str
    assay: str

    @property
    def name(self) -> str:
        return f"{self.cell_type}:{self.assay}"


@dataclass(frozen=True)
class Problem:
    """The store, the 5 targets and the 20 training columns, and the run config that defines them.

    ``fields`` is the config as written (YAML mapping); a method that runs predictd writes its own
    config from it, with its own output folder and model settings.
    """

    fields: dict
    config: RunConfig
    store: SignalStore
    targets: tuple[Target, ...]
    training: np.ndarray

    @property
    def layout(self) -> Layout:
        return Layout.from_experiments(self.store.experiments)

    @property
    def n_bins(self) -> int:
        return self.store.bins.n_bins

    def training_tracks(self) -> dict[tuple[str, str], np.ndarray]:
        """The 20 training tracks, arcsinh, keyed by (cell type, assay), in store order."""
        signal = self.store.read_columns(self.training)
        return {(self.store.experiments[k].cell_type, self.store.experiments[k].assay): signal[:, j]
                for j, k in enumerate(self.training)}

    def observed(self) -> dict[str, np.ndarray]:
        """The measured signal of each target (arcsinh, NaN = no data), by target name."""
        signal = self.store.read_columns([t.column for t in self.targets])
        return {target.name: signal[:, j] for j, target in enumerate(self.targets)}


def write_config(path: Path, fields: dict) -> RunConfig:
    """Write ``fields`` as a run YAML at ``path`` and load it as ``predictd`` does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return load_config(path)


def first_bins_bed(chrom_sizes: dict[str, int], n_bins: int, bin_size: int = BIN_SIZE) -> str:
    """BED text covering the first ``n_bins`` bins of the genome, contig after contig."""
    lines, left = [], n_bins
    for contig, size in chrom_sizes.items():
        if left <= 0:
            break
        end = min(size, left * bin_size)
        lines.append(f"{contig}\t0\t{end}")
        left -= -(-end // bin_size)
    return "".join(line + "\n" for line in lines)


def prepare_problem(work: Path, pilot: Path = PILOT, n_bins: int | None = None,
                    targets: tuple[str, ...] = PILOT_TARGETS, folder: Path | None = None) -> Problem:
    """Ingest the pilot (or its first ``n_bins`` bins) into ``work`` and split it for one Latin square.

    The store is ingested once per slice (``work/store-N.zarr``) and reused by every later square and
    every later run with the same ``work`` folder; the hold-out's own config goes to
    ``folder/problem.yaml`` (default ``work``), so that each square has its own.
    """
    work = Path(work).resolve()
    folder = work if folder is None else Path(folder).resolve()
    fields = {"tracks": str(pilot / "tracks.tsv"), "chrom_sizes": str(pilot / "chrom.sizes"),
              "bin_size": BIN_SIZE, "holdout": list(targets), "engine": {"kind": "numpy"},
              "output": str(folder / "predictd"), "store": str(work / f"store-{n_bins or 'all'}.zarr")}
    if n_bins is not None:
        bed = work / f"first-{n_bins}-bins.bed"
        bed.parent.mkdir(parents=True, exist_ok=True)
        bed.write_text(first_bins_bed(read_chrom_sizes(pilot / "chrom.sizes"), n_bins))
        fields["regions"] = str(bed)
    config = write_config(folder / "problem.yaml", fields)
    store = pipeline.prepare_store(config)
    layout = Layout.from_experiments(store.experiments)
    check_latin_square(config.holdout, layout.cells, layout.assays, config.source)
    columns = holdout_columns(config, store)
    chosen = tuple(Target(int(k), store.experiments[k].cell_type, store.experiments[k].assay) for k in columns)
    return Problem(fields, config, store, chosen, input_columns(config, store))
