"""A run's imputation job: what each chunk computes (:func:`impute_chunk`, mapped over the store's chunks by
the engines, :mod:`predictd_core.impute.parallel`'s worker processes or a distributed engine's executors,
:mod:`predictd_core.impute.distributed`) and the tracks it is written to (:func:`write_imputed_tracks`)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

import numpy as np

from predictd_core.config import RunConfig
from predictd_core.engine import Engine
from predictd_core.engine.base import require_every_chunk
from predictd_core.engine.bundles import scratch_folder
from predictd_core.impute.distributed import write_tracks_distributed
from predictd_core.impute.ensemble import Ensemble, ensemble_chunk
from predictd_core.impute.outputs import IMPUTED_FOLDER, imputed_folders, track_names
from predictd_core.impute.parallel import compute_processes, write_chunks
from predictd_core.impute.refine import Refinement
from predictd_core.impute.write_tracks import ParallelTrackWriter
from predictd_core.io import is_remote, join_location, staged_folder
from predictd_core.store.signal_store import SignalStore


@dataclass(frozen=True)
class ImputeJob:
    """The ensemble that imputes, whether its spread is written too, the pairs imputed (None: every pair, else
    indices into the ensemble's cell-major pairs) and the refinement stage applied on top (None: not refined)."""

    ensemble: Ensemble
    with_spread: bool
    pairs: np.ndarray | None
    refinement: Refinement | None = None


def impute_chunk(Y: np.ndarray, job: ImputeJob) -> tuple[np.ndarray, np.ndarray | None]:
    """The chunk's imputation (the ensemble mean, refined when the run refines) and the ensemble's spread,
    arcsinh, float32 (half the bytes back to the driver); the writers turn the mean into -log10 p."""
    mean, spread = ensemble_chunk(Y, job.ensemble, job.with_spread, job.pairs)
    if job.refinement is not None:
        pairs = np.arange(job.ensemble.n_pairs) if job.pairs is None else job.pairs
        mean = job.refinement.apply(Y, mean, pairs)
    return mean.astype(np.float32, copy=False), None if spread is None else spread.astype(np.float32, copy=False)


def _track_destinations(config: RunConfig, job: ImputeJob, names: list[str], stack: ExitStack, stage_remote: bool
                        ) -> tuple[list, list[bool]]:
    """Where each of ``job``'s tracks is written, in :func:`impute_chunk`'s order (imputed/, the means written as
    -log10 p, then spread/), and which come as arcsinh. Each folder is a staging folder entered on ``stack``
    (published whole when it closes), except a remote one when not ``stage_remote``: then its tracks' URLs
    themselves, each uploaded whole by whoever writes it."""
    targets, from_arcsinh = [], []
    for folder in imputed_folders(job.with_spread):
        location = join_location(config.output, folder)
        staged = stage_remote or not is_remote(location)
        work = stack.enter_context(staged_folder(location)) if staged else location
        targets += [join_location(work, name) for name in names]
        from_arcsinh += [folder == IMPUTED_FOLDER] * len(names)
    return targets, from_arcsinh


def write_imputed_tracks(config: RunConfig, store: SignalStore, job: ImputeJob, engine: Engine,
                         progress: Callable[..., None]) -> None:
    """Compute ``job`` chunk by chunk on ``engine`` and write its tracks under ``config.output``
    (:mod:`predictd_core.impute.outputs`); ``progress("impute", done, total)`` hears of each chunk.

    The tracks are written to local staging folders (:func:`predictd_core.io.staged_folder`) and published
    only when every track is complete: locally each folder appears whole, on an object store each track is
    uploaded as one object. They are written side by side by ``config.engine.processes`` processes
    (:class:`~predictd_core.impute.write_tracks.ParallelTrackWriter`); on the numpy engine as many processes
    compute the chunks side by side (:mod:`predictd_core.impute.parallel`).

    On a distributed engine (``engine.distributed``: Spark) the executors compute the chunks and write the
    tracks (:func:`~predictd_core.impute.distributed.write_tracks_distributed`), through chunk bundles in
    ``OUTPUT/.parts/<id>/`` (deleted at the end): nothing is carried to or written by this process. Locally
    the tracks are assembled into the staging folders, published whole as above; on an object store each
    track is uploaded as one object by the task that assembles it, once every chunk is computed (an error in
    computing publishes nothing; one while assembling may leave some tracks published, each one whole).

    Raises
    ------
    ValueError
        When ``engine`` maps only some of the store's chunks (a training engine): tracks cover every bin.
    """
    require_every_chunk(engine, "imputation writes every bin")
    names = track_names(job.ensemble.layout, job.pairs)
    if engine.distributed:
        _write_on_executors(config, store, job, engine, names, progress)
        return
    with ExitStack() as stack:
        paths, from_arcsinh = _track_destinations(config, job, names, stack, stage_remote=True)
        processes = config.engine.processes_for(len(paths) * store.bins.n_bins)
        computing = compute_processes(engine, processes, len(paths))
        writer = stack.enter_context(ParallelTrackWriter(paths, store.bins, store.chunk_bins, processes, from_arcsinh,
                                                         computing))
        for chunk in write_chunks(engine, impute_chunk, job, writer, computing):
            progress("impute", chunk + 1, store.n_chunks)


def _write_on_executors(config: RunConfig, store: SignalStore, job: ImputeJob, engine: Engine, names: list[str],
                        progress: Callable[..., None]) -> None:
    """:func:`write_imputed_tracks` on a distributed engine: staging folders locally, the final objects on an
    object store, and a scratch folder of this imputation's own under ``OUTPUT/.parts``."""
    with ExitStack() as stack:
        targets, from_arcsinh = _track_destinations(config, job, names, stack, stage_remote=False)
        with scratch_folder(config.output) as scratch:
            write_tracks_distributed(engine, impute_chunk, job, targets, from_arcsinh, scratch,
                                     lambda done: progress("impute", done, store.n_chunks))
