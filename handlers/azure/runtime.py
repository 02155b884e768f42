"""The run logic's ports on Azure, built from the function app's environment.

Everything signs in with the function app's managed identity (azure-identity's DefaultAzureCredential):
the deployment template gives the storage account no shared keys and the Batch account AAD
authentication only.
"""

from __future__ import annotations

import functools
from typing import Any

from handlers.azure.batch import BatchRunner
from handlers.azure.notifier import QueueNotifier
from handlers.azure.records import TableRecords
from handlers.azure.store import BlobStore
from predictd_core.cloud.ledger import Ledger
from predictd_core.cloud.runs import Runtime
from predictd_core.cloud.settings import AzureSettings, load_azure_settings


def credentials() -> tuple[Any, Any, dict[str, Any]]:
    """(storage credential, Batch credential, Batch client options) of this process: the managed identity."""
    from azure.identity import DefaultAzureCredential

    identity = DefaultAzureCredential()
    return identity, identity, {}


def runtime(settings: AzureSettings) -> Runtime:
    """The adapters for ``settings``."""
    storage, batch, batch_options = credentials()
    return Runtime(store=BlobStore.from_settings(settings, storage),
                   ledger=Ledger(TableRecords.from_settings(settings, storage)),
                   runner=BatchRunner.from_settings(settings, batch, settings.image, **batch_options),
                   notifier=QueueNotifier.from_settings(settings, storage),
                   max_attempts=settings.max_attempts, status_hint=f"--account {settings.storage_account}",
                   reprocess_delay=settings.reprocess_delay)


@functools.lru_cache(maxsize=1)
def _cached(settings: AzureSettings) -> Runtime:
    return runtime(settings)


def current_runtime() -> Runtime:
    """The runtime of the function app's settings, built once per warm host."""
    return _cached(load_azure_settings())
