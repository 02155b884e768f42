"""``python -m bench.accuracy --out DIR [--methods ...] [--bins N] [--squares NAME... | --design | --kept-back]``:
run the Latin-square hold-outs, write the tables and the margins."""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from predictd_core.errors import PredictdInputError

from bench.accuracy.bootstrap import BLOCK_BINS, RESAMPLES, SEED, draw_block_counts
from bench.accuracy.latin_square import KEPT_BACK, SQUARES, select_squares
from bench.accuracy.margins import REFERENCE, margin_rows, resampled_measures
from bench.accuracy.methods import (DEFAULT_METHODS, METHODS, PEER_MEAN, PEER_MEAN_OF, MethodUnavailable, make_method,
                                   peer_mean)
from bench.accuracy.methods.avocado import AvocadoMethod
from bench.accuracy.methods.baseline import SameAssayAverage
from bench.accuracy.problem import BIN_SIZE, PILOT, prepare_problem
from bench.accuracy.report import Timing, accuracy_markdown, write_results
from bench.accuracy.scoring import score_targets, scored_targets


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (ChromImpute's JVMs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(call: Callable[[], object]) -> tuple[object, Timing]:
    """``call()``'s result and its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = call()
    return result, Timing(time.perf_counter() - wall, cpu_seconds() - cpu)


def log(message: str) -> None:
    print(f"[bench.accuracy] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for accuracy.md, per_target.tsv and margins.tsv")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS),
                        help=f"default: {' '.join(DEFAULT_METHODS)}")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--squares", nargs="+", metavar="NAME",
                       help="these design squares (of " + ", ".join(f"{s.name} ({s.role})" for s in SQUARES) + ")")
    which.add_argument("--design", action="store_true", help="every design square (the default)")
    which.add_argument("--kept-back", action="store_true",
                       help="every kept-back square and only those: the final check")
    parser.add_argument("--bins", type=int, default=None, help="only the first N bins of the pilot (quick runs)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the store and each method's files here (default: a temporary folder)")
    parser.add_argument("--pilot", type=Path, default=PILOT, help="the pilot tracks folder (tracks.tsv)")
    parser.add_argument("--avocado-epochs", type=int, default=AvocadoMethod.epochs,
                        help="passes over the bins (default %(default)s)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES,
                        help="block-bootstrap resamples for the margins (default %(default)s; 0: no margins)")
    parser.add_argument("--block-bins", type=int, default=BLOCK_BINS,
                        help=f"bins per bootstrap block (default %(default)s: {BLOCK_BINS * BIN_SIZE // 1000} kb)")
    parser.add_argument("--seed", type=int, default=SEED, help="of the block draws (default %(default)s)")
    parser.add_argument("--reference", choices=METHODS, default=REFERENCE,
                        help="the method whose margins over every other are drawn (default %(default)s; e.g. "
                             "predictd-gbt to bound a variant against the default and the peers)")
    args = parser.parse_args(argv)
    if args.bins is not None and args.bins < 1:
        parser.error("--bins must be positive")
    if args.avocado_epochs < 1:
        parser.error("--avocado-epochs must be positive")
    if args.resamples < 0 or args.block_bins < 1:
        parser.error("--resamples must be 0 or more and --block-bins positive")
    try:
        args.chosen_squares = select_squares(args.squares, args.kept_back)
    except ValueError as error:
        parser.error(str(error))
    return args


def run(args: argparse.Namespace, work: Path) -> str:
    """The whole benchmark in ``work``; returns the markdown it wrote."""
    squares = args.chosen_squares
    methods = [make_method(name, args.avocado_epochs) for name in dict.fromkeys(args.methods)]
    for method in methods:  # before any work: a missing peer or a bad setting stops the run at once
        method.check()
    reference = args.reference
    with_margins = args.resamples > 0 and reference in {m.name for m in methods} and len(methods) > 1
    log("squares: " + ", ".join(f"{square.name} ({square.role})" for square in squares))
    rows, timings, resampled, means, headings = [], {}, {}, {}, {}
    counts, measures, preparing, bootstrapping = None, [], [], []
    for square in squares:
        folder = work / "squares" / square.name
        problem, prepared = timed(lambda: prepare_problem(work, args.pilot, args.bins, square.targets, folder))
        preparing.append(prepared.wall_s)  # the first square's includes the ingest, the others open the store
        baseline = SameAssayAverage().impute(problem, work)
        imputations, timings[square.name] = {}, {}
        for method in methods:
            log(f"{square.name}: {method.name} ...")
            method_folder = folder / "methods" / method.name
            shutil.rmtree(method_folder, ignore_errors=True)  # an earlier run's files in a kept --work folder
            method_folder.mkdir(parents=True)
            imputations[method.name], timings[square.name][method.name] = timed(
                lambda: method.impute(problem, method_folder))
            log(f"{square.name}: {method.name}: {timings[square.name][method.name].wall_s:.0f} s wall")
        if set(PEER_MEAN_OF) <= set(imputations):
            imputations[PEER_MEAN] = peer_mean(imputations)
            parts = [timings[square.name][name] for name in PEER_MEAN_OF]
            timings[square.name][PEER_MEAN] = Timing(sum(t.wall_s for t in parts), sum(t.cpu_s for t in parts))
        scored = scored_targets(problem, imputations, baseline)
        square_rows = score_targets(scored, square.name)
        rows += square_rows
        headings[square.name] = f"{square.name} ({square.role}): {', '.join(t.name for t in problem.targets)}"
        if with_margins:
            if counts is None:  # one set of draws for every square: the blocks are the same loci
                counts = draw_block_counts(math.ceil(problem.n_bins / args.block_bins), args.resamples, args.seed)
            (measures, resampled[square.name]), spent = timed(
                lambda: resampled_measures(scored, counts, args.block_bins))
            bootstrapping.append(spent.wall_s)
            log(f"{square.name}: margins, {args.resamples} resamples: {spent.wall_s:.0f} s wall")
            means[square.name] = {name: np.array([np.mean([row[m] for row in square_rows
                                                           if row["method"] == name]) for m in measures])
                                  for name in imputations}
    margins = margin_rows(resampled, means, measures, reference) if with_margins else None
    kept_back = any(square.role == KEPT_BACK for square in squares)
    notes = [f"Squares: {', '.join(f'{square.name} ({square.role})' for square in squares)}"
             + (" -- THE KEPT-BACK SQUARES: the final check." if kept_back else "; no kept-back square was scored."),
             f"Latin-square hold-outs on the Roadmap pilot ({args.pilot.name}): {problem.n_bins:,} bins of "
             f"{BIN_SIZE} bp; in each square every method trained on the other {len(problem.training)} tracks "
             f"and imputed its {len(problem.targets)} targets.",
             f"Means over each square's targets, scored by predictd's quality_measures on the bins every method "
             f"covers; wall and CPU seconds per method (ingest of the store, shared and not counted: "
             f"{preparing[0]:.0f} s wall)."]
    margin_note = ""
    if with_margins:
        n_blocks = counts.shape[1]
        notes.append(f"Margins: {args.resamples} block-bootstrap resamples of the {n_blocks} blocks of "
                     f"{args.block_bins:,} bins ({args.block_bins * BIN_SIZE / 1000:g} kb), seed {args.seed}; "
                     f"{sum(bootstrapping):.0f} s wall for all squares."
                     + (" With so few blocks the intervals are rough: a quick run's margins check the "
                        "machinery, not predictd." if n_blocks < 30 else ""))
        margin_note = (f"{reference} minus each peer: the difference of the means on the data, then in brackets "
                       f"the 95% interval of that difference over {args.resamples} paired block-bootstrap "
                       f"resamples of the genome (each measure recomputed on the resampled bins for both methods); "
                       f"'win' where the interval excludes 0 in {reference}'s favour (below 0 for the ↓ "
                       f"measures, above 0 for the ↑ ones), 'loss' where it excludes 0 in the peer's.")
    elif args.resamples > 0:
        notes.append(f"No margins: they need {reference} and at least one peer among the methods.")
    markdown = accuracy_markdown(rows, timings, notes, headings, margins, margin_note)
    write_results(args.out, rows, markdown, margins)
    return markdown


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
