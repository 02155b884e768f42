"""``python -m bench.accuracy --out DIR [--methods ...] [--bins N]``: run the hold-out, write the tables."""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from predictd_core.errors import PredictdInputError

from bench.accuracy.methods import DEFAULT_METHODS, METHODS, MethodUnavailable, make_method
from bench.accuracy.methods.avocado import AvocadoMethod
from bench.accuracy.methods.baseline import SameAssayAverage
from bench.accuracy.problem import PILOT, prepare_problem
from bench.accuracy.report import Timing, write_results
from bench.accuracy.scoring import score


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (ChromImpute's JVMs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(call: Callable[[], object]) -> tuple[object, Timing]:
    """``call()``'s result and its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = call()
    return result, Timing(time.perf_counter() - wall, cpu_seconds() - cpu)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for accuracy.md and per_target.tsv")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS),
                        help=f"default: {' '.join(DEFAULT_METHODS)}")
    parser.add_argument("--bins", type=int, default=None, help="only the first N bins of the pilot (quick runs)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the store and each method's files here (default: a temporary folder)")
    parser.add_argument("--pilot", type=Path, default=PILOT, help="the pilot tracks folder (tracks.tsv)")
    parser.add_argument("--avocado-epochs", type=int, default=AvocadoMethod.epochs,
                        help="passes over the bins (default %(default)s)")
    args = parser.parse_args(argv)
    if args.bins is not None and args.bins < 1:
        parser.error("--bins must be positive")
    if args.avocado_epochs < 1:
        parser.error("--avocado-epochs must be positive")
    return args


def run(args: argparse.Namespace, work: Path) -> str:
    """The whole benchmark in ``work``; returns the markdown table it wrote."""
    methods = [make_method(name, args.avocado_epochs) for name in dict.fromkeys(args.methods)]
    for method in methods:  # before any work: a missing peer or a bad setting stops the run at once
        method.check()
    problem, ingest = timed(lambda: prepare_problem(work, args.pilot, args.bins))
    baseline = SameAssayAverage().impute(problem, work)
    imputations, timings = {}, {}
    for method in methods:
        print(f"[bench.accuracy] {method.name} ...", file=sys.stderr, flush=True)
        folder = work / "methods" / method.name
        shutil.rmtree(folder, ignore_errors=True)  # an earlier run's files in a kept --work folder
        folder.mkdir(parents=True)
        imputations[method.name], timings[method.name] = timed(lambda: method.impute(problem, folder))
        print(f"[bench.accuracy] {method.name}: {timings[method.name].wall_s:.0f} s wall", file=sys.stderr, flush=True)
    rows = score(problem, imputations, baseline)
    notes = [f"Latin-square hold-out on the Roadmap pilot ({args.pilot.name}): {problem.n_bins:,} bins of 25 bp; "
             f"targets {', '.join(t.name for t in problem.targets)}; each method trained on the other "
             f"{len(problem.training)} tracks.",
             f"Means over the {len(problem.targets)} targets, scored by predictd's quality_measures on the bins "
             f"every method covers; wall and CPU seconds per method for the whole hold-out (ingest of the "
             f"store, shared, not counted: {ingest.wall_s:.0f} s)."]
    _, table = write_results(args.out, rows, timings, notes)
    return table.read_text()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 2 with one line on bad input or a missing peer, writing nothing."""
    args = parse_args(argv)
    try:
        if args.work is not None:
            print(run(args, args.work.resolve()))
        else:
            with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as work:
                print(run(args, Path(work)))
    except (PredictdInputError, MethodUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
