"""How close one ALS sweep comes to the matrix products it cannot avoid, at Roadmap scale.

Builds one chunk with the real Roadmap layout (the 1,014 observed experiments of
../shared/data/roadmap-layout, every 8th for validation: 887 training, 127 validation) and planted
rank-100 signal with bench/roadmap_scale.py's builder, plus a copy of it with holes as real bigWigs
have them (runs of bins missing in some experiments, a few of them in every experiment), then times,
interleaved, ``als.sweep_statistics`` on each chunk against the same-shape float64 matrix products
alone, in this process:

- ``R @ [Z 1]``: the ridge right-hand sides (bins x training x K+1);
- the (K+1) system solve for every bin (one product with the inverse, its fastest form);
- ``[G b_i] @ [Z 1]'``: the predictions of the training and validation experiments;
- ``[G b_i]' @ R``: the statistics (G'Y and 1'Y have that shape).

It prints the ratio sweep / products per chunk and projects one sweep over 1,126,469 bins.

    .venv/bin/python bench/sweep_limit.py [--chunk-bins 65536] [--repeats 7] [--hole-share 0.03]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from jobs import timed
from roadmap_scale import RANK, build_store

from predictd_core.model.factors import Layout, initial_factors
from predictd_core.solvers import als

PROJECTED_BINS = 1_126_469
RIDGE = 2.9


def punch_holes(Y: np.ndarray, share: float, seed: int = 1) -> tuple[np.ndarray, int]:
    """A copy of ``Y`` with runs of 1 to 400 bins missing in some experiments, ``share`` of the bins in all.

    One run in ten misses every experiment (an assembly gap: bins without any data). The others miss
    a random set of experiments, as coverage gaps shared by the tracks of one pipeline or lab; run
    lengths and set sizes are log-uniform, so most gaps are short and in a few tracks.
    Returns the copy and the number of runs.
    """
    rng = np.random.default_rng(seed)
    holey = Y.copy()
    n_bins, n_experiments = Y.shape
    covered, runs = 0, 0
    while covered < share * n_bins:
        length = int(np.exp(rng.uniform(0, np.log(401))))
        start = int(rng.integers(0, n_bins - length))
        width = n_experiments if rng.random() < 0.1 else int(np.exp(rng.uniform(0, np.log(n_experiments))))
        holey[start:start + length, rng.choice(n_experiments, width, replace=False)] = np.nan
        covered, runs = covered + length, runs + 1
    return holey, runs


def matrix_products(R: np.ndarray, design: np.ndarray, design_all: np.ndarray, gram: np.ndarray) -> None:
    """The products of one sweep on float64 arrays of its shapes, nothing else (results allocated as written)."""
    W = (R @ design) @ np.linalg.inv(gram)
    W @ design_all.T
    W.T @ R


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-bins", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--hole-share", type=float, default=0.03, help="share of bins in runs with holes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        store = build_store(Path(work), 1, args.chunk_bins)
        complete = store.read_chunk(0)
        layout = Layout.from_experiments(store.experiments)
    columns = np.arange(complete.shape[1])
    valid = columns[::8]
    train = np.setdiff1d(columns, valid)
    holey, runs = punch_holes(complete, args.hole_share)
    missing = np.isnan(holey[:, train])
    holey_bins = missing.any(axis=1)
    patterns = len(np.unique(missing[holey_bins], axis=0))
    factors = initial_factors(layout, RANK, 0, *als.column_moments(complete), train)
    inputs = als.SweepInputs(factors, layout.cell_of, layout.assay_of, train, valid, RIDGE)

    # the products' operands: the centred training signal and the designs, float64, made once
    Zt, ot = factors.design(layout.cell_of[train], layout.assay_of[train])
    Zv, _ = factors.design(layout.cell_of[valid], layout.assay_of[valid])
    design = np.hstack([Zt, np.ones((train.size, 1))])
    design_all = np.vstack([design, np.hstack([Zv, np.ones((valid.size, 1))])])
    gram = design.T @ design + np.diag(np.append(np.full(RANK, RIDGE), 0.0))
    R = complete[:, train] - ot

    chunks = {"complete": complete, "holey": holey}
    sweeps = {name: [] for name in chunks}
    products = {name: [] for name in chunks}
    als.sweep_statistics(complete, inputs)  # warm-up: the process's first touch of fresh memory pages
    matrix_products(R, design, design_all, gram)
    for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
        for name, Y in chunks.items():
            sweeps[name].append(timed(als.sweep_statistics, Y, inputs))
            products[name].append(timed(matrix_products, R, design, design_all, gram))

    n = args.chunk_bins
    print(f"Roadmap layout: {len(layout.cells)} cells x {len(layout.assays)} assays, {columns.size} experiments "
          f"({train.size} training, {valid.size} validation), rank {RANK}, chunks of {n:,} bins, "
          f"median of {args.repeats} interleaved repeats. Holey chunk: {runs} runs of missing bins, "
          f"{int(holey_bins.sum()):,} bins ({holey_bins.mean():.1%}) missing some training experiment "
          f"({int(missing.all(axis=1).sum()):,} missing all), {patterns} distinct patterns, "
          f"{missing.mean():.2%} of training entries missing.\n")
    print("| chunk | sweep s | matrix products s | sweep / products |")
    print("|---|---|---|---|")
    medians = {}
    for name in chunks:
        medians[name] = statistics.median(sweeps[name]), statistics.median(products[name])
        sweep, product = medians[name]
        print(f"| {name} | {sweep:.3f} | {product:.3f} | {sweep / product:.2f} |")
    print()
    for name, (sweep, product) in medians.items():
        print(f"One sweep over {PROJECTED_BINS:,} bins ({name} chunks): {sweep * PROJECTED_BINS / n:.1f} s, the "
              f"matrix products alone {product * PROJECTED_BINS / n:.1f} s.")


if __name__ == "__main__":
    main()
