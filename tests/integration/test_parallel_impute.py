"""Chunk-parallel imputation: worker processes compute chunks into the writers' slots, with the serial path's results."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from predictd_core.config import RunConfig
from predictd_core.engine.local import LocalEngine
from predictd_core.errors import PredictdInputError
from predictd_core.impute.ensemble import Ensemble, EnsembleMember
from predictd_core.impute.parallel import compute_processes, computed_chunks, write_chunks
from predictd_core.impute.trained_run import TrainedRun
from predictd_core.impute.write_tracks import ParallelTrackWriter, SharedSlots
from predictd_core.model.factors import Layout, initial_factors
from predictd_core.pipeline import run_impute
from predictd_core.simulate import simulate_compendium
from predictd_core.solvers import als
from predictd_core.store.signal_store import SignalStore

# 30 pairs x 2 folders x 70,000 bins = 4.2 M values: above PARALLEL_MIN_VALUES, so engine.processes is used
N_BINS, CHUNK_BINS = 70_000, 8_192  # 9 chunks, the last one partial


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SignalStore:
    root = tmp_path_factory.mktemp("parallel") / "sim"
    simulate_compendium(root, n_cells=6, n_assays=5, n_bins=N_BINS, rank=2, seed=1, missing_fraction=0.2,
                        signal_format="store", chunk_bins=CHUNK_BINS, dense_truth=False)
    return SignalStore.open(root / "store.zarr")


def two_member_run(store: SignalStore) -> TrainedRun:
    """Two members (different factors and inputs; the second imputes a third of the pairs), with the spread."""
    layout = Layout.from_experiments(store.experiments)
    moments = LocalEngine(store).map_reduce(als.column_moments, None)
    columns = np.arange(store.n_experiments)
    members = tuple(EnsembleMember(f"m{seed}", initial_factors(layout, 2, seed, *moments, inputs), inputs)
                    for seed, inputs in ((0, columns), (1, columns[1:])))
    n_pairs = len(layout.cells) * len(layout.assays)
    weights = np.array([np.ones(n_pairs, bool), np.arange(n_pairs) % 3 == 0])
    return TrainedRun(Ensemble(layout, 2.9, members, weights), {}, [], with_spread=True)


def store_with_a_broken_chunk(store: SignalStore, folder: Path, chunk: int) -> SignalStore:
    """A copy of ``store`` in ``folder`` whose chunk ``chunk`` holds bytes no codec decodes."""
    broken = folder / "broken.zarr"
    shutil.copytree(store.path, broken)
    chunk_file = broken / "signal" / "c" / str(chunk) / "0"
    assert chunk_file.is_file()
    chunk_file.write_bytes(b"not a blosc frame")
    return SignalStore.open(broken)


def _config(store: SignalStore, output: Path, processes: int) -> RunConfig:
    # the workers apply the refinement too; fitted on a sample with 2 inner tracks (its defaults cost minutes)
    return RunConfig(tracks="tracks.tsv", chrom_sizes="chrom.sizes", store=store.path, output=str(output),
                     chunk_bins=CHUNK_BINS, engine={"kind": "numpy", "processes": processes},
                     model={"refine": {"sample_bins": 16_384, "inner_tracks": 2}})


def _values(path: Path) -> np.ndarray:
    handle = pyBigWig.open(str(path))
    try:
        return np.concatenate([handle.values(name, 0, length, numpy=True) for name, length in handle.chroms().items()])
    finally:
        handle.close()


def test_chunks_computed_in_two_processes_write_the_serial_paths_tracks(store, tmp_path):
    run = two_member_run(store)
    assert compute_processes(LocalEngine(store), 2, 2 * run.ensemble.n_pairs) == 2  # the workers do compute
    serial = run_impute(_config(store, tmp_path / "serial", 1), store, run, LocalEngine(store))
    shared = run_impute(_config(store, tmp_path / "shared", 2), store, run, LocalEngine(store, cache=False))
    assert len(serial) == len(shared) == 2 * run.ensemble.n_pairs  # imputed/ and spread/
    for one, two in zip(serial, shared):
        assert Path(one).name == Path(two).name and Path(one).parent.name == Path(two).parent.name
        np.testing.assert_allclose(_values(Path(two)), _values(Path(one)), rtol=1e-6, atol=1e-7)


def test_a_store_chunk_that_cannot_be_read_in_a_worker_fails_the_run_and_publishes_nothing(store, tmp_path):
    bad = store_with_a_broken_chunk(store, tmp_path, 4)  # bins 32,768-40,959
    output = tmp_path / "out"
    with pytest.raises(RuntimeError, match="decompression"):  # the worker's error, as it was raised there
        run_impute(_config(bad, output, 2), bad, two_member_run(bad), LocalEngine(bad))
    assert not output.exists() or list(output.iterdir()) == []  # no imputed/, no staging folder left


def fail_on_the_last_chunk(signal: np.ndarray, payload: str) -> tuple[np.ndarray, None]:
    """A chunk function that finds bad input in the (short) last chunk (module level: workers import it)."""
    if signal.shape[0] < CHUNK_BINS:
        raise PredictdInputError("tracks.tsv", payload, "values out of range in the last chunk")
    return np.nan_to_num(signal[:, :2]), None


def test_an_input_error_of_a_worker_reaches_the_caller_with_its_file_and_field(store, tmp_path):
    paths = [tmp_path / "t0.bigWig", tmp_path / "t1.bigWig"]
    written = []
    with pytest.raises(PredictdInputError) as raised:
        with ParallelTrackWriter(paths, store.bins, store.chunk_bins, 2, computing=2) as writer:
            written.extend(write_chunks(LocalEngine(store), fail_on_the_last_chunk, "E002:H3K4me3", writer, 2))
    assert (raised.value.source, raised.value.field) == ("tracks.tsv", "E002:H3K4me3")
    assert "last chunk" in str(raised.value)
    assert written == list(range(store.n_chunks - 1))  # every chunk before it went to the writers, in order


def sum_and_columns(signal: np.ndarray, payload: float) -> tuple[np.ndarray, None, np.ndarray]:
    """Blocks side by side: every bin's sum, nothing, then the first three columns scaled (module level)."""
    return np.nansum(signal, axis=1, keepdims=True, dtype=np.float32), None, signal[:, :3] * np.float32(payload)


def test_computed_chunks_lay_every_chunk_into_a_slot_in_genome_order(store):
    slots = SharedSlots(3, (4, store.chunk_bins))
    try:
        seen = []
        for chunk, slot in computed_chunks(store, sum_and_columns, 2.0, slots, 2):
            signal = store.read_chunk(chunk)
            expected = np.hstack([block for block in sum_and_columns(signal, 2.0) if block is not None])
            np.testing.assert_array_equal(slots.arrays[slot][:, :signal.shape[0]], expected.T)
            seen.append(chunk)
        assert seen == list(range(store.n_chunks))
    finally:
        slots.close()
