"""Write imputed signal as bigWig tracks a genome browser opens (-log10 p scale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from predictd_core.tracks.bigwig import BigWigPart, FixedStepBigWigWriter, FixedStepRuns, assemble
from predictd_core.tracks.genome import GenomeBins


def to_pvalue_scale(arcsinh_signal: np.ndarray) -> np.ndarray:
    """Back to -log10 p, float32 (what a bigWig holds): negatives clipped to 0 first (as PREDICTD's
    ``enforce_nonegs``), then sinh, in place in one float32 array (5x faster than float64 sinh)."""
    values = np.empty(np.shape(arcsinh_signal), dtype=np.float32)
    np.maximum(arcsinh_signal, 0.0, out=values, casting="same_kind")
    return np.sinh(values, out=values)


def as_written(values: np.ndarray, from_arcsinh: bool) -> np.ndarray:
    """The float32 -log10 p values a bigWig holds: ``values`` converted from arcsinh (:func:`to_pvalue_scale`)
    when ``from_arcsinh``, else as given."""
    return to_pvalue_scale(values) if from_arcsinh else np.asarray(values, dtype=np.float32)


def add_bins(target: FixedStepRuns, bins: GenomeBins, lo: int, hi: int, values: np.ndarray) -> None:
    """Append bins ``[lo, hi)`` of ``bins`` with ``values`` (float32, shape (hi - lo,)) to a bigWig writer or
    part: each run of full-width adjacent bins as one piece (:meth:`~FixedStepRuns.add`), a region's shorter
    last bin as an interval of its own width (:meth:`~FixedStepRuns.add_interval`), so the file has exactly
    the bins' layout."""
    size = bins.bin_size
    for contig, start, end, first, last in bins.runs(lo, hi):
        n_full = (end - start) // size
        if n_full:
            target.add(contig, start, values[first - lo:first - lo + n_full])
        if first + n_full < last:
            target.add_interval(contig, start + n_full * size, end, values[last - 1 - lo])


def run_origin(bins: GenomeBins, lo: int) -> int | None:
    """Where (base, on its contig) the run of adjacent bins holding bin ``lo`` started, if before bin ``lo``;
    None when bin ``lo`` starts a run (or is past the last bin).

    A bigWig writer continues a run while bins are full-width and adjacent: a span (whole contig or region)
    starts a run unless the span before it is on the same contig, ends where it starts and has no shorter
    last bin (:func:`add_bins` then continues the run across them). Zoom records are aligned to run starts, so
    a part beginning at ``lo`` needs this (:class:`~predictd_core.tracks.bigwig.BigWigPart`).
    """
    size = bins.bin_size
    first, origin, previous = 0, 0, None
    for contig, start, end in bins.spans:
        if not (previous is not None and previous[0] == contig and previous[2] == start
                and (previous[2] - previous[1]) % size == 0):
            origin = start
        count = -(-(end - start) // size)
        if lo < first + count:
            position = start + (lo - first) * size
            return origin if origin < position else None
        first, previous = first + count, (contig, start, end)
    return None


def write_track_part(path: Path, bins: GenomeBins, lo: int, hi: int, values: np.ndarray,
                     from_arcsinh: bool = False) -> None:
    """Write bins ``[lo, hi)`` of one track (``values``, shape (hi - lo,): -log10 p, or arcsinh with
    ``from_arcsinh``; finite) as a bigWig part (:class:`~predictd_core.tracks.bigwig.BigWigPart`):
    the expensive share of writing the track (deflate, zoom records), done where the chunk is computed.
    :func:`assemble_track` puts the parts together into the file :class:`BigWigWriter` would write."""
    with BigWigPart(path, list(bins.contigs), bins.bin_size, run_origin=run_origin(bins, lo)) as part:
        add_bins(part, bins, lo, hi, as_written(values, from_arcsinh))


def assemble_track(part_paths: list[Path], path: Path, bins: GenomeBins) -> None:
    """Write the bigWig at ``path`` from the parts :func:`write_track_part` wrote for consecutive bin ranges,
    in genome order (:func:`~predictd_core.tracks.bigwig.assemble`: blocks copied as bytes)."""
    assemble(part_paths, path, list(bins.contigs), bins.bin_size)


class BigWigWriter:
    """Append bins chunk by chunk, in genome order, to one bigWig with the compendium's contigs.

    Runs of full-width adjacent bins are written as fixed-step blocks; a shorter last bin of a
    region is written as an interval of its own width, so the file has exactly the input's bin
    layout (:class:`~predictd_core.tracks.bigwig.FixedStepBigWigWriter`: numpy and ISA-L's
    deflate, ~10x faster than pyBigWig's writer). With ``from_arcsinh``, values are given on the arcsinh
    scale and written as -log10 p (:func:`to_pvalue_scale`): the conversion then runs where the
    file is written, in parallel when the writers are (:class:`ParallelTrackWriter`). The file
    appears at ``path`` when :meth:`close` has completed it.
    """

    def __init__(self, path: Path, bins: GenomeBins, from_arcsinh: bool = False) -> None:
        self.path, self.bins, self.from_arcsinh = Path(path), bins, from_arcsinh
        self._file = FixedStepBigWigWriter(self.path, list(bins.contigs), bins.bin_size)

    def add(self, lo: int, hi: int, values: np.ndarray) -> None:
        """Write bins ``[lo, hi)`` with ``values`` (shape (hi - lo,), -log10 p scale, or arcsinh with
        ``from_arcsinh``; finite)."""
        add_bins(self._file, self.bins, lo, hi, as_written(values, self.from_arcsinh))

    def close(self) -> None:
        """Complete the file (index, zoom levels, header) and put it at ``path``."""
        self._file.close()


# Rows of bins copied at a time when a (bins, tracks) chunk is laid into a (tracks, bins) slot: a cache-sized
# block transposes 6x faster than one strided copy of a whole Roadmap chunk (0.3 s against 1.9 s for 800 MB).
TRANSPOSE_ROWS = 512


def copy_columns(target: np.ndarray, values: np.ndarray) -> None:
    """``target[:, :n] = values.T`` for ``values`` of shape (n, tracks), copied in blocks of rows."""
    if values.T.flags.c_contiguous:  # already laid out track by track: one plain copy
        target[:, :values.shape[0]] = values.T
        return
    for first in range(0, values.shape[0], TRANSPOSE_ROWS):
        block = values[first:first + TRANSPOSE_ROWS]
        target[:, first:first + block.shape[0]] = block.T


class SharedSlots:
    """``count`` float32 arrays of one ``shape`` (tracks x chunk bins) in shared memory, which other processes
    attach by name (:meth:`attach`); the creator frees them (:meth:`close`)."""

    def __init__(self, count: int, shape: tuple[int, int]) -> None:
        from multiprocessing import shared_memory

        self.shape = shape
        size = int(np.prod(shape)) * 4
        self._memories = [shared_memory.SharedMemory(create=True, size=size) for _ in range(count)]
        self.arrays = [np.ndarray(shape, dtype=np.float32, buffer=memory.buf) for memory in self._memories]

    @property
    def names(self) -> list[str]:
        """The shared-memory names to :meth:`attach` in another process."""
        return [memory.name for memory in self._memories]

    @staticmethod
    def attach(names: list[str], shape: tuple[int, int]) -> tuple[list, list[np.ndarray]]:
        """The shared memories named ``names`` and a float32 array on each (keep the memories while the arrays
        are used; delete the arrays before closing the memories)."""
        from multiprocessing import shared_memory

        memories = [shared_memory.SharedMemory(name=name) for name in names]
        return memories, [np.ndarray(shape, dtype=np.float32, buffer=memory.buf) for memory in memories]

    def close(self) -> None:
        """Drop the arrays and free the memory."""
        self.arrays = []
        for memory in self._memories:
            memory.close()
            memory.unlink()


def _write_owned_tracks(paths: list[str], from_arcsinh: list[bool], bins: GenomeBins, slots: list[str],
                        shape: tuple[int, int], commands, acknowledgements, worker: int) -> None:
    """A writer process: keep ``paths`` open and append their rows of each announced slot.

    Commands are ``(slot, row_of_first_track, lo, hi)`` for every chunk, then ``None`` to close. Each
    chunk is acknowledged with ``(worker, slot)``; a failure with ``(worker, "error", message)``.
    """
    memories, buffers = SharedSlots.attach(slots, shape)
    try:
        writers = [BigWigWriter(Path(path), bins, arcsinh) for path, arcsinh in zip(paths, from_arcsinh)]
        while (command := commands.get()) is not None:
            slot, first_row, lo, hi = command
            for offset, writer in enumerate(writers):
                writer.add(lo, hi, buffers[slot][first_row + offset, :hi - lo])
            acknowledgements.put((worker, slot))
        for writer in writers:
            writer.close()
        acknowledgements.put((worker, "closed"))
    except BaseException as error:  # reported to the parent, which raises it
        acknowledgements.put((worker, "error", f"{type(error).__name__}: {error}"))
    finally:
        del buffers  # views into the shared memory must go before it is closed
        for memory in memories:
            memory.close()


class ParallelTrackWriter:
    """Write many bigWigs at once: ``processes`` writer processes, each owning a contiguous share of the tracks.

    bigWig writing (deflate and the zoom levels, ~30 ns a value) is still the largest share of imputing the
    Roadmap grid for one model, so tracks are written side by side. Chunks reach the processes through
    shared-memory slots of tracks x ``chunk_bins`` float32, and every process appends its own tracks' rows.
    :meth:`add` copies a chunk into a free slot (two slots: the caller computes the next chunk while this one
    is written); processes that compute chunks themselves fill slots directly instead (:meth:`reserve`,
    :attr:`slots`, :meth:`write`; ``computing`` of them add a slot each, see
    :mod:`predictd_core.impute.parallel`). Memory: (2 + ``computing``) x tracks x ``chunk_bins`` float32.
    ``from_arcsinh[t]``: track t's values come on the arcsinh scale (:class:`BigWigWriter`), so the
    conversion to -log10 p is shared among the processes too. With ``processes <= 1`` tracks are written in
    this process (no slots). Use as a context manager: leaving it normally closes every file (errors of a
    writer process are raised here); leaving it on an exception stops the processes and leaves no file under
    its name (at most ``<path>.partial`` ones, :class:`~predictd_core.tracks.bigwig.FixedStepBigWigWriter`).
    """

    def __init__(self, paths: list[Path], bins: GenomeBins, chunk_bins: int, processes: int,
                 from_arcsinh: list[bool] | None = None, computing: int = 0) -> None:
        self.paths, self.bins = [Path(path) for path in paths], bins
        self.from_arcsinh = list(from_arcsinh) if from_arcsinh is not None else [False] * len(self.paths)
        self.in_processes = processes > 1 and bool(self.paths)
        self.processes = min(processes, len(self.paths)) if self.in_processes else 1
        self._shape = (len(self.paths), chunk_bins)
        self._count = 2 + computing
        self._writers: list[BigWigWriter] = []
        self._workers: list = []
        self.slots: SharedSlots | None = None
        self._pending = [0] * self._count  # writer processes still busy with each slot
        self._reserved: set[int] = set()  # slots handed out by reserve(), not yet written
        self._closed = 0  # writer processes that closed their files

    def __enter__(self) -> "ParallelTrackWriter":
        if not self.in_processes:
            self._writers = [BigWigWriter(path, self.bins, arcsinh)
                             for path, arcsinh in zip(self.paths, self.from_arcsinh)]
            return self
        import multiprocessing

        # spawn, not fork: the caller may be a Spark driver with a JVM gateway and BLAS threads running
        context = multiprocessing.get_context("spawn")
        self.slots = SharedSlots(self._count, self._shape)
        self._acknowledgements = context.Queue()
        self._shares = np.array_split(np.arange(len(self.paths)), self.processes)
        for worker, rows in enumerate(self._shares):
            commands = context.Queue()
            process = context.Process(
                target=_write_owned_tracks, daemon=True,
                args=([str(self.paths[row]) for row in rows], [self.from_arcsinh[row] for row in rows], self.bins,
                      self.slots.names, self._shape, commands, self._acknowledgements, worker))
            process.start()
            self._workers.append((process, commands))
        return self

    def add(self, lo: int, hi: int, values: np.ndarray) -> None:
        """Append bins ``[lo, hi)``: ``values`` of shape (hi - lo, tracks), column t to track t (-log10 p, or
        arcsinh for the tracks ``from_arcsinh`` names)."""
        if not self._workers:
            for column, writer in enumerate(self._writers):
                writer.add(lo, hi, values[:, column])
            return
        slot = self.reserve()
        copy_columns(self.slots.arrays[slot], values)
        self.write(slot, lo, hi)

    def reserve(self) -> int:
        """A slot no writer process is reading and nobody else holds (waits for one): fill its first
        ``hi - lo`` columns, row t for track t, then :meth:`write` it."""
        self._wait(lambda: bool(self._free_slots()))
        slot = self._free_slots()[0]
        self._reserved.add(slot)
        return slot

    def _free_slots(self) -> list[int]:
        return [k for k in range(self._count) if self._pending[k] == 0 and k not in self._reserved]

    def write(self, slot: int, lo: int, hi: int) -> None:
        """Append bins ``[lo, hi)`` from a slot that :meth:`reserve` gave and that holds them (chunks in genome order)."""
        self._reserved.discard(slot)
        for (_, commands), rows in zip(self._workers, self._shares):
            commands.put((slot, int(rows[0]), lo, hi))
        self._pending[slot] = len(self._workers)

    def _wait(self, done) -> None:
        """Take acknowledgements until ``done()``; a writer's error (or death) is raised here."""
        while not done():
            try:
                message = self._acknowledgements.get(timeout=5)
            except Exception:  # queue.Empty: check nobody died silently (killed by the OOM killer, say)
                dead = [process.exitcode for process, _ in self._workers if process.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a bigWig writer process died (exit code {dead[0]})") from None
                continue
            worker, status = message[0], message[1]
            if status == "error":
                raise RuntimeError(f"writing {self.paths[int(self._shares[worker][0])].parent}: {message[2]}")
            if status == "closed":
                self._closed += 1
            else:
                self._pending[status] -= 1

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if not self._workers:
                for writer in self._writers:
                    writer.close()
                return
            if kind is None:
                for _, commands in self._workers:
                    commands.put(None)
                self._wait(lambda: self._closed == len(self._workers))
                for process, _ in self._workers:
                    process.join()
        finally:
            for process, _ in self._workers:
                if process.is_alive():
                    process.terminate()
                    process.join()
            if self.slots is not None:
                self.slots.close()
