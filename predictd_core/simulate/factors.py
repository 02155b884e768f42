"""The planted factors of a simulated compendium: non-negative genome structure, assay affinities, cell strengths.

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
"""

from __future__ import annotations

import numpy as np

KINDS = ("promoter", "polycomb", "gene_body", "heterochromatin", "enhancer")
"""The kinds of chromatin structure, in the order the factors take them as the rank grows."""
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


def smooth(values: np.ndarray, width: int) -> np.ndarray:
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
    return smooth(out, 5)


def _saturate(values: np.ndarray, ceiling: float) -> np.ndarray:
    """Soft ceiling, so overlapping peaks or domains do not stack into unreal values."""
    return ceiling * np.tanh(values / ceiling)


def factor_kinds(rank: int) -> list[str]:
    """The structure kind of each of ``rank`` factors: :data:`KINDS` in turn."""
    return [KINDS[k % len(KINDS)] for k in range(rank)]


def _active_share(n_instances: int) -> float:
    """Share of a kind's elements (genes, peaks, domains) each of its factors covers."""
    return 1.0 if n_instances == 1 else 0.6


def genome_factors(rng: np.random.Generator, n_bins: int, kinds: list[str]) -> np.ndarray:
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
            grain = smooth(rng.standard_normal(n_bins), 12) * np.sqrt(12)  # about unit variance
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
            col = smooth(np.where(labels >= 0, values * on[np.maximum(labels, 0)], 0.0), edge)
            col = _saturate(col, 2.0 if kind == "polycomb" else 1.5)
        columns.append(col)
    return np.stack(columns, axis=1).astype(np.float32)


def assay_factors(rng: np.random.Generator, assays: list[str], kinds: list[str]) -> np.ndarray:
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


def cell_factors(rng: np.random.Generator, n_cells: int, kinds: list[str]) -> np.ndarray:
    """C (n_cells x rank): log-normal strengths; repeated kinds are off (x0.1) in a third of cells."""
    out = rng.lognormal(0.0, 0.25, (n_cells, len(kinds)))
    seen: set[str] = set()
    for k, kind in enumerate(kinds):
        if kind in seen:
            out[:, k] *= np.where(rng.random(n_cells) < 0.35, 0.1, 1.0)
        seen.add(kind)
    return out
