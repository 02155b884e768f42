"""Writing a simulated compendium: the signal as bigWigs or a store, ``tracks.tsv``, ``chrom.sizes``, ``truth.npz``.

A compendium is written as a real one is: one bigWig per observed (cell type, assay) with fixed
25 bp steps of -log10 p-values, a ``tracks.tsv`` and a ``chrom.sizes``; or, instead of the bigWigs,
the signal store (``store.zarr``) ``predictd ingest`` would build from them. Beside them ``truth.npz``
holds the planted parameters (:class:`~predictd_core.simulate.truth.PlantedTruth`), from which the
truth of any bins regenerates, so imputations of unmeasured pairs can be scored; for small genomes it
can also hold the per-bin truth itself. The folder is built in a hidden sibling and renamed into place.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from predictd_core.config import parallel_processes
from predictd_core.errors import PredictdInputError
from predictd_core.impute.write_tracks import ParallelTrackWriter
from predictd_core.io import temporary_sibling, write_atomic
from predictd_core.simulate.truth import BLOCK_BINS, PlantedTruth, dense_arrays, plant, truth_arrays
from predictd_core.store.signal_store import DEFAULT_CHUNK_BINS, write_store
from predictd_core.tracks.genome import GenomeBins
from predictd_core.tracks.table import ExperimentNamesError, Track, split_experiment_names

TRUTH_FILE = "truth.npz"
TRACKS_FILE = "tracks.tsv"
SIZES_FILE = "chrom.sizes"
STORE_DIR = "store.zarr"


@dataclass(frozen=True)
class SimulatedCompendium:
    """What :func:`simulate_compendium` wrote.

    Attributes
    ----------
    root : Path
        The compendium folder.
    tracks_tsv, chrom_sizes, truth : Path
        ``tracks.tsv``, ``chrom.sizes`` and ``truth.npz`` inside ``root``.
    cells, assays : tuple of str
        Every cell type and assay of the grid, in the order of the axes of ``truth.npz``.
    observed : tuple of (cell, assay)
        The experiments written (bigWigs or store columns, and rows of ``tracks.tsv``), grid order.
    n_bins, bin_size : int
    store : Path or None
        ``store.zarr`` inside ``root`` when the signal was written as a store, else None.
    """

    root: Path
    tracks_tsv: Path
    chrom_sizes: Path
    truth: Path
    cells: tuple[str, ...]
    assays: tuple[str, ...]
    observed: tuple[tuple[str, str], ...]
    n_bins: int
    bin_size: int
    store: Path | None = None

    @property
    def missing(self) -> tuple[tuple[str, str], ...]:
        """The (cell, assay) pairs of the grid that have no track (truth only)."""
        seen = set(self.observed)
        return tuple((c, a) for c in self.cells for a in self.assays if (c, a) not in seen)


def _looks_like_compendium(folder: Path) -> bool:
    return (folder / TRACKS_FILE).exists() or (folder / TRUTH_FILE).exists()


def _check_target(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise PredictdInputError(str(out_dir), "out_dir", "exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    if not _looks_like_compendium(out_dir):
        raise PredictdInputError(str(out_dir), "out_dir",
                                 "folder is not empty and holds no compendium; refusing to replace it")
    if not overwrite:
        raise PredictdInputError(str(out_dir), "out_dir",
                                 "already holds a compendium (tracks.tsv/truth.npz); pass overwrite=True "
                                 "to replace the whole folder")
    if not ((out_dir / TRACKS_FILE).exists() and (out_dir / TRUTH_FILE).exists()):
        raise PredictdInputError(str(out_dir), "out_dir", "holds a tracks.tsv or truth.npz but not both, so "
                                 "it is not a simulated compendium; refusing to replace it")


def _pvalue_block(truth: PlantedTruth, block: int) -> np.ndarray:
    """The observed tracks of one block as written, -log10 p: (n_observed, block bins) float32."""
    values = truth.observed_block(block)
    return np.sinh(values, out=values)


def _write_bigwigs(folder: Path, truth: PlantedTruth, tracks: list[Track], bins: GenomeBins,
                   progress: Callable[[int, int], None]) -> None:
    """One bigWig per track, all appended block by block (one block of signal in memory), side by side
    on every CPU this process may use (:func:`~predictd_core.config.parallel_processes`)."""
    paths = [folder / track.path for track in tracks]
    processes = parallel_processes(len(paths) * bins.n_bins)
    with ParallelTrackWriter(paths, bins, truth.block_bins, processes) as writer:
        for block in range(truth.n_blocks):
            lo, hi = truth.block_range(block)
            writer.add(lo, hi, _pvalue_block(truth, block).T)
            progress(block + 1, truth.n_blocks)


def _store_reader(truth: PlantedTruth) -> Callable[[int, int], np.ndarray]:
    """``read_block(lo, hi)`` for :func:`write_store`: the observed tracks, -log10 p, (hi - lo, n_observed).

    Chunks come in genome order, so keeping the last block generated makes each block generated
    once whatever the chunk size.
    """
    cached: dict[int, np.ndarray] = {}

    def pvalues(block: int) -> np.ndarray:
        if block not in cached:
            cached.clear()  # release the last block before making the next: one block in memory
            cached[block] = _pvalue_block(truth, block)
        return cached[block]

    def read_block(lo: int, hi: int) -> np.ndarray:
        out = np.empty((hi - lo, int(truth.observed_mask.sum())), dtype=np.float32)
        for block in range(lo // truth.block_bins, (hi - 1) // truth.block_bins + 1):
            start, end = truth.block_range(block)
            a, b = max(lo, start), min(hi, end)
            out[a - lo:b - lo] = pvalues(block)[:, a - start:b - start].T
        return out

    return read_block


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` folder to ``out_dir``, replacing an empty or checked old one."""
    old = None
    if out_dir.exists():
        if any(out_dir.iterdir()):
            old = temporary_sibling(out_dir)
            os.replace(out_dir, old)
        else:
            out_dir.rmdir()
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _ignore_progress(_done: int, _total: int) -> None:
    pass


def simulate_compendium(out_dir: str | os.PathLike, n_cells: int | None = None, n_assays: int | None = None,
                        n_bins: int = 20000, rank: int = 4, bin_size: int = 25, missing_fraction: float = 0.0,
                        layout: str | os.PathLike | None = None, noise: float = 0.3, seed: int = 0,
                        contigs: int = 2, *, overwrite: bool = False, signal_format: str = "bigwig",
                        dense_truth: bool = True, chunk_bins: int = DEFAULT_CHUNK_BINS,
                        block_bins: int = BLOCK_BINS,
                        progress: Callable[[int, int], None] = _ignore_progress) -> SimulatedCompendium:
    """Write a simulated compendium with a planted rank-``rank`` truth into ``out_dir``.

    The signal is generated and written one block of ``block_bins`` bins at a time, so memory does
    not grow with ``n_bins`` (about 4 bytes x observed pairs x (``block_bins`` + 3 ``chunk_bins``)
    for a store); only ``dense_truth`` holds whole-genome arrays.

    Parameters
    ----------
    out_dir : path
        Target folder; built in a hidden sibling and renamed into place. It may be absent or empty;
        one holding a compendium is replaced only with ``overwrite=True`` (the whole folder goes),
        and a non-empty folder without ``tracks.tsv`` is never replaced.
    n_cells, n_assays : int or None
        Grid size. Cells are named E001.. and assays taken from
        :data:`~predictd_core.simulate.layout.ASSAYS` (or from the layout). None: the whole axis of
        the layout, or :data:`~predictd_core.simulate.layout.DEFAULT_GRID` without one.
    n_bins, bin_size : int
        Genome bins, split as evenly as possible over ``contigs`` contigs ``chrS1``, ``chrS2``...
        of exactly ``bins * bin_size`` bp each.
    rank : int
        Number of planted factors (see :mod:`predictd_core.simulate.factors` for their kinds).
    missing_fraction : float in [0, 1)
        Share of (cell, assay) pairs left unmeasured; every cell type and assay keeps >= 2.
    layout : None or path
        A Roadmap layout folder (``idmap.json``, ``predictd_splits.json``): its first ``n_cells``
        cell types and ``n_assays`` assays (:func:`~predictd_core.simulate.layout.load_roadmap_layout`),
        measured exactly where Roadmap measured them. None: a grid of ``n_cells`` x ``n_assays``.
    noise : float
        Standard deviation of the Gaussian noise added on the arcsinh scale before clipping.
    seed : int
        Everything is a function of the seed (and ``block_bins``). Parameters, genome, noise and the
        dropped pairs come from separate streams, so neither the planted truth nor a measured track
        depends on ``missing_fraction`` (which pairs are left unmeasured).
    overwrite : bool
        Replace a compendium already in ``out_dir``.
    signal_format : "bigwig" or "store"
        One bigWig per observed pair, or the signal store ``store.zarr`` (arcsinh, the columns in
        grid order) with ``chunk_bins`` bins per chunk, as ``predictd ingest`` would build it.
    dense_truth : bool
        Also store the per-bin truth in ``truth.npz`` (see Notes); it takes memory and disk of
        about 8 bytes x cells x assays x bins, so leave it off for large genomes.
    block_bins : int
        Bins per generation block: memory follows ``block_bins`` x observed pairs. Structures are
        cut at block ends, so the signal depends on it; keep the default to reproduce a compendium.
    progress : callable(done, total)
        Called after each block (bigWigs) or chunk (store).

    Returns
    -------
    SimulatedCompendium

    Notes
    -----
    ``truth.npz`` holds ``cells``, ``assays``, ``observed_mask`` (n_cells x n_assays),
    ``factor_kinds``, ``C`` (n_cells x rank), ``A`` (n_assays x rank), ``b_cell``, ``b_assay``,
    ``mu``, ``noise``, ``seed``, ``n_bins``, ``block_bins``, ``bin_size``, ``contig_names`` and
    ``contig_lengths``: :func:`~predictd_core.simulate.truth.load_truth` regenerates any block from
    them. With ``dense_truth`` it also holds ``G`` (n_bins x rank), ``b_bin`` and two float32
    (n_cells, n_assays, n_bins) arrays on the arcsinh scale: ``signal`` = max(0, mu + b_cell +
    b_assay + b_bin + C A G), the noiseless truth of every pair, and ``observed`` = max(0, that
    before clipping + noise), NaN for unmeasured pairs (``arcsinh`` of the written values, up to
    float32 rounding).

    Examples
    --------
    >>> import tempfile
    >>> from predictd_core import simulate_compendium
    >>> tmp = tempfile.TemporaryDirectory()
    >>> simulated = simulate_compendium(tmp.name, n_cells=3, n_assays=3, n_bins=100, missing_fraction=0.2)
    >>> simulated.cells, simulated.assays
    (('E001', 'E002', 'E003'), ('H3K4me3', 'H3K27me3', 'H3K36me3'))
    >>> len(simulated.observed), simulated.missing
    (7, (('E001', 'H3K36me3'), ('E003', 'H3K4me3')))
    >>> sorted(path.name for path in simulated.root.iterdir() if path.suffix != ".bigWig")
    ['chrom.sizes', 'tracks.tsv', 'truth.npz']
    """
    for name, value, low in (("n_cells", n_cells, 1), ("n_assays", n_assays, 1), ("rank", rank, 1),
                             ("bin_size", bin_size, 1), ("contigs", contigs, 1), ("chunk_bins", chunk_bins, 1),
                             ("block_bins", block_bins, 1), ("seed", seed, 0)):
        if value is None and name in ("n_cells", "n_assays"):
            continue
        if int(value) != value or value < low:
            raise PredictdInputError("simulate", name, f"expected an integer >= {low}, got {value!r}")
    if int(n_bins) != n_bins or n_bins < contigs:
        raise PredictdInputError("simulate", "n_bins", f"expected an integer >= contigs ({contigs}), got {n_bins!r}")
    if not 0 <= missing_fraction < 1:
        raise PredictdInputError("simulate", "missing_fraction", f"expected a share in [0, 1), got {missing_fraction}")
    if not noise >= 0:
        raise PredictdInputError("simulate", "noise", f"expected a standard deviation >= 0, got {noise}")
    if signal_format not in ("bigwig", "store"):
        raise PredictdInputError("simulate", "signal_format", f"expected 'bigwig' or 'store', got {signal_format!r}")
    out_dir = Path(os.path.abspath(out_dir))  # "." has no sibling name; symlinks are kept as given
    _check_target(out_dir, overwrite)

    truth, split = plant(n_cells, n_assays, n_bins, rank, missing_fraction, layout, noise, seed, block_bins)
    per_contig = [n_bins // contigs + (1 if j < n_bins % contigs else 0) for j in range(contigs)]
    contig_list = [(f"chrS{j + 1}", n * bin_size) for j, n in enumerate(per_contig)]
    bins = GenomeBins.build(dict(contig_list), bin_size)
    observed = [(c, a) for c, row in zip(truth.cells, truth.observed_mask)
                for a, measured in zip(truth.assays, row) if measured]
    to_store = signal_format == "store"
    tracks = [Track(c, a, STORE_DIR if to_store else f"{c}.{a}.bigWig") for c, a in observed]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out_dir)
    tmp.mkdir()
    try:
        if to_store:
            write_store(str(tmp / STORE_DIR), tracks, bins, _store_reader(truth), chunk_bins, progress)
        else:
            _write_bigwigs(tmp, truth, tracks, bins, progress)
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
        writer.writerow(("cell_type", "assay", "path", "description"))
        for track in tracks:
            description = f"simulated rank {rank}, seed {seed}"
            if to_store:
                description += f", signal in {STORE_DIR} only"
            if (track.cell_type, track.assay) in split:
                description += f", Roadmap split {split[(track.cell_type, track.assay)]}"
            writer.writerow((track.cell_type, track.assay, track.path, description))
        (tmp / TRACKS_FILE).write_text(buffer.getvalue())
        (tmp / SIZES_FILE).write_text("".join(f"{name}\t{length}\n" for name, length in contig_list))
        np.savez(tmp / TRUTH_FILE, **truth_arrays(truth), bin_size=np.int64(bin_size),
                 contig_names=np.array([n for n, _ in contig_list]),
                 contig_lengths=np.array([n for _, n in contig_list], dtype=np.int64),
                 **(dense_arrays(truth) if dense_truth else {}))
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    return SimulatedCompendium(
        root=out_dir, tracks_tsv=out_dir / TRACKS_FILE, chrom_sizes=out_dir / SIZES_FILE,
        truth=out_dir / TRUTH_FILE, cells=truth.cells, assays=truth.assays, observed=tuple(observed),
        n_bins=int(n_bins), bin_size=int(bin_size), store=out_dir / STORE_DIR if to_store else None)


def write_example_config(out_dir: str | os.PathLike, holdout: list[str], engine: dict | None = None) -> Path:
    """Write ``run.yaml`` beside a compendium's tracks, holding out ``holdout`` (``CELL:ASSAY``), computed on
    ``engine`` (the config's ``engine`` section; default Spark ``local[*]``).

    Paths in it are relative to the YAML's folder. ``bin_size`` is read from ``truth.npz`` when
    there is one (25 otherwise). Each held-out name must be an observed experiment of
    ``tracks.tsv`` when that file exists. A compendium written as a store gets ``store:``
    pointing at it, so the steps after ingest (folds, train, impute, evaluate) read it directly.

    Examples
    --------
    >>> import tempfile
    >>> from predictd_core import simulate_compendium, write_example_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> simulated = simulate_compendium(tmp.name, n_cells=3, n_assays=2, n_bins=100)
    >>> path = write_example_config(simulated.root, holdout=["E001:H3K4me3"])
    >>> print(path.read_text(), end="")
    tracks: tracks.tsv
    chrom_sizes: chrom.sizes
    bin_size: 25
    holdout:
    - E001:H3K4me3
    model:
      solver: als
    cv:
      n_test: 5
      n_valid: 2
    engine:
      master: local[*]
    output: output
    """
    root = Path(out_dir)
    if not root.is_dir():
        raise PredictdInputError(str(root), "out_dir", "compendium folder not found")
    names = [str(name).strip() for name in ([holdout] if isinstance(holdout, str) else holdout)]
    try:
        split_experiment_names(names)
    except ExperimentNamesError as error:
        if error.index is None:
            raise PredictdInputError("holdout", ", ".join(names), "an experiment is listed twice") from None
        raise PredictdInputError("holdout", names[error.index], "expected CELL:ASSAY, e.g. E003:H3K4me3") from None
    tracks_path = root / TRACKS_FILE
    if tracks_path.is_file():
        with tracks_path.open(newline="") as handle:
            known = {f"{row['cell_type']}:{row['assay']}" for row in csv.DictReader(handle, delimiter="\t")}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise PredictdInputError(str(tracks_path), "holdout",
                                     f"not an observed experiment: {', '.join(unknown)}")
    bin_size = 25
    truth_path = root / TRUTH_FILE
    if truth_path.is_file():
        with np.load(truth_path) as truth:
            if "bin_size" in truth.files:
                bin_size = int(truth["bin_size"])
    config = {
        "tracks": TRACKS_FILE,
        "chrom_sizes": SIZES_FILE,
        "bin_size": bin_size,
        "holdout": names,
        "model": {"solver": "als"},
        "cv": {"n_test": 5, "n_valid": 2},  # predictd cv: 10 fold models (PREDICTD's full scheme is 5 x 8)
        "engine": dict(engine) if engine is not None else {"master": "local[*]"},
        "output": "output",
    }
    if (root / STORE_DIR).is_dir():
        config["store"] = STORE_DIR
    target = root / "run.yaml"
    write_atomic(target, yaml.safe_dump(config, sort_keys=False).encode())
    return target
