"""Shared fixtures: one SparkSession for the whole run, the real pilot tracks, tiny compendia."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `make test` runs the suite in 3 processes on 2 cores, so each process gets one BLAS thread (as
# `engine.processes` gives each worker its share of the CPUs; Spark sets its Python workers' to 1). Two threads
# in each oversubscribe the cores, and OpenBLAS's threads then wait on each other in every small product: under
# load a 20,000-value dot product averaged 600 us instead of 12, and the simulated demo's refinement took 126 s
# instead of 22. The processes the tests start inherit the variables; this one may have loaded OpenBLAS already
# (a pytest plugin imports numpy), so it is limited through threadpoolctl as well.
for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

# The suite's JVMs (the shared SparkSession's, every spark-submit and standalone master or worker the tests
# start) live seconds to a minute: C1's quick compiles and the serial collector cost less CPU than the optimising
# JIT and parallel GC threads earn back in that time. Spark-heavy test files ran in 0.66x the time (A/B, alternated).
for _jvm in ("SPARK_SUBMIT_OPTS", "SPARK_DAEMON_JAVA_OPTS"):
    os.environ.setdefault(_jvm, "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")

import numpy as np  # noqa: E402
import pyBigWig  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]))

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from tests.azure_support import azurite, azurite_env  # noqa: E402,F401  (fixtures: one Azurite per session)

REPO = Path(__file__).resolve().parents[1]
PILOT = REPO.parent / "shared" / "data" / "roadmap-pilot"

# The files that take a minute or more on 2 cores, longest first. `make test` runs the suite in 3 processes
# (pytest-xdist, each file whole on one of them), handing out files in collection order: these come first,
# so that no process starts one of them while the others are nearly done.
LONGEST_FIRST = (
    "tests/bench/test_quick_training.py",
    "tests/bench/test_quick_protocol.py",
    "tests/handlers/test_end_to_end.py",
    "tests/cloud/test_azure_end_to_end.py",
    "tests/integration/test_pilot.py",
    "tests/bench/test_quick_chunks.py",
    "tests/integration/test_azure_run.py",
    "tests/integration/test_cv.py",
    "tests/azure/test_batch.py",
    "tests/integration/test_s3_run.py",
    "tests/integration/test_cli.py",
    "tests/handlers/test_on_data.py",
    "tests/cloud/test_faults.py",
)


def pytest_collection_modifyitems(config, items):
    """In a pytest-xdist worker, put the files of :data:`LONGEST_FIRST` first, in its order (a plain run
    keeps the collection's order)."""
    if not hasattr(config, "workerinput"):
        return
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: files stay whole


@pytest.fixture(scope="session")
def spark_session():
    """One local SparkSession shared by every test (a start costs seconds)."""
    from predictd_core.engine.spark import get_session

    session = get_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def pilot_dir() -> Path:
    """The real Roadmap pilot tracks beside the repo."""
    if not (PILOT / "tracks.tsv").is_file():
        pytest.fail(f"the real pilot tracks are missing: {PILOT}")
    return PILOT


def write_bigwig(path: Path, contigs: dict[str, int], values: dict[str, np.ndarray], bin_size: int = 25) -> Path:
    """A fixed-step bigWig with one value per ``bin_size`` bases (NaN bins are left out)."""
    handle = pyBigWig.open(str(path), "w")
    handle.addHeader(list(contigs.items()), maxZooms=0)
    for contig, array in values.items():
        starts = np.arange(array.size) * bin_size
        keep = ~np.isnan(array)
        ends = np.minimum(starts + bin_size, contigs[contig])
        if keep.any():
            handle.addEntries([contig] * int(keep.sum()), starts[keep].tolist(), ends=ends[keep].tolist(),
                              values=array[keep].astype(float).tolist())
    handle.close()
    return path


@pytest.fixture
def tiny_compendium(tmp_path: Path):
    """3 cells x 2 assays on two contigs (1000 bp and 510 bp, so the last bin is 10 bp), all observed.

    Returns (folder, tracks.tsv path, chrom.sizes path, {name: {contig: per-bin values}}).
    """
    rng = np.random.default_rng(7)
    contigs = {"chrA": 1000, "chrB": 510}
    truth = {}
    rows = ["cell_type\tassay\tpath"]
    for cell in ("C1", "C2", "C3"):
        for assay in ("M1", "M2"):
            values = {name: rng.gamma(1.0, 2.0, size=-(-size // 25)) for name, size in contigs.items()}
            write_bigwig(tmp_path / f"{cell}.{assay}.bigWig", contigs, values)
            truth[f"{cell}:{assay}"] = values
            rows.append(f"{cell}\t{assay}\t{cell}.{assay}.bigWig")
    (tmp_path / "tracks.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "chrom.sizes").write_text("".join(f"{k}\t{v}\n" for k, v in contigs.items()))
    return tmp_path, tmp_path / "tracks.tsv", tmp_path / "chrom.sizes", truth


def write_config(folder: Path, **fields) -> Path:
    """A run YAML in ``folder`` (defaults: the folder's tracks.tsv / chrom.sizes, numpy engine)."""
    import yaml

    config = {"tracks": "tracks.tsv", "chrom_sizes": "chrom.sizes", "bin_size": 25, "holdout": [],
              "model": {"solver": "als", "rank": 2, "max_iters": 5}, "engine": {"kind": "numpy"},
              "output": "out"}
    config.update(fields)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
