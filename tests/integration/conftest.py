"""Shared by the integration tests that run against S3: one moto server per module, and its listings."""

import pytest


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
