"""Shared by the integration tests: one moto server per module for those that run against S3, its listings, and
the local cross-validated pilot run the S3 and Azure run tests compare with."""

import fcntl
from pathlib import Path

import pytest

from tests.integration.pilot_cv_reference import local_reference


@pytest.fixture(scope="module")
def moto_endpoint():
    """A moto S3 server on a free loopback port for the whole module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    """The object keys under ``prefix``."""
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


@pytest.fixture(scope="session")
def local_run(pilot_dir, tmp_path_factory, worker_id) -> Path:
    """The output folder of :func:`~tests.integration.pilot_cv_reference.local_reference`, run once per session:
    under pytest-xdist in the folder its processes share, by whichever asks first (the others wait on a lock)."""
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "pilot-cv-reference"
    with open(f"{root}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "out" / "manifest.json").is_file():
            local_reference(pilot_dir, root)
    return root / "out"
