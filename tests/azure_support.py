"""Azurite, the Azure Storage emulator (npm ``azurite``, pinned in package-lock.json), for the tests.

``azurite`` is a session-scoped fixture: one emulator (Blob, Queue and Table services on free loopback ports,
in-memory, no telemetry) for the whole test session; it is stopped at the end. ``azurite_env`` points
adlfs (``az://`` URLs through ``predictd_core.io`` and zarr) at it for one test, and
:func:`azurite_environment` does the same for a module-scoped fixture.

Import the fixtures into a ``conftest.py`` to use them (``tests/azure/conftest.py``,
``tests/integration/conftest.py``)::

    from tests.azure_support import azurite, azurite_env  # noqa: F401  (fixtures)
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.policies import SansIOHTTPPolicy

REPO = Path(__file__).resolve().parents[1]
AZURITE = REPO / "node_modules" / ".bin" / "azurite"

# Azurite's one built-in account and its well-known key (public, documented by Microsoft; no secret).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SERVICES = ("blob", "queue", "table")
START_TIMEOUT = 60.0

# Storage variables adlfs and azure-identity read: the tests set the first two and clear the rest, so that
# a developer's own Azure environment never leaks into a test (or a test into Azure).
_SET = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME")
_CLEARED = ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CLIENT_ID",
            "AZURE_STORAGE_CLIENT_SECRET", "AZURE_STORAGE_TENANT_ID", "AZURE_STORAGE_ANON")


@dataclass(frozen=True)
class Azurite:
    """A running emulator: its account, key and the three service endpoints
    (``http://127.0.0.1:PORT/devstoreaccount1``)."""

    account: str
    key: str
    blob_endpoint: str
    queue_endpoint: str
    table_endpoint: str

    @property
    def connection_string(self) -> str:
        """The connection string naming all three endpoints (what the SDKs and adlfs take)."""
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
                f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
                f"TableEndpoint={self.table_endpoint};")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all sockets held open until every port is chosen)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _answers(endpoint: str) -> bool:
    """True when ``endpoint`` answers HTTP at all (Azurite says 4xx to an unsigned request: that is an answer)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        with closing(opener.open(f"{endpoint}?comp=list", timeout=2)):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _start(workdir: Path) -> tuple[subprocess.Popen, Azurite]:
    """Start Azurite in ``workdir`` and wait until its three services answer."""
    if not AZURITE.is_file():
        pytest.fail(f"{AZURITE} is missing: run `npm ci` in {REPO} (Azurite is an npm devDependency)")
    ports = dict(zip(SERVICES, _free_ports(len(SERVICES))))
    command = [str(AZURITE), "--silent", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
               "--loose"]
    for service, port in ports.items():
        command += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
    log = workdir / "azurite.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=workdir, stdout=output, stderr=subprocess.STDOUT)
    emulator = Azurite(ACCOUNT, KEY, *(f"http://127.0.0.1:{ports[s]}/{ACCOUNT}" for s in SERVICES))
    endpoints = [emulator.blob_endpoint, emulator.queue_endpoint, emulator.table_endpoint]
    deadline = time.monotonic() + START_TIMEOUT
    while not all(_answers(endpoint) for endpoint in endpoints):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"Azurite did not start ({' '.join(command)}): {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return process, emulator


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> Iterator[Azurite]:
    """One Azurite (Blob, Queue, Table; in memory) for the test session, stopped at its end."""
    process, emulator = _start(tmp_path_factory.mktemp("azurite"))
    try:
        yield emulator
    finally:
        _stop(process)


def clear_adlfs_cache() -> None:
    """Forget adlfs's cached filesystems: fsspec caches them by constructor arguments, and one built from the
    environment keeps the account and endpoint it was built with."""
    from adlfs import AzureBlobFileSystem

    AzureBlobFileSystem.clear_instance_cache()


@contextmanager
def azurite_environment(emulator: Azurite) -> Iterator[None]:
    """Point adlfs (``az://`` URLs) at ``emulator`` inside the block; the environment and adlfs's instance
    cache are restored after it. For module-scoped fixtures; tests use the ``azurite_env`` fixture."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AZURE_STORAGE_CONNECTION_STRING", emulator.connection_string)
        patch.setenv("AZURE_STORAGE_ACCOUNT_NAME", emulator.account)
        for name in _CLEARED:
            patch.delenv(name, raising=False)
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
        patch.setenv("NO_PROXY", no_proxy)
        patch.setenv("no_proxy", no_proxy)
        clear_adlfs_cache()
        try:
            yield
        finally:
            clear_adlfs_cache()


@pytest.fixture
def azurite_env(azurite: Azurite) -> Iterator[Azurite]:
    """``azurite`` with the environment of :func:`azurite_environment` set for one test."""
    with azurite_environment(azurite):
        yield azurite


def create_containers(emulator: Azurite, names: tuple[str, ...] = ("configs", "data", "runs")):
    """The account's ``BlobServiceClient``, with the containers ``names`` (the contract's folders) created
    unless they exist (the session's modules share one emulator, hence one account)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(emulator.connection_string)
    for name in names:
        try:
            service.create_container(name)
        except ResourceExistsError:
            pass
    return service



class StaticCredential:
    """A TokenCredential with a fixed token: the function app's managed identity, for the local Batch
    service (which checks that a bearer token came, not which)."""

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        assert scopes == ("https://batch.core.windows.net//.default",)
        return AccessToken("local-batch-token", int(time.time()) + 3600)


class AllowPlainHttp(SansIOHTTPPolicy):
    """Lets the bearer token go to the local Batch service's http:// endpoint.

    azure-core's BearerTokenCredentialPolicy refuses non-https URLs unless the operation is given
    ``enforce_https=False``; this per-call policy (ahead of the authentication policy) sets that option on
    every request, so the runner's production code passes nothing.
    """

    def on_request(self, request) -> None:
        request.context.options["enforce_https"] = False
