"""The refinement's fit on the real pilot, as ``make demo`` pays it for each test fold, against an earlier commit.

One refiner is fitted the way the stage fits it (``fit_refinement``): the inner validation (``choose_blend``: the
cells' scale model, then each validation track left out of its assay's ridge, refitted with 0-4 nearest cells and
scored at every blend) and then the refiner's own ridges (``fit_refiner``), on the stage's sample of the pilot's
store (``sample_stretches``). Its inputs are the 20 training tracks of the design square ``--square`` (default
cyclic-0). No tensor ensemble is trained: its left-out imputation is NaN, so the tensor shares are not scored (a
few of the validation's rows; the regressions' refits and the scoring are the cost).

Each way fits in a fresh process, this tree and ``--against REV`` (a git worktree) interleaved, and reports wall and
CPU seconds; the two refiners' choices must agree and their ridges are compared.

    .venv/bin/python bench/refine_fit.py --work /tmp/acc-work --against REV [--square cyclic-0] [--repeats 3]

``--work`` is a ``bench.accuracy`` work folder: the pilot's store is ingested there once and reused.
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
sys.path.insert(1, str(REPO))


def fit_child(work: str, square: str, output: str) -> None:
    """In the process of one way: fit the square's refiner with that way's code, pickle it to ``output`` and print
    the fit's wall and CPU seconds."""
    from accuracy.latin_square import select_squares
    from accuracy.problem import prepare_problem

    from predictd_core.impute.refine.regression import fit_refiner
    from predictd_core.impute.refine.stage import sample_stretches
    from predictd_core.impute.refine.validation import choose_blend
    from predictd_core.model.factors import Layout
    from predictd_core.model.settings import RefineSettings

    targets = select_squares([square])[0].targets
    problem = prepare_problem(Path(work), targets=targets, folder=Path(work) / "squares" / square)
    layout = Layout.from_experiments(problem.store.experiments)
    inputs = np.asarray(problem.training)
    settings = RefineSettings()
    chunks = sample_stretches(problem.store, settings.sample_bins)
    tensor = [np.full((chunk.shape[0], inputs.size), np.nan) for chunk in chunks]
    started, cpu = time.perf_counter(), time.process_time()
    validation = choose_blend(chunks, layout, inputs, settings.ridge, settings.inner_tracks, tensor,
                              neighbours=settings.neighbours)
    refiner = fit_refiner(chunks, layout, inputs, settings.ridge, validation=validation)
    seconds = {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu}
    with open(output, "wb") as handle:
        pickle.dump({"blend": refiner.blend, "neighbours": refiner.neighbours, "scale": validation.scale,
                     "weights": refiner.weights}, handle)
    print("END " + json.dumps(seconds), flush=True)


def main(argv: list[str] | None = None) -> None:
    from refine_apply import in_checkout

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="bench.accuracy work folder (the pilot's store)")
    parser.add_argument("--against", required=True, help="an earlier commit, run from a git worktree beside this tree")
    parser.add_argument("--square", default="cyclic-0", help="a design square, whose training tracks are the inputs")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    work = args.work.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        worktree = Path(scratch) / "against"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), args.against],
                       check=True, capture_output=True)
        ways = {"this tree": REPO, args.against: worktree}
        names = list(ways)
        runs: dict[str, list[dict]] = {way: [] for way in ways}
        try:
            for repeat in range(args.repeats):
                for way in names if repeat % 2 == 0 else names[::-1]:
                    output = Path(scratch) / f"{names.index(way)}.pkl"
                    runs[way].append(in_checkout(ways[way], f"fit_child({str(work)!r}, {args.square!r}, "
                                                            f"{str(output)!r})", module="refine_fit"))
                    print(f"  {way} run {repeat + 1}: {runs[way][-1]['wall']:.1f} s, "
                          f"{runs[way][-1]['cpu']:.1f} CPU s", flush=True)
            fitted = [pickle.loads((Path(scratch) / f"{i}.pkl").read_bytes()) for i in range(len(names))]
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                           capture_output=True)
    choices = [{key: fit[key] for key in ("blend", "neighbours", "scale")} for fit in fitted]
    if choices[0] != choices[1]:
        raise SystemExit(f"the two fits chose differently: {choices[0]} against {choices[1]}")
    print(f"\n{args.square}'s refiner, medians of {args.repeats} (chose {choices[0]}):\n")
    print("| way | wall s | CPU s |")
    print("|---|---|---|")
    medians = {way: {kind: statistics.median(run[kind] for run in runs[way]) for kind in ("wall", "cpu")}
               for way in names}
    for way, median in medians.items():
        print(f"| {way} | {median['wall']:.1f} | {median['cpu']:.1f} |")
    difference = np.nanmax(np.abs(fitted[0]["weights"] - fitted[1]["weights"]))
    print(f"\nthis tree / {args.against}: **{medians['this tree']['wall'] / medians[args.against]['wall']:.2f}x** the "
          f"wall time, {medians['this tree']['cpu'] / medians[args.against]['cpu']:.2f}x the CPU; the ridges differ "
          f"by at most {difference:.1e}")


if __name__ == "__main__":
    main()
