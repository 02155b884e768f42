"""``predictd status --account ACCOUNT`` on Azure: the run ledger in the account's Table storage.

Signs in as ``az login`` or the environment does (azure-identity's DefaultAzureCredential); the table
endpoint is ``$PREDICTD_TABLE_ENDPOINT`` when set (e.g. Azurite), else the account's public endpoint.
"""

from __future__ import annotations

import os

from azure.core.exceptions import AzureError

from handlers.azure.records import TableRecords
from predictd_core.cloud.ledger import Ledger
from predictd_core.cloud.settings import AZURE_LEDGER_TABLE
from predictd_core.errors import PredictdInputError

ERRORS = (AzureError,)  # what reading the ledger may raise: reported in one line


def open_ledger(store: str | None, table: str | None) -> Ledger:
    """The ledger of the deployment whose storage account is ``store``."""
    if not store:
        raise PredictdInputError("command line", "--account", "name the deployment's storage account")
    from handlers.azure.runtime import credentials

    endpoint = os.environ.get("PREDICTD_TABLE_ENDPOINT") or f"https://{store}.table.core.windows.net"
    storage, _, _ = credentials()
    return Ledger(TableRecords(endpoint, table or AZURE_LEDGER_TABLE, storage))
