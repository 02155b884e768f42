"""Read signal tracks (bigWig or bedGraph; local, s3:// or https://) as per-bin means.

bedGraph files are converted once to a bigWig in the cache folder, so every track is read
the same way: by region, through the bigWig index, so memory follows the region, not the genome.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pyBigWig

from predictd_core.errors import PredictdInputError
from predictd_core.io import is_remote, storage_options
from predictd_core.tracks.genome import GenomeBins

BEDGRAPH_SUFFIXES = (".bedgraph", ".bdg", ".bedgraph.gz", ".bdg.gz")


def fetch(path: str, cache_dir: Path) -> Path:
    """Return a local copy of ``path``: local files as they are, URLs downloaded once into ``cache_dir``."""
    if not is_remote(path):
        return Path(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    local = cache_dir / (hashlib.sha256(path.encode()).hexdigest()[:16] + "-" + Path(path).name)
    if local.exists():
        return local
    partial = local.with_name(local.name + ".part")
    try:
        if path.startswith(("http://", "https://")):
            with urllib.request.urlopen(path) as response, partial.open("wb") as out:  # noqa: S310 (user URL)
                shutil.copyfileobj(response, out)
        else:
            import fsspec  # object stores (s3fs, adlfs) are optional extras

            with fsspec.open(path, "rb", **(storage_options(path) or {})) as source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
    except Exception as error:  # the cause differs per scheme; the user needs the URL and the reason
        partial.unlink(missing_ok=True)
        raise PredictdInputError(path, "path", f"cannot download: {error}") from error
    partial.replace(local)
    return local


def _bedgraph_to_bigwig(source: Path, target: Path, chrom_sizes: dict[str, int]) -> None:
    """Convert a sorted bedGraph to bigWig in two streaming passes (contig order, then entries)."""
    opener = gzip.open if source.name.endswith(".gz") else open
    order: list[str] = []
    with opener(source, "rt") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            chrom = line.split(None, 1)[0]
            if chrom not in chrom_sizes:
                raise PredictdInputError(str(source), f"line {line_no}: chrom",
                                         f"contig {chrom!r} is not in chrom sizes")
            if not order or order[-1] != chrom:
                if chrom in order:
                    raise PredictdInputError(str(source), f"line {line_no}: chrom",
                                             "bedGraph is not sorted by contig (sort -k1,1 -k2,2n)")
                order.append(chrom)
    partial = target.with_name(target.name + ".part")
    writer = pyBigWig.open(str(partial), "w")
    try:
        writer.addHeader([(chrom, chrom_sizes[chrom]) for chrom in order], maxZooms=0)
        batch: tuple[list, list, list, list] = ([], [], [], [])
        last_end: dict[str, int] = {}
        with opener(source, "rt") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                fields = line.split()
                try:
                    chrom, start, end, value = fields[0], int(fields[1]), int(fields[2]), float(fields[3])
                except (IndexError, ValueError):
                    raise PredictdInputError(str(source), f"line {line_no}",
                                             f"expected 'chrom start end value', got {line.strip()!r}")
                if start < last_end.get(chrom, 0) or end <= start or end > chrom_sizes[chrom]:
                    raise PredictdInputError(str(source), f"line {line_no}: start/end",
                                             "intervals must be sorted, non-overlapping and inside the contig")
                last_end[chrom] = end
                for column, item in zip(batch, (chrom, start, end, value)):
                    column.append(item)
                if len(batch[0]) >= 100_000:
                    writer.addEntries(*batch)
                    batch = ([], [], [], [])
        if batch[0]:
            writer.addEntries(*batch)
    finally:
        writer.close()
    partial.replace(target)


@contextmanager
def _c_stderr_held() -> Iterator[None]:
    """Hold what C code (libBigWig) writes to fd 2 inside the block; pass it on only if the block succeeds.

    libBigWig prints its own lines (``[bwHdrRead] ...``, ``[pyBwOpen] bw is NULL!``) when a file is not a
    bigWig; the error raised for that file replaces them, so the user sees one line.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr is not a real file (captured): nothing to hold
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            raise
        else:
            os.dup2(saved, fd)
            held.seek(0)
            text = held.read()
            if text:
                os.write(fd, text)
        finally:
            os.close(saved)


# Bins of a track are binned at a time: binning holds ~6 bytes a base of temporaries, so a whole contig at once
# (chr1: 249 M bases) would hold ~1.5 GB beside the track itself.
READ_BINS = 2**20


class SignalTrack:
    """One opened signal file, read as per-bin means over regions.

    Parameters
    ----------
    path : str
        bigWig or bedGraph (optionally gzipped); local path or URL.
    chrom_sizes : dict
        The compendium's contigs. A contig of the file that is not here, or has another length, is an error.
    cache_dir : Path
        Where downloads and bedGraph conversions go.
    """

    def __init__(self, path: str, chrom_sizes: dict[str, int], cache_dir: Path) -> None:
        self.path = path
        local = fetch(path, cache_dir)
        if local.name.lower().endswith(BEDGRAPH_SUFFIXES):
            converted = cache_dir / (hashlib.sha256(str(local).encode()).hexdigest()[:16] + ".bigWig")
            cache_dir.mkdir(parents=True, exist_ok=True)
            if not converted.exists():
                _bedgraph_to_bigwig(local, converted, chrom_sizes)
            local = converted
        self.local_path = str(local)  # the file actually read: a download or conversion in ``cache_dir``
        try:
            with _c_stderr_held():
                self._file = pyBigWig.open(str(local))
                if self._file is None:
                    raise RuntimeError("pyBigWig.open returned None")
        except RuntimeError:
            self._file = None
        if self._file is None or not self._file.isBigWig():
            raise PredictdInputError(path, "path", "not a readable bigWig or bedGraph file")
        self._contigs = self._file.chroms()
        for contig, length in self._contigs.items():
            if contig not in chrom_sizes:
                raise PredictdInputError(path, f"contig {contig}", "contig is not in chrom sizes "
                                         f"(chrom sizes has {', '.join(list(chrom_sizes)[:5])}...); "
                                         "are both from the same assembly and naming (chr1 vs 1)?")
            if length != chrom_sizes[contig]:
                raise PredictdInputError(path, f"contig {contig}",
                                         f"length {length} differs from chrom sizes ({chrom_sizes[contig]})")

    def bin_means(self, contig: str, start: int, end: int, bin_size: int) -> np.ndarray:
        """Mean signal of each ``bin_size`` bin over ``[start, end)``; NaN where the file has no data."""
        n_bins = -(-(end - start) // bin_size)
        if contig not in self._contigs:
            return np.full(n_bins, np.nan, dtype=np.float32)
        # per base as the file stores them (float32, NaN: no data); summed in float64. No float64 copy of the
        # bases: at ~25 bytes of temporaries a base, binning was mostly memory traffic and page faults.
        values = np.asarray(self._file.values(contig, start, end, numpy=True))
        if values.shape[0] < n_bins * bin_size:  # a contig's last bin is narrower
            values = np.concatenate([values, np.full(n_bins * bin_size - values.shape[0], np.nan, values.dtype)])
        blocks = values.reshape(n_bins, bin_size)
        counts = bin_size - np.count_nonzero(np.isnan(blocks), axis=1)
        sums = np.nansum(blocks, axis=1, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / counts, np.nan).astype(np.float32)

    def bin_range(self, bins: GenomeBins, lo: int, hi: int) -> np.ndarray:
        """:meth:`bin_means` of ``bins`` ``[lo, hi)`` (float32, -log10 p scale as the file holds it; NaN: no
        data), read :data:`READ_BINS` bins at a time."""
        step = READ_BINS * bins.bin_size
        column = np.empty(hi - lo, dtype=np.float32)
        for contig, start, end, first, _ in bins.runs(lo, hi):
            for piece in range(start, end, step):
                means = self.bin_means(contig, piece, min(piece + step, end), bins.bin_size)
                offset = first - lo + (piece - start) // bins.bin_size
                column[offset:offset + means.size] = means
        return column

    def close(self) -> None:
        self._file.close()


def open_tracks(paths: list[str], chrom_sizes: dict[str, int], cache_dir: Path) -> list[SignalTrack]:
    """Open every track up front, so a bad file fails before any output is written."""
    opened: list[SignalTrack] = []
    try:
        for path in paths:
            opened.append(SignalTrack(path, chrom_sizes, cache_dir))
    except Exception:
        for track in opened:
            track.close()
        raise
    return opened


def remove_cache(cache_dir: Path) -> None:
    """Delete downloads and conversions once ingest is done."""
    if cache_dir.exists() and os.path.isdir(cache_dir):
        shutil.rmtree(cache_dir)


def read_track_bins(path: str | Path, bins: GenomeBins, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """A written track (local or at a URL) read back into ``bins`` ``[lo, hi)`` (default: all), arcsinh
    scale, as the store holds signal."""
    with tempfile.TemporaryDirectory(prefix="predictd-track-") as cache:  # a remote track is downloaded here
        track = SignalTrack(str(path), dict(bins.contigs), Path(cache))
        try:  # in place: a whole genome's column is ~0.5 GB
            column = track.bin_range(bins, lo, bins.n_bins if hi is None else hi)
            return np.arcsinh(column, out=column)
        finally:
            track.close()
