"""Simulated compendia with a planted low-rank truth, written in the same format as real data.

A compendium is written as the real ones are (``../shared/data/roadmap-pilot``): one bigWig per
observed (cell type, assay) with fixed 25 bp steps of -log10 p-values, a ``tracks.tsv`` and a
``chrom.sizes``; or, instead of the bigWigs, the signal store (``store.zarr``) ``predictd ingest``
would build from them. Beside them ``truth.npz`` holds the planted parameters (:class:`PlantedTruth`),
from which the truth of any bins regenerates, so imputations of unmeasured pairs can be scored; for
small genomes it can also hold the per-bin truth itself.

Signal model, on the arcsinh scale, for cell ``c``, assay ``a`` and bin ``i``::

    y[c, a, i] = mu + b_cell[c] + b_assay[a] + b_bin[i] + sum_k C[c, k] A[a, k] G[i, k]
    observed   = max(0, y + noise * N(0, 1))        # independent per entry
    bigWig     = sinh(observed)                      # the -log10 p scale, >= 0

The genome factors ``G`` are non-negative, sparse and positively skewed, each of one kind of
chromatin structure (cycled in this order as the rank grows):

- ``promoter``: sharp peaks a few bins wide at gene starts (H3K4me3, H3K9ac, DNase...),
- ``polycomb``: broad domains of hundreds of bins from a smoothed Markov on/off process (H3K27me3),
- ``gene_body``: domains downstream of gene starts, rising towards the gene end (H3K36me3, H3K79me2),
- ``heterochromatin``: long, patchy, weaker domains of thousands of bins (H3K9me3),
- ``enhancer``: wider, weaker peaks, half of them near genes (H3K4me1, H3K27ac).

Each assay loads on the kinds it marks (a fixed affinity table, jittered), so a simulated H3K4me3
looks peaky and a simulated H3K27me3 broad. When the rank is below 5 a missing kind falls back to
the nearest present one (enhancer -> promoter, heterochromatin -> polycomb, gene_body -> polycomb),
so at rank 4 H3K4me1 is a weaker, peaky copy of the promoter structure.
Above 5 a kind gets several factors, each over its own random subset of genes or domains, so cell
types differ in which elements are active, not only in how strongly.

The genome is generated in blocks of ``block_bins`` bins (:data:`BLOCK_BINS` by default). A block's
structure and noise come from random streams of its own, derived from (seed, block number), so any
block is generated without the ones before it and memory follows the block size, not the genome
length. Genes, peaks and domains are drawn per block as if each block were a contig: a domain or
gene body reaching the end of a block is cut there (as at the end of a chromosome), and the next
block starts afresh. A genome of at most one block is generated exactly as before blocks existed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import yaml

from predictd_core.config import parallel_processes
from predictd_core.errors import PredictdInputError
from predictd_core.impute.write_tracks import ParallelTrackWriter
from predictd_core.io import temporary_sibling, write_atomic
from predictd_core.store.signal_store import DEFAULT_CHUNK_BINS, write_store
from predictd_core.tracks.genome import GenomeBins
from predictd_core.tracks.table import Track

ROADMAP_LAYOUT_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/roadmap-layout"
"""The real Roadmap layout folder (``idmap.json``, ``predictd_splits.json``), beside the repository."""

ASSAYS = ("H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1", "H3K27ac", "H3K9ac", "DNase",
          "H3K4me2", "H2A.Z", "H3K79me2", "H4K20me1", "H3K79me1", "H3K4ac", "H2AK5ac", "H2BK120ac",
          "H2BK5ac", "H3K18ac", "H3K23ac", "H4K8ac", "H2BK12ac", "H3K14ac", "H4K91ac", "H2BK15ac")
"""The 24 Roadmap assays, the most often measured first (the order used without a layout)."""

KINDS = ("promoter", "polycomb", "gene_body", "heterochromatin", "enhancer")
_FALLBACK = {"enhancer": "promoter", "heterochromatin": "polycomb", "gene_body": "polycomb",
             "polycomb": "promoter"}

# Loading of each assay on each kind: (promoter, polycomb, gene_body, enhancer, heterochromatin).
_AFFINITY_KINDS = ("promoter", "polycomb", "gene_body", "enhancer", "heterochromatin")
_AFFINITY = {
    "H3K4me3": (1.0, 0.1, 0.0, 0.15, 0.0),
    "H3K27me3": (0.05, 1.0, 0.0, 0.0, 0.15),
    "H3K36me3": (0.0, 0.0, 1.0, 0.0, 0.1),
    "H3K9me3": (0.0, 0.15, 0.1, 0.0, 1.0),
    "H3K4me1": (0.25, 0.05, 0.1, 1.0, 0.0),
    "H3K27ac": (0.8, 0.0, 0.0, 0.7, 0.0),
    "H3K9ac": (0.9, 0.0, 0.05, 0.3, 0.0),
    "DNase": (0.7, 0.0, 0.0, 0.6, 0.0),
    "H3K4me2": (0.8, 0.05, 0.0, 0.6, 0.0),
    "H2A.Z": (0.7, 0.1, 0.0, 0.4, 0.0),
    "H3K79me2": (0.35, 0.0, 0.8, 0.0, 0.0),
    "H3K79me1": (0.2, 0.0, 0.8, 0.1, 0.0),
    "H4K20me1": (0.05, 0.0, 0.7, 0.0, 0.25),
    "H3K4ac": (0.8, 0.0, 0.0, 0.3, 0.0),
}
_ACETYL_DEFAULT = (0.6, 0.0, 0.15, 0.5, 0.0)  # the rarer acetylation marks

MU = 0.3  # global mean on the arcsinh scale: the real tracks' background sits around 0.1-0.4
TRUTH_FILE = "truth.npz"
TRACKS_FILE = "tracks.tsv"
SIZES_FILE = "chrom.sizes"
STORE_DIR = "store.zarr"
DEFAULT_GRID = (6, 5)
"""Cell types and assays of a compendium without a layout, unless asked otherwise."""
BLOCK_BINS = 65_536
"""Bins per generation block (1.6 Mb at 25 bp): the store's default chunk, so each chunk is one block."""


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


def roadmap_cell_names(n: int) -> list[str]:
    """Roadmap epigenome ids E001, E002, ... (E060 and E064 do not exist, as in Roadmap)."""
    names, number = [], 1
    while len(names) < n:
        if number not in (60, 64):
            names.append(f"E{number:03d}")
        number += 1
    return names


def load_roadmap_layout(folder: str | os.PathLike | None = None) -> tuple[list[str], list[str], set[tuple[str, str]],
                                                                         dict[tuple[str, str], str]]:
    """Read a Roadmap layout folder (default the real one): cells, assays, observed experiments, split.

    Cells come in ``idmap.json`` order (E001..E129; sorted names without it). Assays come from the
    most measured to the least (ties in ``idmap.json`` order), so the first five are the five core
    marks every epigenome has and a small sub-grid is not mostly empty.

    Returns
    -------
    cells, assays, observed, split
        ``observed`` holds (cell, assay) pairs; ``split`` maps each to ``train``, ``val`` or ``test``.
    """
    root = Path(folder) if folder is not None else ROADMAP_LAYOUT_DIR
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


# --------------------------------------------------------------------------- genome structure

def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``width`` bins (edges averaged over what exists)."""
    if width <= 1:
        return values
    padded = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    n = values.shape[0]
    lo = np.clip(np.arange(n) - width // 2, 0, n)
    hi = np.clip(np.arange(n) - width // 2 + width, 0, n)
    return (padded[hi] - padded[lo]) / np.maximum(hi - lo, 1)


def _bumps(n_bins: int, centres: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Gaussian peaks of height ``heights`` and sd ``widths`` (bins) at ``centres``; overlaps add."""
    out = np.zeros(n_bins)
    keep = (centres >= 0) & (centres < n_bins)
    centres, heights, widths = centres[keep], heights[keep], widths[keep]
    for sd in np.unique(widths):
        pick = widths == sd
        impulses = np.bincount(centres[pick], weights=heights[pick], minlength=n_bins)
        half = int(np.ceil(4 * sd))
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sd) ** 2)
        out += np.convolve(impulses, kernel)[half:half + n_bins]  # "same", also when n_bins < kernel
    return out


def _markov_runs(rng: np.random.Generator, n_bins: int, mean_on: float, mean_off: float,
                 level_median: float) -> tuple[np.ndarray, np.ndarray]:
    """An on/off process: domains of about ``mean_on`` bins, gaps of about ``mean_off``.

    Returns the level of each bin (0 in gaps) and the index of its domain (-1 in gaps).
    """
    n_pairs = int(n_bins / (mean_on + mean_off) * 1.5) + 8
    on = np.maximum(1, rng.gamma(2.0, mean_on / 2.0, n_pairs)).astype(np.int64)
    off = np.maximum(1, rng.gamma(1.5, mean_off / 1.5, n_pairs)).astype(np.int64)
    while on.sum() + off.sum() < n_bins:  # rare: draw more runs
        on = np.concatenate([on, np.maximum(1, rng.gamma(2.0, mean_on / 2.0, n_pairs)).astype(np.int64)])
        off = np.concatenate([off, np.maximum(1, rng.gamma(1.5, mean_off / 1.5, n_pairs)).astype(np.int64)])
    levels = level_median * rng.lognormal(0.0, 0.25, on.shape[0])
    lengths = np.stack([off, on], axis=1).ravel()
    values = np.stack([np.zeros_like(levels), levels], axis=1).ravel()
    labels = np.stack([np.full(on.shape[0], -1), np.arange(on.shape[0])], axis=1).ravel()
    start = int(rng.integers(0, lengths[0] + lengths[1]))  # random phase
    return np.repeat(values, lengths)[start:start + n_bins], np.repeat(labels, lengths)[start:start + n_bins]


def _genes(rng: np.random.Generator, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gene starts, lengths (bins) and strands: about one gene per 250 bins (6 kb), ~1.5 kb long."""
    n = max(1, int(rng.poisson(n_bins / 250)))
    starts = np.sort(rng.integers(0, n_bins, n))
    lengths = np.clip(rng.lognormal(np.log(60), 0.7, n), 8, 1500).astype(np.int64)
    strands = rng.choice(np.array([-1, 1]), n)
    return starts, lengths, strands


def _gene_bodies(n_bins: int, starts: np.ndarray, lengths: np.ndarray, strands: np.ndarray,
                 levels: np.ndarray) -> np.ndarray:
    """Domains from each start along the strand, rising from 30 % to 100 % towards the gene end."""
    out = np.zeros(n_bins)
    for tss, length, strand, level in zip(starts.tolist(), lengths.tolist(), strands.tolist(), levels.tolist()):
        ramp = level * np.linspace(0.3, 1.0, length)
        if strand > 0:
            lo, hi = tss, min(n_bins, tss + length)
            out[lo:hi] += ramp[: hi - lo]
        else:
            lo, hi = max(0, tss - length + 1), tss + 1
            out[lo:hi] += ramp[::-1][length - (hi - lo):]
    return _smooth(out, 5)


def _saturate(values: np.ndarray, ceiling: float) -> np.ndarray:
    """Soft ceiling, so overlapping peaks or domains do not stack into unreal values."""
    return ceiling * np.tanh(values / ceiling)


def _factor_kinds(rank: int) -> list[str]:
    return [KINDS[k % len(KINDS)] for k in range(rank)]


def _active_share(n_instances: int) -> float:
    """Share of a kind's elements (genes, peaks, domains) each of its factors covers."""
    return 1.0 if n_instances == 1 else 0.6


def _genome_factors(rng: np.random.Generator, n_bins: int, kinds: list[str]) -> np.ndarray:
    """Non-negative genome factors G (n_bins x rank), one structure kind per column.

    The elements of each kind are drawn once; a kind with several factors gives each a random
    subset of them, so cell types (through C) differ in which elements are active.
    """
    present = [kind for kind in KINDS if kind in kinds]
    genes = _genes(rng, n_bins)
    starts, lengths, strands = genes
    elements: dict[str, tuple] = {}
    for kind in present:  # fixed order: the draws do not depend on the column order
        if kind == "promoter":
            n = starts.shape[0]
            elements[kind] = (starts + rng.integers(-1, 2, n), 2.6 * rng.lognormal(0.0, 0.25, n),
                              rng.choice(np.array([1.5, 3.0, 5.0]), n))
        elif kind == "gene_body":
            elements[kind] = (1.1 * rng.lognormal(0.0, 0.25, starts.shape[0]),)
        elif kind == "enhancer":
            n = max(1, int(rng.poisson(n_bins / 150)))
            near = rng.random(n) < 0.5
            centres = np.where(near, rng.choice(starts, n) + rng.integers(-200, 201, n), rng.integers(0, n_bins, n))
            elements[kind] = (centres, 1.4 * rng.lognormal(0.0, 0.35, n), rng.choice(np.array([2.0, 4.0, 6.0]), n))
        else:
            if kind == "polycomb":
                values, labels = _markov_runs(rng, n_bins, mean_on=200, mean_off=800, level_median=1.2)
                edge, texture = 9, 0.15
            else:  # heterochromatin: long, weak, patchy
                values, labels = _markov_runs(rng, n_bins, mean_on=700, mean_off=1500, level_median=0.8)
                edge, texture = 25, 0.35
            grain = _smooth(rng.standard_normal(n_bins), 12) * np.sqrt(12)  # about unit variance
            values = values * np.exp(texture * grain)
            elements[kind] = (values, labels, edge)
    n_inst = {kind: kinds.count(kind) for kind in present}
    columns = []
    for kind in kinds:
        share = _active_share(n_inst[kind])
        if kind in ("promoter", "enhancer"):
            centres, heights, widths = elements[kind]
            on = rng.random(centres.shape[0]) < share
            col = _saturate(_bumps(n_bins, centres[on], heights[on], widths[on]), 4.0 if kind == "promoter" else 2.5)
        elif kind == "gene_body":
            on = rng.random(starts.shape[0]) < share
            col = _saturate(_gene_bodies(n_bins, starts[on], lengths[on], strands[on], elements[kind][0][on]), 2.0)
        else:
            values, labels, edge = elements[kind]
            on = rng.random(max(int(labels.max()) + 1, 1)) < share
            col = _smooth(np.where(labels >= 0, values * on[np.maximum(labels, 0)], 0.0), edge)
            col = _saturate(col, 2.0 if kind == "polycomb" else 1.5)
        columns.append(col)
    return np.stack(columns, axis=1).astype(np.float32)


def _assay_factors(rng: np.random.Generator, assays: list[str], kinds: list[str]) -> np.ndarray:
    """A (n_assays x rank): each assay's affinity for each factor's kind, jittered.

    Affinities for kinds absent at this rank fold into a present kind (capped at 1 overall); a
    kind with several factors shares its affinity so the expected signal does not grow with rank.
    """
    present = set(kinds)
    n_inst = {kind: kinds.count(kind) for kind in present}
    out = np.zeros((len(assays), len(kinds)))
    for row, assay in enumerate(assays):
        affinity = dict(zip(_AFFINITY_KINDS, _AFFINITY.get(assay, _ACETYL_DEFAULT)))
        folded = {kind: 0.0 for kind in present}
        for kind, weight in affinity.items():
            target = kind
            while target not in present:
                target = _FALLBACK[target]
            folded[target] += weight
        top = max(1.0, max(folded.values()))
        for k, kind in enumerate(kinds):
            out[row, k] = folded[kind] / top / (n_inst[kind] * _active_share(n_inst[kind]))
    return out * rng.lognormal(0.0, 0.15, out.shape)


def _cell_factors(rng: np.random.Generator, n_cells: int, kinds: list[str]) -> np.ndarray:
    """C (n_cells x rank): log-normal strengths; repeated kinds are off (x0.1) in a third of cells."""
    out = rng.lognormal(0.0, 0.25, (n_cells, len(kinds)))
    seen: set[str] = set()
    for k, kind in enumerate(kinds):
        if kind in seen:
            out[:, k] *= np.where(rng.random(n_cells) < 0.35, 0.1, 1.0)
        seen.add(kind)
    return out


# --------------------------------------------------------------------------- layout and masks

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


def _grid(n_cells: int | None, n_assays: int | None, missing_fraction: float, layout: str | os.PathLike | None,
          rng: np.random.Generator) -> tuple[list[str], list[str], np.ndarray, dict[tuple[str, str], str]]:
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
    all_cells, all_assays, observed, split = load_roadmap_layout(None if layout == "roadmap" else layout)
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


# --------------------------------------------------------------------------- the planted truth, per block

_PARAMS, _GENOME, _NOISE, _MASK = range(4)  # the random streams: children of SeedSequence(seed)


def _rng(seed: int, stream: int, block: int = 0) -> np.random.Generator:
    """Random stream ``stream`` of generation block ``block``.

    Block 0 draws from the stream itself and block b > 0 from the stream's child b: the draws of a
    block depend on nothing but (seed, block), and a genome of one block is the compendium earlier
    versions wrote for the same seed (the tests' and the demo's among them).
    """
    key = (stream,) if block == 0 else (stream, block)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(frozen=True, eq=False)
class PlantedTruth:
    """The planted model of a simulated compendium, without per-bin arrays.

    Every per-bin quantity is regenerated one generation block at a time (see the module
    docstring), from ``seed`` and the block number only.

    Attributes
    ----------
    cells, assays : tuple of str
        The grid.
    observed_mask : ndarray of bool, shape (n_cells, n_assays)
        The pairs that have a track.
    factor_kinds : tuple of str
        The structure kind of each factor (see the module docstring).
    C, A : ndarray, shapes (n_cells, rank) and (n_assays, rank)
    b_cell, b_assay : ndarray
    mu, noise : float
        Global mean and noise standard deviation (arcsinh scale).
    seed, n_bins, block_bins : int
    """

    cells: tuple[str, ...]
    assays: tuple[str, ...]
    observed_mask: np.ndarray
    factor_kinds: tuple[str, ...]
    C: np.ndarray
    A: np.ndarray
    b_cell: np.ndarray
    b_assay: np.ndarray
    mu: float
    noise: float
    seed: int
    n_bins: int
    block_bins: int = BLOCK_BINS

    @property
    def n_blocks(self) -> int:
        return -(-self.n_bins // self.block_bins)

    def block_range(self, block: int) -> tuple[int, int]:
        """Bins ``[lo, hi)`` of generation block ``block``."""
        lo = block * self.block_bins
        return lo, min(lo + self.block_bins, self.n_bins)

    def genome_block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """``G`` (block bins x rank) and ``b_bin`` (block bins,) of one block, float32."""
        lo, hi = self.block_range(block)
        rng = _rng(self.seed, _GENOME, block)
        G = _genome_factors(rng, hi - lo, list(self.factor_kinds))
        b_bin = _smooth(rng.standard_normal(hi - lo), 200) * np.sqrt(200)  # smooth, about unit variance
        return G, np.clip(0.05 * b_bin, -0.12, 0.12).astype(np.float32)

    def _cell_rows(self, block: int, noisy: bool) -> Iterator[np.ndarray]:
        """Per cell type, max(0, y [+ noise]) of every assay in one block: (n_assays, block bins) float32."""
        G, b_bin = self.genome_block(block)
        draws = _rng(self.seed, _NOISE, block) if noisy else None
        for c in range(len(self.cells)):
            values = (self.A * self.C[c]).astype(np.float32) @ G.T
            values += b_bin
            values += (self.mu + self.b_cell[c] + self.b_assay)[:, None].astype(np.float32)
            if noisy:  # every pair draws, measured or not, so a track does not depend on the holes
                values += np.float32(self.noise) * draws.standard_normal(values.shape, dtype=np.float32)
            yield np.maximum(values, 0.0)

    def signal_block(self, block: int) -> np.ndarray:
        """The noiseless truth of every pair in one block: (n_cells, n_assays, block bins) float32.

        Memory is 4 bytes x cells x assays x block bins (800 MB for the whole Roadmap grid and
        65,536 bins); :meth:`observed_block` holds only the measured pairs.
        """
        return np.stack(list(self._cell_rows(block, noisy=False)))

    def observed_block(self, block: int) -> np.ndarray:
        """The measured tracks in one block, arcsinh scale: (n_observed, block bins) float32.

        Rows are the observed pairs in grid order (cell-major), as the bigWigs and store columns.
        """
        lo, hi = self.block_range(block)
        out = np.empty((int(self.observed_mask.sum()), hi - lo), dtype=np.float32)
        row = 0
        for measured, values in zip(self.observed_mask, self._cell_rows(block, noisy=True)):
            n = int(measured.sum())
            out[row:row + n] = values[measured]
            row += n
        return out


def plant(n_cells: int | None = None, n_assays: int | None = None, n_bins: int = 20000, rank: int = 4,
          missing_fraction: float = 0.0, layout: str | os.PathLike | None = None, noise: float = 0.3, seed: int = 0,
          block_bins: int = BLOCK_BINS) -> tuple[PlantedTruth, dict[tuple[str, str], str]]:
    """Draw the grid and the bin-independent parameters of a compendium (no per-bin work).

    Arguments are those of :func:`simulate_compendium`. Returns the truth and, with a layout, the
    Roadmap split of each observed pair (else empty).
    """
    cells, assays, mask, split = _grid(n_cells, n_assays, missing_fraction, layout, _rng(seed, _MASK))
    rng = _rng(seed, _PARAMS)
    kinds = _factor_kinds(rank)
    C = _cell_factors(rng, len(cells), kinds)
    A = _assay_factors(rng, assays, kinds)
    b_cell = rng.normal(0.0, 0.05, len(cells))
    b_assay = rng.normal(0.0, 0.08, len(assays))
    truth = PlantedTruth(tuple(cells), tuple(assays), mask, tuple(kinds), C, A, b_cell - b_cell.mean(),
                         b_assay - b_assay.mean(), MU, float(noise), int(seed), int(n_bins), int(block_bins))
    return truth, split


def load_truth(path: str | os.PathLike) -> PlantedTruth:
    """The planted truth of a compendium's ``truth.npz`` (compact or with per-bin arrays)."""
    with np.load(path) as data:
        return PlantedTruth(
            cells=tuple(data["cells"].tolist()), assays=tuple(data["assays"].tolist()),
            observed_mask=data["observed_mask"], factor_kinds=tuple(data["factor_kinds"].tolist()),
            C=data["C"], A=data["A"], b_cell=data["b_cell"], b_assay=data["b_assay"], mu=float(data["mu"]),
            noise=float(data["noise"]), seed=int(data["seed"]), n_bins=int(data["n_bins"]),
            block_bins=int(data["block_bins"]))


def _truth_arrays(truth: PlantedTruth) -> dict[str, np.ndarray]:
    """The compact ``truth.npz`` entries: what :func:`load_truth` reads."""
    return {"cells": np.array(truth.cells), "assays": np.array(truth.assays), "observed_mask": truth.observed_mask,
            "factor_kinds": np.array(truth.factor_kinds), "C": truth.C, "A": truth.A, "b_cell": truth.b_cell,
            "b_assay": truth.b_assay, "mu": np.float64(truth.mu), "noise": np.float64(truth.noise),
            "seed": np.int64(truth.seed), "n_bins": np.int64(truth.n_bins), "block_bins": np.int64(truth.block_bins)}


def _dense_arrays(truth: PlantedTruth) -> dict[str, np.ndarray]:
    """The per-bin truth of the whole genome: ``G``, ``b_bin``, ``signal`` and ``observed`` (NaN = unmeasured)."""
    shape = (len(truth.cells), len(truth.assays), truth.n_bins)
    G = np.empty((truth.n_bins, len(truth.factor_kinds)), dtype=np.float32)
    b_bin = np.empty(truth.n_bins, dtype=np.float32)
    signal, observed = np.empty(shape, dtype=np.float32), np.full(shape, np.nan, dtype=np.float32)
    for block in range(truth.n_blocks):
        lo, hi = truth.block_range(block)
        G[lo:hi], b_bin[lo:hi] = truth.genome_block(block)
        signal[:, :, lo:hi] = truth.signal_block(block)
        observed[:, :, lo:hi][truth.observed_mask] = truth.observed_block(block)
    return {"G": G, "b_bin": b_bin, "signal": signal, "observed": observed}


# --------------------------------------------------------------------------- writing

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
        Grid size. Cells are named E001.. and assays taken from :data:`ASSAYS` (or from the layout).
        None: the whole axis of the layout, or :data:`DEFAULT_GRID` without one.
    n_bins, bin_size : int
        Genome bins, split as evenly as possible over ``contigs`` contigs ``chrS1``, ``chrS2``...
        of exactly ``bins * bin_size`` bp each.
    rank : int
        Number of planted factors (see the module docstring for their kinds).
    missing_fraction : float in [0, 1)
        Share of (cell, assay) pairs left unmeasured; every cell type and assay keeps >= 2.
    layout : None, "roadmap" or path
        A Roadmap layout folder (``idmap.json``, ``predictd_splits.json``; "roadmap" is
        :data:`ROADMAP_LAYOUT_DIR`): its first ``n_cells`` cell types and ``n_assays`` assays
        (:func:`load_roadmap_layout`), measured exactly where Roadmap measured them.
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
    ``contig_lengths``: :func:`load_truth` regenerates any block from them. With ``dense_truth``
    it also holds ``G`` (n_bins x rank), ``b_bin`` and two float32 (n_cells, n_assays, n_bins)
    arrays on the arcsinh scale: ``signal`` = max(0, mu + b_cell + b_assay + b_bin + C A G), the
    noiseless truth of every pair, and ``observed`` = max(0, that before clipping + noise), NaN
    for unmeasured pairs (``arcsinh`` of the written values, up to float32 rounding).
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
        np.savez(tmp / TRUTH_FILE, **_truth_arrays(truth), bin_size=np.int64(bin_size),
                 contig_names=np.array([n for n, _ in contig_list]),
                 contig_lengths=np.array([n for _, n in contig_list], dtype=np.int64),
                 **(_dense_arrays(truth) if dense_truth else {}))
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    return SimulatedCompendium(
        root=out_dir, tracks_tsv=out_dir / TRACKS_FILE, chrom_sizes=out_dir / SIZES_FILE,
        truth=out_dir / TRUTH_FILE, cells=truth.cells, assays=truth.assays, observed=tuple(observed),
        n_bins=int(n_bins), bin_size=int(bin_size), store=out_dir / STORE_DIR if to_store else None)


def write_example_config(out_dir: str | os.PathLike, holdout: list[str]) -> Path:
    """Write ``run.yaml`` beside a compendium's tracks, holding out ``holdout`` (``CELL:ASSAY``).

    Paths in it are relative to the YAML's folder. ``bin_size`` is read from ``truth.npz`` when
    there is one (25 otherwise). Each held-out name must be an observed experiment of
    ``tracks.tsv`` when that file exists. A compendium written as a store gets ``store:``
    pointing at it, so the steps after ingest (folds, train, impute, evaluate) read it directly.
    """
    root = Path(out_dir)
    if not root.is_dir():
        raise PredictdInputError(str(root), "out_dir", "compendium folder not found")
    names = [str(name).strip() for name in ([holdout] if isinstance(holdout, str) else holdout)]
    for name in names:
        cell, sep, assay = name.partition(":")
        if not sep or not cell or not assay or ":" in assay:
            raise PredictdInputError("holdout", name, "expected CELL:ASSAY, e.g. E003:H3K4me3")
    if len(set(names)) != len(names):
        raise PredictdInputError("holdout", ", ".join(names), "an experiment is listed twice")
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
        "engine": {"master": "local[*]"},
        "output": "output",
    }
    if (root / STORE_DIR).is_dir():
        config["store"] = STORE_DIR
    target = root / "run.yaml"
    write_atomic(target, yaml.safe_dump(config, sort_keys=False).encode())
    return target
