"""Streaming simulation at Roadmap scale: time, peak RSS and disk of `predictd simulate` against genome length.

Runs `predictd simulate OUT --layout ../shared/data/roadmap-layout --format store` (127 cells x 24 assays,
the 1,014 observed experiments) for each bin count in a fresh process, reads its peak resident memory,
the seconds and the bytes written, deletes the output, and extrapolates time and disk linearly in bins.
Streaming by generation block means peak RSS stays flat as the genome grows.

    .venv/bin/python bench/simulate_scale.py [--bins 100000 300000] [--chunk-bins 65536] [--format store]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobs import HG19_BINS, LAYOUT

SIMULATE = """
import resource, sys
from predictd_core.cli.main import main
code = main(sys.argv[1:])
print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run(out: Path, bins: int, layout: Path, chunk_bins: int, signal_format: str) -> tuple[float, float, int]:
    """Seconds, peak RSS (MB) and bytes written of one `predictd simulate` in a fresh process."""
    command = [sys.executable, "-c", SIMULATE, "simulate", str(out), "--layout", str(layout), "--bins", str(bins),
               "--format", signal_format, "--chunk-bins", str(chunk_bins)]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    code, rss = done.stdout.split()[-2:]
    if code != "0":
        raise SystemExit(f"predictd simulate failed: {done.stderr}")
    return seconds, int(rss) / 1024, sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--chunk-bins", type=int, default=65_536)
    parser.add_argument("--format", dest="signal_format", choices=("store", "bigwig"), default="store")
    parser.add_argument("--layout", type=Path, default=LAYOUT)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as work:
        for bins in args.bins:
            out = Path(work) / f"n{bins}"
            results.append((bins, *run(out, bins, args.layout, args.chunk_bins, args.signal_format)))
            shutil.rmtree(out)  # one output on disk at a time
    print(f"{args.layout.name}, --format {args.signal_format}, --chunk-bins {args.chunk_bins:,}; "
          "a fresh process per run.\n")
    print("| bins | seconds | peak RSS (MB) | written (MB) |")
    print("|---|---|---|---|")
    for bins, seconds, rss, size in results:
        print(f"| {bins:,} | {seconds:.1f} | {rss:.0f} | {size / 1e6:.0f} |")
    (n0, t0, r0, _), (n1, t1, r1, s1) = results[0], results[-1]
    if n1 > n0:
        per_bin = (t1 - t0) / (n1 - n0)
        print(f"\npeak RSS {n1:,} / {n0:,} bins: {r1 / r0:.2f}; "
              f"{per_bin * 1e6:.0f} s per million bins, {s1 / n1 / 1e3:.2f} KB written per bin")
        for target in (1_126_469, 10_000_000, HG19_BINS):
            print(f"extrapolated {target:,} bins: {(t0 + per_bin * (target - n0)) / 60:.1f} min, "
                  f"{s1 / n1 * target / 1e9:.1f} GB")


if __name__ == "__main__":
    main()
