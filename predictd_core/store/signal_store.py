"""The on-disk compendium: arcsinh signal in chunks of bins x experiments (zarr).

Layout of a store folder (local path or object-store URL)::

    signal      float32 (n_bins, n_experiments), chunks (chunk_bins, n_experiments);
                arcsinh of the bin's mean -log10 p; NaN where the track has no data at that bin
    bin_contig  int32 (n_bins,)  index into attrs["contigs"]  (for other readers; predictd uses the spans)
    bin_start   int64 (n_bins,)
    bin_end     int64 (n_bins,)
    attrs       format, bin_size, contigs, spans [[contig index, start, end]], experiments
                [{cell_type, assay, path}], chunk_bins, complete

Columns are the observed experiments only: an experiment that was never measured has no column, and
inside a column NaN (no data) is kept apart from 0 (an observed zero).
"""

from __future__ import annotations

import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from predictd_core.config import DEFAULT_CHUNK_BINS
from predictd_core.errors import PredictdInputError
from predictd_core.tracks.genome import GenomeBins
from predictd_core.tracks.readers import SignalTrack, open_tracks, remove_cache
from predictd_core.io import is_remote, storage_options
from predictd_core.tracks.table import Track

FORMAT = "predictd-signal-store/2"  # 2: genome bins held as spans


@dataclass(frozen=True)
class SignalStore:
    """A read handle on a store written by :func:`ingest`."""

    path: str
    experiments: tuple[Track, ...]
    bins: GenomeBins
    chunk_bins: int

    @classmethod
    def open(cls, path: str | Path) -> "SignalStore":
        """Open a complete store; a missing or half-written one is an error naming the path."""
        try:
            root = zarr.open_group(store=str(path), mode="r", storage_options=storage_options(path))
            attrs = dict(root.attrs)
        except Exception as error:
            raise PredictdInputError(str(path), "store", f"not a predictd signal store ({error})") from error
        if attrs.get("format") != FORMAT or not attrs.get("complete"):
            raise PredictdInputError(str(path), "store", "not a complete predictd signal store; run ingest again")
        bins = GenomeBins(tuple((name, int(length)) for name, length in attrs["contigs"]), int(attrs["bin_size"]),
                          tuple(tuple(int(v) for v in span) for span in attrs["spans"]))
        experiments = tuple(Track(e["cell_type"], e["assay"], e["path"]) for e in attrs["experiments"])
        return cls(str(path), experiments, bins, int(attrs["chunk_bins"]))

    @property
    def n_experiments(self) -> int:
        return len(self.experiments)

    @property
    def n_chunks(self) -> int:
        return -(-self.bins.n_bins // self.chunk_bins)

    def chunk_bounds(self, chunk: int) -> tuple[int, int]:
        """Bin range ``[lo, hi)`` of chunk number ``chunk``."""
        return chunk_bounds(chunk, self.chunk_bins, self.bins.n_bins)

    def read_chunk(self, chunk: int) -> np.ndarray:
        """Signal of one chunk, ndarray of shape (chunk bins, n_experiments), float32, NaN = no data."""
        return read_signal_rows(self.path, *self.chunk_bounds(chunk))

    def spread_chunks(self, max_bins: int) -> tuple[int, ...]:
        """Whole chunks spread evenly over the genome, as many as hold at most ``max_bins`` bins (at least
        one): every chunk when the store is no larger. In genome order."""
        if self.bins.n_bins <= max_bins:
            return tuple(range(self.n_chunks))
        return tuple(int(k) for k in evenly_spread(self.n_chunks, max(1, max_bins // self.chunk_bins)))

    def n_bins_of(self, chunks) -> int:
        """Bins in ``chunks``."""
        return sum(hi - lo for lo, hi in map(self.chunk_bounds, chunks))

    def read_columns(self, experiments) -> np.ndarray:
        """Some experiments over every bin, in one pass over the chunks: shape (n_bins, len(experiments))."""
        columns = np.asarray(experiments, dtype=np.int64)
        return np.concatenate([self.read_chunk(k)[:, columns] for k in range(self.n_chunks)])


def evenly_spread(n_chunks: int, count: int) -> np.ndarray:
    """``count`` chunk numbers of ``0 .. n_chunks - 1`` (fewer when ``count`` > ``n_chunks``) spread evenly,
    the first and the last among them: a sample of the genome's stretches that no one region dominates."""
    return np.unique(np.linspace(0, n_chunks - 1, min(count, n_chunks)).round().astype(int))


def chunk_bounds(chunk: int, chunk_bins: int, n_bins: int) -> tuple[int, int]:
    """Bin range ``[lo, hi)`` of chunk number ``chunk`` of a store of ``n_bins`` in chunks of ``chunk_bins``."""
    lo = chunk * chunk_bins
    return lo, min(lo + chunk_bins, n_bins)


def read_signal_rows(path: str, lo: int, hi: int) -> np.ndarray:
    """Signal rows ``[lo, hi)`` of the store at ``path`` (a light call Spark tasks can make)."""
    return zarr.open_array(store=f"{path.rstrip('/')}/signal" if is_remote(path) else str(Path(path) / "signal"),
                           mode="r", storage_options=storage_options(path))[lo:hi]


def ingest(tracks: list[Track], chrom_sizes: dict[str, int], bin_size: int, store_path: str | Path,
           regions: list[tuple[str, int, int]] | None = None, chunk_bins: int = DEFAULT_CHUNK_BINS,
           progress: Callable[[int, int], None] | None = None, processes: int = 1) -> SignalStore:
    """Bin every track into ``bin_size`` means, arcsinh them and write a chunked store.

    Streams one chunk of bins at a time across all tracks, so memory is ``chunk_bins x n_tracks``
    whatever the genome length. A local store is written under a temporary name and renamed when
    complete; on an object store the ``complete`` attribute is written last.

    Parameters
    ----------
    tracks : list of Track
        The experiments, in column order.
    chrom_sizes : dict
        Contig lengths; every contig of every track must be here.
    bin_size : int
        Bin width in bases (25 for PREDICTD).
    store_path : str or Path
        Where the store goes (replaced if it exists).
    regions : list of (contig, start, end), optional
        Model only these regions (e.g. the ENCODE pilot regions); default whole contigs.
    chunk_bins : int
        Bins per chunk: the unit of I/O and of Spark partitions.
    progress : callable(done, total), optional
        Called after each chunk.
    processes : int
        Chunks binned side by side by this many processes (reading a bigWig costs ~300 ns a bin and holds
        the GIL); each chunk is its own zarr object, so they are written independently.
    """
    if not tracks:
        raise PredictdInputError("tracks", "rows", "the compendium is empty: no tracks to ingest")
    bins = GenomeBins.build(chrom_sizes, bin_size, regions)
    with writing_store(store_path) as work:
        remote = is_remote(work)
        cache_dir = Path(f"/tmp/predictd-cache-{uuid.uuid4().hex[:8]}") if remote else Path(work + ".cache")
        try:
            opened = open_tracks([t.path for t in tracks], chrom_sizes, cache_dir)  # every file checked first
            try:
                if processes <= 1:
                    write_store(work, tracks, bins, lambda lo, hi: _read_block(opened, tracks, bins, lo, hi),
                                chunk_bins, progress)
            finally:
                for track in opened:
                    track.close()
            if processes > 1:
                _write_store_in_processes(work, tracks, [t.local_path for t in opened], chrom_sizes, bins,
                                          chunk_bins, processes, progress)
        finally:
            remove_cache(cache_dir)
    return SignalStore.open(store_path)


@contextmanager
def writing_store(store_path: str | Path) -> Iterator[str]:
    """Where to write the store that becomes ``store_path``: locally a hidden sibling, renamed over
    ``store_path`` (replacing one there) only when the block succeeds and deleted when it fails; on an
    object store ``store_path`` itself, which :func:`finish_store`'s ``complete`` attribute, written last,
    marks whole."""
    target = str(store_path)
    if is_remote(target):
        yield target
        return
    work = str(Path(target).with_name(f".{Path(target).name}.{uuid.uuid4().hex[:8]}.partial"))
    try:
        yield work
        if Path(target).exists():
            shutil.rmtree(target)
        Path(work).rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _read_block(opened, tracks: list[Track], bins: GenomeBins, lo: int, hi: int) -> np.ndarray:
    """Bin means of bins ``[lo, hi)`` for every opened track: (hi - lo, n_tracks), -log10 p scale."""
    block = np.empty((hi - lo, len(opened)), dtype=np.float32)
    for column, (reader, track) in enumerate(zip(opened, tracks)):
        block[:, column] = track_bins(reader, track, bins, lo, hi)
    return block


def track_bins(reader: SignalTrack, track: Track, bins: GenomeBins, lo: int, hi: int) -> np.ndarray:
    """The bin means of bins ``[lo, hi)`` of ``track`` opened as ``reader`` (float32, -log10 p; NaN: no data);
    a negative value is an error naming the track's file."""
    column = reader.bin_range(bins, lo, hi)
    if (column < 0).any():
        raise PredictdInputError(track.path, "values", "negative signal: expected -log10 p-values (>= 0)")
    return column


_worker_tracks: tuple[list, list[Track], GenomeBins] | None = None  # a parallel-ingest process's open files


def _open_in_worker(local_paths: list[str], chrom_sizes: dict[str, int], tracks: list[Track], bins: GenomeBins
                    ) -> None:
    global _worker_tracks
    _worker_tracks = (open_tracks(local_paths, chrom_sizes, Path(".")), tracks, bins)


def _ingest_chunk_in_worker(path: str, chunk_bins: int, chunk: int) -> int:
    opened, tracks, bins = _worker_tracks
    lo, hi = chunk_bounds(chunk, chunk_bins, bins.n_bins)
    group = zarr.open_group(store=path, mode="r+", storage_options=storage_options(path))
    write_chunk(group, bins, lo, hi, _read_block(opened, tracks, bins, lo, hi))
    return chunk


def _write_store_in_processes(path: str, tracks: list[Track], local_paths: list[str], chrom_sizes: dict[str, int],
                              bins: GenomeBins, chunk_bins: int, processes: int,
                              progress: Callable[[int, int], None] | None) -> None:
    """:func:`write_store` from the (already checked, local) track files, chunks shared among ``processes``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    root = create_store(path, tracks, bins, chunk_bins)
    n_chunks = -(-bins.n_bins // chunk_bins)
    # spawn, not fork: the caller may be a Spark driver with a JVM gateway and BLAS threads running
    with ProcessPoolExecutor(min(processes, n_chunks), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_open_in_worker, initargs=(local_paths, chrom_sizes, tracks, bins)) as pool:
        futures = [pool.submit(_ingest_chunk_in_worker, path, chunk_bins, chunk) for chunk in range(n_chunks)]
        try:
            for done, future in enumerate(as_completed(futures), 1):
                future.result()
                if progress is not None:
                    progress(done, n_chunks)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    finish_store(root, tracks, bins, chunk_bins)


def write_store(path: str, tracks: list[Track], bins: GenomeBins, read_block: Callable[[int, int], np.ndarray],
                chunk_bins: int = DEFAULT_CHUNK_BINS, progress: Callable[[int, int], None] | None = None) -> None:
    """Write a store at ``path`` chunk by chunk from ``read_block(lo, hi)`` (-log10 p values, NaN = no data).

    :func:`ingest` feeds it from signal files; benchmarks and simulations can feed it arrays.
    The ``complete`` attribute is written last.
    """
    root = create_store(path, tracks, bins, chunk_bins)
    n_chunks = -(-bins.n_bins // chunk_bins)
    for chunk in range(n_chunks):
        lo, hi = chunk_bounds(chunk, chunk_bins, bins.n_bins)
        write_chunk(root, bins, lo, hi, read_block(lo, hi))
        if progress is not None:
            progress(chunk + 1, n_chunks)
    finish_store(root, tracks, bins, chunk_bins)


def create_store(path: str, tracks: list[Track], bins: GenomeBins, chunk_bins: int) -> zarr.Group:
    """The empty arrays of a store (no attributes yet: it is not complete)."""
    root = zarr.open_group(store=path, mode="w", storage_options=storage_options(path))
    compressor = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
    for name, dtype in (("bin_contig", "int32"), ("bin_start", "int64"), ("bin_end", "int64")):
        root.create_array(name, shape=(bins.n_bins,), chunks=(chunk_bins,), dtype=dtype, compressors=compressor)
    root.create_array("signal", shape=(bins.n_bins, len(tracks)), chunks=(chunk_bins, len(tracks)),
                      dtype="float32", compressors=compressor, fill_value=np.nan)
    return root


def write_chunk(root: zarr.Group, bins: GenomeBins, lo: int, hi: int, block: np.ndarray) -> None:
    """Bins ``[lo, hi)`` (one whole chunk): arcsinh of ``block`` and the bins' coordinates."""
    root["signal"][lo:hi] = np.arcsinh(block)
    for name, values in zip(("bin_contig", "bin_start", "bin_end"), bins.coordinates(lo, hi)):
        root[name][lo:hi] = values


def finish_store(root: zarr.Group, tracks: list[Track], bins: GenomeBins, chunk_bins: int) -> None:
    """The attributes, ``complete`` last."""
    root.attrs.update({
        "format": FORMAT,
        "bin_size": bins.bin_size,
        "contigs": [list(c) for c in bins.contigs],
        "spans": [list(span) for span in bins.spans],
        "experiments": [{"cell_type": t.cell_type, "assay": t.assay, "path": t.path} for t in tracks],
        "chunk_bins": chunk_bins,
    })
    root.attrs["complete"] = True
