"""Shared by the integration tests: one moto server per module for those that run against S3, a bucket Spark's
workers reach too, its listings, and the local cross-validated pilot run the S3 and Azure run tests compare
with."""

import fcntl
import uuid
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


@pytest.fixture
def worker_env(spark_session):
    """``set(name, value)``: an environment variable for this process and for Spark's Python workers (theirs is
    the SparkContext's environment), both restored after the test."""
    environment = spark_session.sparkContext.environment
    saved, patch = dict(environment), pytest.MonkeyPatch()

    def set_both(name: str, value: str) -> None:
        patch.setenv(name, value)
        environment[name] = value

    yield set_both
    patch.undo()
    environment.clear()
    environment.update(saved)


@pytest.fixture
def s3_bucket_on_workers(moto_endpoint, worker_env):
    """``(client, bucket)``: a new bucket on the module's moto server, which this process and Spark's Python
    workers both reach with test credentials."""
    import boto3
    import s3fs

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_endpoint,
                        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                        "NO_PROXY": "127.0.0.1,localhost"}.items():
        worker_env(name, value)
    s3fs.S3FileSystem.clear_instance_cache()  # a cached filesystem keeps the endpoint it was built with
    client, bucket = boto3.client("s3"), f"predictd-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    s3fs.S3FileSystem.clear_instance_cache()


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
