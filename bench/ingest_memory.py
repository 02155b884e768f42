"""Ingest memory against genome length: peak RSS of ingesting the same tracks over a 1x and a 4x genome.

Writes 4 bigWigs per genome length (fixed 25 bp steps, one value per bin), then ingests each set in a fresh
subprocess and reads its peak resident memory. Streaming by chunk means the ratio stays near 1.

    .venv/bin/python bench/ingest_memory.py [--mb 50] [--tracks 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyBigWig

INGEST = """
import sys, resource
from predictd_core.store.signal_store import ingest
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table
folder = sys.argv[1]
store = ingest(read_tracks_table(folder + "/tracks.tsv"), read_chrom_sizes(folder + "/chrom.sizes"), 25,
               folder + "/store.zarr")
print(store.bins.n_bins, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_compendium(folder: Path, megabases: int, n_tracks: int) -> None:
    length = megabases * 1_000_000
    folder.mkdir(parents=True)
    (folder / "chrom.sizes").write_text(f"chrB1\t{length}\n")
    rows = ["cell_type\tassay\tpath"]
    rng = np.random.default_rng(0)
    for track in range(n_tracks):
        handle = pyBigWig.open(str(folder / f"t{track}.bigWig"), "w")
        handle.addHeader([("chrB1", length)], maxZooms=0)
        for start in range(0, length, 10_000_000):  # write in pieces: this script's memory is not measured
            n = min(10_000_000, length - start) // 25
            handle.addEntries("chrB1", start, values=rng.gamma(0.5, 1.0, n), span=25, step=25)
        handle.close()
        rows.append(f"C{track % 2}\tM{track // 2}\tt{track}.bigWig")
    (folder / "tracks.tsv").write_text("\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50, help="genome length of the 1x case, in Mb")
    parser.add_argument("--tracks", type=int, default=4)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as work:
        for scale in (1, 4):
            write_compendium(Path(work) / f"x{scale}", args.mb * scale, args.tracks)
        for scale in (1, 4):
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", INGEST, str(Path(work) / f"x{scale}")], check=True,
                                 capture_output=True, text=True).stdout.split()
            results.append((scale, int(out[0]), int(out[1]) / 1024, time.perf_counter() - started))
    print(f"{args.tracks} tracks, chunks of 65,536 bins; peak RSS of a fresh ingest process.\n")
    print("| genome | bins | peak RSS (MB) | seconds |")
    print("|---|---|---|---|")
    for scale, bins, rss, seconds in results:
        print(f"| {args.mb * scale} Mb | {bins:,} | {rss:.0f} | {seconds:.1f} |")
    print(f"\npeak RSS 4x genome / 1x genome: {results[1][2] / results[0][2]:.2f}")


if __name__ == "__main__":
    main()
