"""Imputation compute against the matrix products it cannot avoid, at Roadmap scale.

Imputing one chunk: each ensemble member (C, A and biases fitted) solves every bin's genome factors by ridge
from its input experiments, then predicts every (cell, assay) pair; the members' predictions are averaged
pair by pair. For one model the products are ``chunk @ (1,014 x 101)`` (the ridge solutions) and
``(bins x 102) @ (102 x 3,048)`` (the predictions and their offsets): ~0.81 Mflop per bin.

Builds one chunk with the real Roadmap layout (the 1,014 observed experiments of a 127 x 24 grid, from
../shared/data/roadmap-layout) and planted rank-100 signal, as bench/roadmap_scale.py does, float32 as the
store holds it, plus a copy with holes as real bigWigs have them (bench/sweep_limit.py's ``punch_holes``), and
rank-100 models near the planted factors. Ensembles: one model on every experiment (``predictd run``), and
``M`` members cross-validation style (PREDICTD's 8 per test fold; 40 is the whole 5 x 8 ensemble): member
``m`` belongs to test fold ``m // 8`` of five random folds of the experiments, sees every experiment but its
test fold's, and averages the pairs of its test fold and every pair no member's test fold holds. Times,
interleaved, medians of ``--repeats``:

- the bound: the bare float32 products of one model's shapes (results allocated as written);
- today's path: the member loop of ``als.predict`` (float64), as ``ensemble_chunk`` was before the
  stacked products (kept here verbatim as ``member_by_member``);
- the new ``ensemble_chunk`` on the float32 chunk (and, for ensembles, with the members' spread).

Seconds are wall time of this process; core-seconds are wall x 2 (numpy's OpenBLAS runs 2 threads on this
2-core machine; a busy machine inflates both alike, so the ratios are the numbers to quote). Then the
precision of the new float32 mean (and spread) against today's float64 path on the holey chunk.

    .venv/bin/python bench/impute_compute.py [--bins 16384] [--members 1 8] [--repeats 3] [--hole-share 0.03]
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np
from jobs import LAYOUT, timed
from sweep_limit import punch_holes

from predictd_core.impute.ensemble import Ensemble, EnsembleMember, ensemble_chunk
from predictd_core.model.factors import CellAssayFactors, Layout
from predictd_core.simulate import load_roadmap_layout
from predictd_core.solvers import als
from predictd_core.tracks.table import Track

RANK = 100
RIDGE = 2.9
CORES = 2
FOLDS = 5
MEMBERS_PER_FOLD = 8


def roadmap_chunk(n_bins: int) -> tuple[Layout, np.ndarray, np.ndarray, np.ndarray]:
    """The Roadmap layout, a float32 chunk of planted rank-100 signal (arcsinh, as the store holds it) over
    its 1,014 experiments, and the planted C and A."""
    cells, assays, observed, _ = load_roadmap_layout(LAYOUT)
    layout = Layout.from_experiments([Track(c, a, "simulated") for c in cells for a in assays if (c, a) in observed])
    rng = np.random.default_rng(0)
    C = rng.normal(0, 0.3, (len(layout.cells), RANK))
    A = rng.normal(0, 0.3, (len(layout.assays), RANK))
    G = rng.gamma(0.3, 1.0, (n_bins, RANK))
    Z = C[layout.cell_of] * A[layout.assay_of]
    Y = np.maximum(0.5 + G @ Z.T + rng.normal(0, 0.3, (n_bins, Z.shape[0])), 0).astype(np.float32)
    return layout, Y, C, A


def model_near(C: np.ndarray, A: np.ndarray, seed: int) -> CellAssayFactors:
    """A fitted model as a fit would leave it: the planted factors with small errors, small biases."""
    rng = np.random.default_rng(seed)
    return CellAssayFactors(0.5, C + rng.normal(0, 0.03, C.shape), A + rng.normal(0, 0.03, A.shape),
                            rng.normal(0, 0.05, C.shape[0]), rng.normal(0, 0.05, A.shape[0]))


def ensemble_of(layout: Layout, C: np.ndarray, A: np.ndarray, n_members: int) -> Ensemble:
    """One model on every experiment, or ``n_members`` cross-validation members (see the module docstring)."""
    n_pairs = len(layout.cells) * len(layout.assays)
    columns = np.arange(layout.cell_of.size)
    if n_members == 1:
        return Ensemble(layout, RIDGE, (EnsembleMember("model", model_near(C, A, 1), columns),),
                        np.ones((1, n_pairs), dtype=bool))
    test_fold = np.random.default_rng(2).permutation(columns.size) % FOLDS
    fold_of_pair = np.full(n_pairs, -1)
    fold_of_pair[layout.cell_of * len(layout.assays) + layout.assay_of] = test_fold
    member_fold = np.arange(n_members) // MEMBERS_PER_FOLD
    fold_of_pair[~np.isin(fold_of_pair, member_fold)] = -1  # a fold without members: imputed by every member
    members = tuple(EnsembleMember(f"test{fold}-{m}", model_near(C, A, 10 + m), columns[test_fold != fold])
                    for m, fold in enumerate(member_fold))
    weights = np.array([(fold_of_pair == fold) | (fold_of_pair == -1) for fold in member_fold])
    return Ensemble(layout, RIDGE, members, weights)


def member_by_member(Y: np.ndarray, ensemble: Ensemble, with_spread: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``ensemble_chunk`` as it was: each member's ``als.predict`` (float64) added into a float64 sum."""
    cells, assays = ensemble.layout.all_pairs()
    weights = ensemble.weights
    shape = (Y.shape[0], weights.shape[1])
    total, squares = None, np.zeros(shape) if with_spread else None
    for member, used in zip(ensemble.members, weights):
        columns = member.input_columns
        prediction = als.predict(Y[:, columns], member.factors, ensemble.layout.cell_of[columns],
                                 ensemble.layout.assay_of[columns], cells[used], assays[used], ensemble.ridge)
        if squares is not None:
            squares[:, used] += np.square(prediction)
        if total is None and used.all():
            total = prediction
            continue
        if total is None:
            total = np.zeros(shape)
        if used.all():
            total += prediction
        else:
            total[:, used] += prediction
    counts = weights.sum(axis=0)
    mean = total if (counts == 1).all() else total / counts
    if squares is None:
        return mean, None
    return mean, np.sqrt(np.maximum(squares / counts - np.square(mean), 0.0))


def bound_products(Y: np.ndarray, solve: np.ndarray, outputs: np.ndarray) -> None:
    """One model's products on float32 arrays of their shapes, nothing else."""
    W = Y @ solve
    np.hstack([W, np.ones((W.shape[0], 1), np.float32)]) @ outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=16_384, help="bins of the chunk")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 8], help="ensemble sizes to time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hole-share", type=float, default=0.03, help="share of the holey chunk's bins in runs "
                        "with holes (0: no holey chunk)")
    args = parser.parse_args()
    layout, complete, C, A = roadmap_chunk(args.bins)
    n_pairs = len(layout.cells) * len(layout.assays)
    chunks = {"complete": complete}
    if args.hole_share > 0:
        chunks["holey"], runs = punch_holes(complete, args.hole_share)
    ensembles = {m: ensemble_of(layout, C, A, m) for m in args.members}
    rng = np.random.default_rng(3)
    solve = rng.normal(size=(complete.shape[1], RANK + 1)).astype(np.float32)
    outputs = rng.normal(size=(RANK + 2, n_pairs)).astype(np.float32)

    cases = {("bound", "complete"): (bound_products, complete, solve, outputs)}
    for chunk, Y in chunks.items():
        for m, ensemble in ensembles.items():
            cases[(f"today, {m} member{'s' * (m > 1)}", chunk)] = (member_by_member, Y, ensemble)
            cases[(f"new, {m} member{'s' * (m > 1)}", chunk)] = (ensemble_chunk, Y, ensemble)
            if m > 1 and chunk == "complete":
                cases[(f"new with spread, {m} members", chunk)] = (ensemble_chunk, Y, ensemble, True)
    for fn, *inputs in cases.values():  # warm-up: the process's first touch of fresh memory pages
        fn(*inputs)
    seconds = {case: [] for case in cases}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every case alike
        for case, (fn, *inputs) in cases.items():
            seconds[case].append(timed(fn, *inputs))

    per_million = {case: statistics.median(times) * CORES * 1e6 / args.bins for case, times in seconds.items()}
    bound = per_million[("bound", "complete")]
    print(f"Roadmap layout: {len(layout.cells)} cells x {len(layout.assays)} assays, {complete.shape[1]} experiments, "
          f"{n_pairs} pairs, rank {RANK}, a float32 chunk of {args.bins:,} bins, median of {args.repeats} interleaved "
          f"repeats; core-s = wall x {CORES} (numpy's BLAS threads). Load average at the start of timing: "
          f"{os.getloadavg()[0]:.1f}.")
    if "holey" in chunks:
        missing = np.isnan(chunks["holey"])
        print(f"Holey chunk: {runs} runs of missing bins, {int(missing.any(axis=1).sum()):,} bins "
              f"({missing.any(axis=1).mean():.1%}) missing some experiment, {missing.mean():.2%} of entries missing.")
    print()
    print("| path | chunk | s per chunk | core-s per M bins | / bound | per member / bound |")
    print("|---|---|---|---|---|---|")
    for (name, chunk), value in per_million.items():
        m = 1 if name == "bound" else int(name.split(", ")[1].split()[0])
        print(f"| {name} | {chunk} | {statistics.median(seconds[(name, chunk)]):.3f} | {value:.1f} | "
              f"{value / bound:.2f} | {value / bound / m:.2f} |")
    print()
    for m in args.members:
        today = per_million[(f"today, {m} member{'s' * (m > 1)}", "complete")]
        new = per_million[(f"new, {m} member{'s' * (m > 1)}", "complete")]
        print(f"{m} member{'s' * (m > 1)}: new / today {new / today:.2f} (complete chunk).")

    name = "holey" if "holey" in chunks else "complete"
    Y = chunks[name]
    print(f"\nPrecision of the new float32 path against today's float64 path ({name} chunk; mean and spread):\n")
    print("| members | max abs error, mean | / max abs mean | max abs error, spread | holey bins' max abs error |")
    print("|---|---|---|---|---|")
    holey_bins = np.isnan(Y).any(axis=1)
    for m, ensemble in ensembles.items():
        reference, reference_spread = member_by_member(Y, ensemble, with_spread=True)
        mean, spread = ensemble_chunk(Y, ensemble, with_spread=True)
        error = np.abs(mean - reference)
        holes = f"{error[holey_bins].max():.2e}" if holey_bins.any() else "-"
        print(f"| {m} | {error.max():.2e} | {error.max() / np.abs(reference).max():.2e} | "
              f"{np.abs(spread - reference_spread).max():.2e} | {holes} |")


if __name__ == "__main__":
    main()
