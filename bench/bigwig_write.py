"""Writing a bigWig of 25 bp bins: pyBigWig's writer against predictd's own, and deflate alone as the floor.

Both writers get the same float32 values in chunks of ``--chunk-bins`` bins, as the imputation hands
them over, and are timed all in: from opening the file to its close (index, zoom levels, header), in
this process, one core. The writers are:

- ``pyBigWig``: libBigWig through pyBigWig, fixed-step entries, ``maxZooms=10`` (predictd's writer
  before issue 19); its time is split into the ``addEntries`` calls and ``close`` (which reads the
  data back to build the zoom levels);
- ``predictd``: :class:`predictd_core.tracks.bigwig.FixedStepBigWigWriter` with its default deflate
  (ISA-L, Intel's zlib-compatible deflate, level 1) and with zlib at levels 1 and 6, split into the ``add``
  calls and ``close``.

The floor is deflate alone on the same values' bytes in the writer's data blocks (8,186 values, 32 KB): zlib
at levels 1 and 6 and ISA-L at level 1 (a bigWig writer must compress its data at least once); and zlib 1 on
blocks of 1,024 values (4 KB, kent's size), which costs more per value (a fixed cost per call).

Signals: the real pilot track (E065 H3K4me3, -log10 p as distributed: values with few significant
digits), and a simulated track with noise as predictd's simulator writes it (full float32 mantissas,
many zeros). Repeats are interleaved (every writer once per round); medians are printed.

    .venv/bin/python bench/bigwig_write.py [--bins 563234] [--repeats 5] [--chunk-bins 16384] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import pyBigWig
from isal import isal_zlib

from predictd_core.simulate.truth import plant
from predictd_core.tracks.bigwig import DEFAULT_COMPRESS, VALUES_PER_BLOCK, FixedStepBigWigWriter

PILOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "roadmap-pilot"
PILOT_TRACK = PILOT / "E065.H3K4me3.bigWig"
CONTIG = "pilotA"
BIN = 25


def pilot_values(n_bins: int) -> np.ndarray:
    """The first ``n_bins`` 25 bp bins of the pilot track (fixed 25 bp steps: every 25th base is the bin)."""
    handle = pyBigWig.open(str(PILOT_TRACK))
    try:
        return handle.values(CONTIG, 0, n_bins * BIN, numpy=True)[::BIN].astype(np.float32)
    finally:
        handle.close()


def simulated_values(n_bins: int) -> np.ndarray:
    """One observed track of a small simulated compendium, -log10 p, as simulate writes it."""
    truth, _ = plant(n_cells=2, n_assays=2, n_bins=n_bins, block_bins=n_bins)
    return np.sinh(truth.observed_block(0)[0])


def write_pybigwig(path: Path, values: np.ndarray, chunk: int) -> tuple[float, float]:
    """(seconds in addEntries, seconds in close) for pyBigWig, as predictd called it (float64 values)."""
    started = time.perf_counter()
    handle = pyBigWig.open(str(path), "w")
    handle.addHeader([(CONTIG, len(values) * BIN)], maxZooms=10)
    for lo in range(0, len(values), chunk):
        handle.addEntries(CONTIG, lo * BIN, values=np.asarray(values[lo:lo + chunk], dtype=np.float64),
                          span=BIN, step=BIN)
    added = time.perf_counter()
    handle.close()
    return added - started, time.perf_counter() - added


def write_predictd(path: Path, values: np.ndarray, chunk: int, compress=DEFAULT_COMPRESS) -> tuple[float, float]:
    """(seconds in add, seconds in close) for predictd's writer deflating its blocks with ``compress``."""
    started = time.perf_counter()
    writer = FixedStepBigWigWriter(path, [(CONTIG, len(values) * BIN)], BIN, compress=compress)
    for lo in range(0, len(values), chunk):
        writer.add(CONTIG, lo * BIN, values[lo:lo + chunk])
    added = time.perf_counter()
    writer.close()
    return added - started, time.perf_counter() - added


def deflate_alone(values: np.ndarray, level: int, block_values: int = VALUES_PER_BLOCK,
                  compress=zlib.compress) -> tuple[float, int]:
    """(seconds, compressed bytes) of ``compress`` on the values' bytes in pieces of ``block_values`` values."""
    data = values.tobytes()
    size = 4 * block_values
    started = time.perf_counter()
    compressed = sum(len(compress(data[first:first + size], level)) for first in range(0, len(data), size))
    return time.perf_counter() - started, compressed


def floors() -> dict[str, dict]:
    """The compression-only rows: name -> keyword arguments of :func:`deflate_alone`."""
    rows = {"zlib 1 alone (floor)": {"level": 1}, "zlib 6 alone": {"level": 6},
            "zlib 1 alone, 1,024-value blocks": {"level": 1, "block_values": 1024},
            "ISA-L 1 alone": {"level": 1, "compress": isal_zlib.compress}}
    return rows


def check_same(path: Path, values: np.ndarray) -> None:
    """The file written holds exactly ``values`` (read back by pyBigWig)."""
    handle = pyBigWig.open(str(path))
    try:
        back = handle.values(CONTIG, 0, len(values) * BIN, numpy=True)[::BIN].astype(np.float32)
    finally:
        handle.close()
    if not np.array_equal(back, values):
        raise SystemExit(f"{path}: values read back differ from those written")


def measure(values: np.ndarray, chunk: int, repeats: int, work: Path) -> list[tuple[str, float, float, float, float]]:
    """Rows (writer, median s, median s adding, median s closing, bytes) over interleaved repeats."""
    runs = {
        "pyBigWig (libBigWig)": lambda path: write_pybigwig(path, values, chunk),
        "predictd (ISA-L 1, the default)": lambda path: write_predictd(path, values, chunk),
        "predictd, zlib 1": lambda path: write_predictd(path, values, chunk, partial(zlib.compress, level=1)),
        "predictd, zlib 6": lambda path: write_predictd(path, values, chunk, partial(zlib.compress, level=6)),
    }
    for name, arguments in floors().items():
        runs[name] = lambda path, arguments=arguments: (deflate_alone(values, **arguments)[0], 0.0)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    sizes: dict[str, int] = {}
    for _ in range(repeats):
        for k, (name, run) in enumerate(runs.items()):
            path = work / f"w{k}.bigWig"
            times[name].append(run(path))
            if path.exists():
                sizes[name] = path.stat().st_size
                path.unlink()
    for name, arguments in floors().items():
        sizes[name] = deflate_alone(values, **arguments)[1]
    write_predictd(work / "check.bigWig", values, chunk)
    check_same(work / "check.bigWig", values)
    rows = []
    for name, measured in times.items():
        rows.append((name, statistics.median(a + c for a, c in measured), statistics.median(a for a, _ in measured),
                     statistics.median(c for _, c in measured), sizes[name]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=563_234, help="bins per track (the pilot track has 563,234)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-bins", type=int, default=16_384, help="bins handed over per call")
    parser.add_argument("--quick", action="store_true", help="65,536 bins, 3 repeats (make bench-quick)")
    args = parser.parse_args()
    if args.quick:
        args.bins, args.repeats = min(args.bins, 65_536), 3
    signals = {"pilot E065 H3K4me3": pilot_values(args.bins), "simulated, noisy": simulated_values(args.bins)}
    print(f"{args.bins:,} bins of {BIN} bp per track, chunks of {args.chunk_bins:,} bins, median of "
          f"{args.repeats} interleaved repeats, one process\n")
    print("| signal | writer | ns per value | adding | closing | bytes per value | vs pyBigWig |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for signal, values in signals.items():
            rows = measure(values, args.chunk_bins, args.repeats, Path(work))
            reference = rows[0][1]
            for name, total, adding, closing, size in rows:
                per = 1e9 / len(values)
                print(f"| {signal} | {name} | {total * per:.0f} | {adding * per:.0f} | {closing * per:.0f} | "
                      f"{size / len(values):.2f} | {reference / total:.2f}x |")
    print("\nns per value: all in (values handed over, file closed with its zoom levels); 'vs pyBigWig': "
          "pyBigWig's time over the row's (higher is faster).")


if __name__ == "__main__":
    main()
