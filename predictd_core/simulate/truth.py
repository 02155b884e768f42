"""The planted truth of a simulated compendium: its parameters, and its per-bin signal regenerated block by block.

Signal model, on the arcsinh scale, for cell ``c``, assay ``a`` and bin ``i``::

    y[c, a, i] = mu + b_cell[c] + b_assay[a] + b_bin[i] + sum_k C[c, k] A[a, k] G[i, k]
    observed   = max(0, y + noise * N(0, 1))        # independent per entry
    bigWig     = sinh(observed)                      # the -log10 p scale, >= 0

The factors and their structure kinds are drawn in :mod:`predictd_core.simulate.factors`.

The genome is generated in blocks of ``block_bins`` bins (:data:`BLOCK_BINS` by default). A block's
structure and noise come from random streams of its own, derived from (seed, block number), so any
block is generated without the ones before it and memory follows the block size, not the genome
length. Genes, peaks and domains are drawn per block as if each block were a contig: a domain or
gene body reaching the end of a block is cut there (as at the end of a chromosome), and the next
block starts afresh. A genome of at most one block is generated exactly as before blocks existed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from predictd_core.simulate.factors import assay_factors, cell_factors, factor_kinds, genome_factors, smooth
from predictd_core.simulate.layout import compendium_grid

MU = 0.3  # global mean on the arcsinh scale: the real tracks' background sits around 0.1-0.4
BLOCK_BINS = 65_536
"""Bins per generation block (1.6 Mb at 25 bp): the store's default chunk, so each chunk is one block."""


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
        """Generation blocks of the genome (the last one may be shorter)."""
        return -(-self.n_bins // self.block_bins)

    def block_range(self, block: int) -> tuple[int, int]:
        """Bins ``[lo, hi)`` of generation block ``block``."""
        lo = block * self.block_bins
        return lo, min(lo + self.block_bins, self.n_bins)

    def genome_block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """``G`` (block bins x rank) and ``b_bin`` (block bins,) of one block, float32."""
        lo, hi = self.block_range(block)
        rng = _rng(self.seed, _GENOME, block)
        G = genome_factors(rng, hi - lo, list(self.factor_kinds))
        b_bin = smooth(rng.standard_normal(hi - lo), 200) * np.sqrt(200)  # smooth, about unit variance
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
    cells, assays, mask, split = compendium_grid(n_cells, n_assays, missing_fraction, layout, _rng(seed, _MASK))
    rng = _rng(seed, _PARAMS)
    kinds = factor_kinds(rank)
    C = cell_factors(rng, len(cells), kinds)
    A = assay_factors(rng, assays, kinds)
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


def truth_arrays(truth: PlantedTruth) -> dict[str, np.ndarray]:
    """The compact ``truth.npz`` entries: what :func:`load_truth` reads."""
    return {"cells": np.array(truth.cells), "assays": np.array(truth.assays), "observed_mask": truth.observed_mask,
            "factor_kinds": np.array(truth.factor_kinds), "C": truth.C, "A": truth.A, "b_cell": truth.b_cell,
            "b_assay": truth.b_assay, "mu": np.float64(truth.mu), "noise": np.float64(truth.noise),
            "seed": np.int64(truth.seed), "n_bins": np.int64(truth.n_bins), "block_bins": np.int64(truth.block_bins)}


def dense_arrays(truth: PlantedTruth) -> dict[str, np.ndarray]:
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
