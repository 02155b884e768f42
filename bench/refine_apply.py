"""The refinement's application to a Roadmap-shaped chunk, as an imputation task pays it, against an earlier commit.

The protocol's finish job (``bench/protocol.py``) spends 88% of its imputation in ``Refinement.apply``: every
chunk of the genome, each of its 3,048 pairs refined by the refiner of the members that impute it. This script
prices that one call apart, on the cross-validated ensemble's shape:

- a Roadmap-shaped store (1,014 experiments of the 127 x 24 grid, ``predictd simulate --layout``), its columns dealt
  into 5 test folds (seeded);
- six refiners, as the protocol's six sets of members: one per test fold (its inputs: the other folds' columns;
  it refines the observed pairs of its fold) and one of every column (it refines the pairs never measured), each
  fitted by ``fit_refiner`` on the stage's own sample (``sample_stretches``) at blend 0.5, tensor share 0.25 (the
  inner validation that would choose them costs the fit, not the application);
- the tensor ensemble's columns stood in for by each assay's mean over the cells that measure it (the
  application's cost does not depend on their values).

Each way applies the same pickled refinement to the same chunks in a fresh process with BLAS on one thread (as in
Spark's tasks and the numpy engine's workers) and reports CPU seconds per chunk; ``--against REV`` runs the same
call from a git worktree of commit REV, the ways interleaved, and the outputs must agree; with ``--refit`` each way
fits its own refinement with its own code (what a change to the features costs; the outputs then differ).
``--neighbours K [K ...]``
instead fits one refinement per K (each pair's regression reading its assay's tracks in the K most similar other
cells, ``model.refine.neighbours``; 0 by default) and applies each with this tree, interleaved: what the
neighbours cost.

    .venv/bin/python bench/refine_apply.py --data /tmp/refine-apply [--bins 65536] [--chunk-bins 16384]
        [--chunks 2] [--repeats 3] [--against REV [--refit] | --neighbours K [K ...]] [--sample-bins BINS]
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
N_TEST_FOLDS = 5
BLEND, TENSOR_SHARE, RIDGE = 0.5, 0.25, 1000.0


def build_refinement(store_path: Path, sample_bins: int | None = None, seed: int = 0, neighbours: int = 0):
    """The protocol-shaped refinement (module docstring) of the store at ``store_path``, fitted on
    ``sample_bins`` (default: the stage's ``sample_bins``), each regression reading ``neighbours`` nearest cells."""
    from predictd_core.impute.refine.regression import fit_refiner
    from predictd_core.impute.refine.stage import Refinement, sample_stretches
    from predictd_core.model.factors import Layout
    from predictd_core.model.settings import RefineSettings
    from predictd_core.store.signal_store import SignalStore

    store = SignalStore.open(store_path)
    layout = Layout.from_experiments(store.experiments)
    n_assays = len(layout.assays)
    chunks = sample_stretches(store, sample_bins or RefineSettings().sample_bins)
    fold_of = np.random.default_rng(seed).permutation(store.n_experiments) % N_TEST_FOLDS
    input_sets = [np.flatnonzero(fold_of != fold) for fold in range(N_TEST_FOLDS)] + [np.arange(store.n_experiments)]
    refiners = [fit_refiner(chunks, layout, inputs, RIDGE, blend=BLEND, tensor=TENSOR_SHARE, neighbours=neighbours)
                for inputs in input_sets]
    observed = np.full(len(layout.cells) * n_assays, len(refiners) - 1)  # never measured: the refiner of all
    observed[layout.cell_of * n_assays + layout.assay_of] = fold_of
    refiner_of_pair = np.array([r if refiners[r].refinable(*divmod(p, n_assays)) else -1
                                for p, r in enumerate(observed)])
    return Refinement(tuple(refiners), refiner_of_pair)


def fit_child(store_path: str, output: str, sample_bins: int | None) -> None:
    """In the process of one way: fit the refinement with that way's code, pickle it to ``output`` and print the
    fit's CPU seconds."""
    started = time.process_time()
    refinement = build_refinement(Path(store_path), sample_bins)
    seconds = time.process_time() - started
    with open(output, "wb") as handle:
        pickle.dump(refinement, handle)
    print("END " + json.dumps({"fit_seconds": seconds}), flush=True)


def in_checkout(source: Path, call: str, module: str = "refine_apply") -> dict:
    """Run ``MODULE.CALL`` (a script of this bench folder) in a fresh process with the package of ``source`` (a
    checkout); what it printed after ``END``."""
    code = (f"import sys; sys.path.insert(0, {str(source)!r}); sys.path.insert(1, {str(REPO / 'bench')!r}); "
            f"import predictd_core, {module}; assert predictd_core.__file__.startswith({str(source)!r}); "
            f"{module}.{call}")
    done = subprocess.run([sys.executable, "-c", code], cwd=source, check=True, capture_output=True, text=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("END "))
    return json.loads(line[4:])


def refit_way(source: Path, store_path: Path, output: Path, sample_bins: int | None) -> float:
    """Fit and pickle the refinement with the package of ``source`` (a checkout), in a fresh process; the fit's
    CPU seconds."""
    return in_checkout(source, f"fit_child({str(store_path)!r}, {str(output)!r}, {sample_bins!r})")["fit_seconds"]


def stand_in_tensor(chunk: np.ndarray, layout) -> np.ndarray:
    """Each pair's column: its assay's mean (arcsinh) over the cells that measure it, float32."""
    n_assays = len(layout.assays)
    signal = np.arcsinh(np.nan_to_num(chunk)).astype(np.float64)
    means = np.stack([signal[:, layout.assay_of == a].mean(axis=1) for a in range(n_assays)], axis=1)
    return np.tile(means, (1, len(layout.cells))).astype(np.float32)


def apply_child(refinement_path: str, store_path: str, chunks: int, output: str) -> None:
    """In the process of one way: apply the refinement to the first ``chunks`` chunks, print their CPU seconds."""
    from threadpoolctl import threadpool_limits

    from predictd_core.model.factors import Layout
    from predictd_core.store.signal_store import SignalStore

    with open(refinement_path, "rb") as handle:
        refinement = pickle.load(handle)
    store = SignalStore.open(store_path)
    layout = Layout.from_experiments(store.experiments)
    pairs = np.arange(len(layout.cells) * len(layout.assays))
    seconds, outputs = [], []
    with threadpool_limits(1):
        for chunk in range(chunks):
            signal = store.read_chunk(chunk)
            Y, tensor = np.arcsinh(signal), stand_in_tensor(signal, layout)
            started = time.process_time()
            out = refinement.apply(Y, tensor, pairs)
            seconds.append(time.process_time() - started)
            outputs.append(out)
    np.save(output, np.concatenate(outputs))
    print("END " + json.dumps({"core_seconds": seconds}), flush=True)


def run_way(source: Path, refinement_path: Path, store_path: Path, chunks: int, output: Path) -> list[float]:
    """One fresh process applying the refinement with the package of ``source`` (a checkout)."""
    return in_checkout(source, f"apply_child({str(refinement_path)!r}, {str(store_path)!r}, {chunks}, "
                               f"{str(output)!r})")["core_seconds"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of the simulated store (made once)")
    parser.add_argument("--bins", type=int, default=65_536)
    parser.add_argument("--chunk-bins", type=int, default=16_384)
    parser.add_argument("--chunks", type=int, default=2, help="chunks each way applies the refinement to")
    parser.add_argument("--repeats", type=int, default=3)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--against", help="an earlier commit, run from a git worktree beside this tree")
    which.add_argument("--neighbours", type=int, nargs="+", default=[0],
                       help="one refinement per count of nearest cells, each applied with this tree (default 0)")
    parser.add_argument("--refit", action="store_true",
                        help="with --against: each way fits its own refinement with its own code")
    parser.add_argument("--sample-bins", type=int, default=None,
                        help="bins the refiners are fitted on (default: the stage's; fewer only to run quickly)")
    args = parser.parse_args(argv)
    from jobs import compendium

    from predictd_core.impute.refine.features import n_features
    from predictd_core.model.factors import Layout
    from predictd_core.store.signal_store import SignalStore

    if args.refit and not args.against:
        parser.error("--refit needs --against")
    data = compendium(args.data, args.bins, args.chunk_bins)
    store_path = data / "store.zarr"
    n_assays = len(Layout.from_experiments(SignalStore.open(store_path).experiments).assays)
    refinements = {}
    for neighbours in args.neighbours:
        suffix = f"-neighbours-{neighbours}" if neighbours else ""
        width = n_features(n_assays, neighbours)  # a refinement pickled by code with other features is not this tree's
        refinements[neighbours] = data / f"refinement-{args.sample_bins or 'default'}{suffix}-{width}.pkl"
        if not refinements[neighbours].exists():
            started = time.process_time()
            refinement = build_refinement(store_path, args.sample_bins, neighbours=neighbours)
            with open(refinements[neighbours].with_suffix(".tmp"), "wb") as handle:
                pickle.dump(refinement, handle)
            refinements[neighbours].with_suffix(".tmp").rename(refinements[neighbours])
            print(f"refinement ({neighbours} neighbours) fitted in {time.process_time() - started:.0f} CPU s: "
                  f"{len(refinement.refiners)} refiners, {int((refinement.refiner_of_pair >= 0).sum()):,} pairs refined",
                  flush=True)
    store = SignalStore.open(store_path)
    chunks = min(args.chunks, store.n_chunks)
    bins = store.chunk_bounds(chunks - 1)[1]
    with tempfile.TemporaryDirectory() as scratch:
        if len(args.neighbours) > 1:  # (checkout, refinement) per way
            ways = {f"{k} neighbours": (REPO, path) for k, path in refinements.items()}
        else:
            ways = {"this tree": (REPO, refinements[args.neighbours[0]])}
        if args.against:
            worktree = Path(scratch) / "against"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), args.against],
                           check=True, capture_output=True)
            ways[args.against] = (worktree, refinements[0])
            if args.refit:
                ways[args.against] = (worktree, Path(scratch) / "against.pkl")
                seconds = refit_way(worktree, store_path, ways[args.against][1], args.sample_bins)
                print(f"refinement fitted by {args.against} in {seconds:.0f} CPU s", flush=True)
        try:
            runs: dict[str, list[float]] = {way: [] for way in ways}
            names = list(ways)
            for repeat in range(args.repeats):
                for way in names if repeat % 2 == 0 else names[::-1]:
                    source, refinement_path = ways[way]
                    seconds = run_way(source, refinement_path, store_path, chunks,
                                      Path(scratch) / f"{names.index(way)}.npy")
                    runs[way].append(sum(seconds))
                    print(f"  {way} run {repeat + 1}: {sum(seconds):.2f} CPU s over {chunks} chunks", flush=True)
            outputs = [np.load(Path(scratch) / f"{i}.npy") for i in range(len(names))]
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                               capture_output=True)
    print(f"\n{chunks} chunk(s), {bins:,} bins, {store.n_experiments:,} experiments, medians of {args.repeats}:\n")
    print("| way | CPU s | core-s per M bins |")
    print("|---|---|---|")
    medians = {way: statistics.median(seconds) for way, seconds in runs.items()}
    for way, seconds in medians.items():
        print(f"| {way} | {seconds:.2f} | {seconds / bins * 1e6:,.0f} |")
    if len(args.neighbours) > 1:
        first = names[0]
        for way in names[1:]:
            print(f"\n{way} / {first}: **{medians[way] / medians[first]:.2f}x** the CPU")
    if args.against:
        print(f"\nthis tree / {args.against}: **{medians['this tree'] / medians[args.against]:.2f}x** the CPU; "
              f"outputs differ by at most {np.abs(outputs[0] - outputs[1]).max():.2e} (arcsinh)"
              + (", each way's own refinement" if args.refit else ""))


if __name__ == "__main__":
    main()
