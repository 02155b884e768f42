"""The two-minute version of the Roadmap-scale benchmarks (``make bench-quick``): the same scripts on small sizes.

Each benchmark runs as BENCHMARKS.md gives it, with sizes cut so the whole set takes about two
minutes on the 2-core machine; the tables it prints are the same shape as the full runs'. Numbers
from here are for checking the scripts work, not for quoting.

    .venv/bin/python bench/quick.py [--work DIR] [--group training|chunks|protocol]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent


# Groups of runs that share nothing with one another (each its own data under the work folder), so that they can
# run side by side: the suite runs each group as a test of its own (tests/bench/test_quick_*.py).
GROUPS = {
    "training": ("One ALS sweep against its matrix products", "Imputation compute against its matrix products",
                 "NAdam-SGD against ALS to the same validation MSE", "Training to convergence",
                 "Memory against genome length", "Whole genome", "Writing a bigWig of 25 bp bins"),
    "chunks": ("Spark sweep against the numpy engine", "The refinement's application", "Imputation on the executors"),
    "protocol": ("The whole protocol", "Ingest on the executors", "Scoring on the executors",
                 "A scoring task's memory"),
}


def quick_runs(work: Path, group: str | None = None) -> list[tuple[str, list[str]]]:
    """(title, script and arguments) of every quick run, in order, or of one of :data:`GROUPS` (whole_genome uses
    convergence's model; the refinement's application and imputation on the executors spark_sweep's compendium;
    ingest and scoring on the executors the protocol's compendium and finished run)."""
    runs = _all_runs(work)
    return runs if group is None else [run for run in runs if run[0] in GROUPS[group]]


def _all_runs(work: Path) -> list[tuple[str, list[str]]]:
    small = work / "roadmap-20000"
    return [
        ("One ALS sweep against its matrix products", ["sweep_limit.py", "--chunk-bins", "4096", "--repeats", "2"]),
        ("Imputation compute against its matrix products", ["impute_compute.py", "--bins", "2048", "--repeats", "1"]),
        ("NAdam-SGD against ALS to the same validation MSE",
         ["time_to_mse.py", "--bins", "4096", "--nadam-rounds", "4", "--als-sweeps", "4", "--repeats", "1"]),
        ("Training to convergence", ["convergence.py", "--data", str(small), "--bins", "20000", "--patience", "2"]),
        ("Memory against genome length",
         ["memory_scale.py", "--work", str(work), "--bins", "20000", "40000", "--sweeps", "1"]),
        ("Whole genome", ["whole_genome.py", "--data", str(work / "roadmap-32768"), "--bins", "32768",
                          "--model", str(small / "bench-train-numpy" / "model"), "--tracks", "70",
                          "--ingest-bins", "2000", "--all-missing", "--batch-tracks", "1017",
                          "--chunk-bins", "16384", "--refine-chunks", "0", "--repeats", "1"]),
        ("Writing a bigWig of 25 bp bins", ["bigwig_write.py", "--quick"]),
        ("Spark sweep against the numpy engine", ["spark_sweep.py", "--data", str(work / "roadmap-8192"),
                                                  "--bins", "8192", "--chunk-bins", "2048", "--repeats", "1"]),
        # the refinement fitted on 512 sample bins: its ridges' normal equations over 1,014 tracks were most of
        # these two runs (37 CPU s of the refinement's application at 2,048 bins, 15 at 512)
        ("The whole protocol", ["protocol.py", "--work", str(work / "protocol"), "--bins", "4096", "--chunk-bins",
                                "2048", "--folds", "2", "2", "--max-iters", "2", "--refine-sample", "512", "2"]),
        ("The refinement's application", ["refine_apply.py", "--data", str(work / "roadmap-8192"), "--bins", "8192",
                                          "--chunk-bins", "2048", "--chunks", "1", "--repeats", "1",
                                          "--sample-bins", "512"]),
        ("Imputation on the executors", ["distributed_impute.py", "--data", str(work / "roadmap-8192"), "--bins",
                                         "8192", "--chunk-bins", "2048", "--pairs", "200", "--repeats", "1"]),
        ("Ingest on the executors", ["distributed_ingest.py", "--data", str(work / "protocol" / "roadmap-bigwigs-4096"),
                                     "--chunk-bins", "2048", "--repeats", "1"]),
        ("Scoring on the executors", ["distributed_scoring.py", "--run", str(work / "protocol" / "protocol-4096"),
                                      "--repeats", "1"]),
        ("A scoring task's memory", ["distributed_scoring.py", "--task-memory", "2000000", "4000000"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--group", choices=sorted(GROUPS), default=None, help="only this group's runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        for title, command in quick_runs(work, args.group):
            print(f"## {title} (quick)\n", flush=True)
            subprocess.run([sys.executable, str(BENCH / command[0]), *command[1:]], check=True, cwd=BENCH)
            print(flush=True)


if __name__ == "__main__":
    main()
