"""Writing a bigWig in parts and assembling it, against writing it in one pass, on a real track.

The same float32 values (a pilot track, -log10 p, 25 bp bins, read with pyBigWig from the shared data) are
written two ways, side by side in one process, repeats interleaved, medians printed:

- ``one pass``: :class:`predictd_core.impute.write_tracks.BigWigWriter`, fed chunk by chunk in genome order,
  from opening to close (what a single writer process does today);
- ``parts``: :func:`predictd_core.impute.write_tracks.write_track_part` once per chunk (what each Spark
  executor would do for its chunk: deflate the data and zoom blocks), then
  :func:`predictd_core.impute.write_tracks.assemble_track` (what is left for one process: copy the blocks,
  merge the records cut by chunk edges, write the trees and header).

The assembly's share of the parts' total is what stays serial; it copies bytes and should be a small fraction.
Both files are checked to hold the same values and header summary (pyBigWig).

    .venv/bin/python bench/bigwig_parts.py [--bins 563234] [--chunk-bins 16384] [--repeats 3] [--track E065.H3K4me3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyBigWig

from predictd_core.impute.write_tracks import BigWigWriter, assemble_track, write_track_part
from predictd_core.tracks.genome import GenomeBins

PILOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "roadmap-pilot"
CONTIG = "pilotA"
BIN = 25


def pilot_values(track: str, n_bins: int) -> np.ndarray:
    """The first ``n_bins`` 25 bp bins of a pilot track (fixed 25 bp steps: every 25th base is the bin)."""
    handle = pyBigWig.open(str(PILOT / f"{track}.bigWig"))
    try:
        n_bins = min(n_bins, handle.chroms(CONTIG) // BIN)
        return handle.values(CONTIG, 0, n_bins * BIN, numpy=True)[::BIN].astype(np.float32)
    finally:
        handle.close()


def write_one_pass(path: Path, bins: GenomeBins, values: np.ndarray, chunk: int) -> float:
    """Seconds to write the track with one BigWigWriter, chunk by chunk."""
    started = time.perf_counter()
    writer = BigWigWriter(path, bins)
    for lo in range(0, bins.n_bins, chunk):
        writer.add(lo, min(lo + chunk, bins.n_bins), values[lo:lo + chunk])
    writer.close()
    return time.perf_counter() - started


def write_in_parts(path: Path, bins: GenomeBins, values: np.ndarray, chunk: int) -> tuple[float, float, int]:
    """(seconds writing the parts, seconds assembling, bytes of the parts) for the track in chunk parts."""
    started = time.perf_counter()
    parts = []
    for lo in range(0, bins.n_bins, chunk):
        parts.append(path.with_name(f"{path.name}.part{lo:012d}"))
        write_track_part(parts[-1], bins, lo, min(lo + chunk, bins.n_bins), values[lo:lo + chunk])
    written = time.perf_counter()
    assemble_track(parts, path, bins)
    assembled = time.perf_counter()
    size = sum(part.stat().st_size for part in parts)
    for part in parts:
        part.unlink()
    return written - started, assembled - written, size


def check_same(one_pass: Path, assembled: Path, n_bins: int) -> None:
    """Both files hold the same values and header summary."""
    with pyBigWig.open(str(one_pass)) as expected, pyBigWig.open(str(assembled)) as got:
        same = np.array_equal(expected.values(CONTIG, 0, n_bins * BIN, numpy=True),
                              got.values(CONTIG, 0, n_bins * BIN, numpy=True))
        header, reference = got.header(), expected.header()
    if not same or any(header[key] != reference[key] for key in ("nLevels", "nBasesCovered", "minVal", "maxVal")):
        raise SystemExit(f"{assembled}: differs from {one_pass}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=563_234, help="bins of the track (the pilot has 563,234)")
    parser.add_argument("--chunk-bins", type=int, default=16_384, help="bins per part (one store chunk)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--track", default="E065.H3K4me3", help="pilot track, CELL.MARK")
    args = parser.parse_args()
    values = pilot_values(args.track, args.bins)
    bins = GenomeBins.build({CONTIG: len(values) * BIN}, BIN)
    chunk = args.chunk_bins
    one_pass, parts, assembly = [], [], []
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.repeats):
            for name in ("one.bigWig", "parts.bigWig"):  # a rename over a file makes ext4 flush it: not timed
                (Path(work) / name).unlink(missing_ok=True)
            one_pass.append(write_one_pass(Path(work) / "one.bigWig", bins, values, chunk))
            written, assembled, part_bytes = write_in_parts(Path(work) / "parts.bigWig", bins, values, chunk)
            parts.append(written)
            assembly.append(assembled)
        check_same(Path(work) / "one.bigWig", Path(work) / "parts.bigWig", len(values))
        sizes = {name: (Path(work) / name).stat().st_size for name in ("one.bigWig", "parts.bigWig")}
    per = 1e9 / len(values)
    one, written, assembled = (statistics.median(times) * per for times in (one_pass, parts, assembly))
    totals = statistics.median(w + a for w, a in zip(parts, assembly)) * per
    n_parts = -(-len(values) // chunk)
    print(f"{args.track}: {len(values):,} bins of {BIN} bp, {n_parts} parts of {chunk:,} bins, median of "
          f"{args.repeats} interleaved repeats, one process\n")
    print("| way | ns per value | vs one pass | file bytes per value |")
    print("|---|---|---|---|")
    print(f"| one pass (BigWigWriter) | {one:.1f} | 1.00x | {sizes['one.bigWig'] / len(values):.3f} |")
    print(f"| parts: writing them (on the executors) | {written:.1f} | {written / one:.2f}x | "
          f"{part_bytes / len(values):.3f} (parts) |")
    print(f"| parts: assembling (one process) | {assembled:.1f} | {assembled / one:.2f}x | "
          f"{sizes['parts.bigWig'] / len(values):.3f} |")
    print(f"| parts: all in | {totals:.1f} | {totals / one:.2f}x | |")
    print(f"\nassembly's share of writing in parts: {assembled / (written + assembled):.1%}; "
          f"{assembled * len(values) / 1e6 / n_parts:.2f} ms per part")


if __name__ == "__main__":
    main()
