"""The ledger's records in one Azure Table storage table.

An item ``{"pk": ..., "sk": ..., "version": n, ...}`` is one entity: ``pk`` is its PartitionKey and ``sk`` its
RowKey, both escaped (:func:`encode_key`: Table storage forbids ``/``, ``\\``, ``#``, ``?`` and control
characters there, and the ledger's keys are ``RUN#<run_id>``, ``JOB#<job>#<attempt>``). Table storage has
flat properties only, so a nested value (dict, list) and an integer beyond Int32 are stored as JSON text
and their names listed in the property ``_json``; they read back as they were written.
"""

from __future__ import annotations

import json
import re
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from predictd_core.cloud.settings import AzureSettings

# Characters a PartitionKey or RowKey may not hold, and "%" (the escape itself): each becomes %XX.
_FORBIDDEN = re.compile(r"[%/\\#?\x00-\x1f\x7f-\x9f]")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_PROPERTY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,254}")  # a C# identifier, as Table storage requires
_JSON = "_json"  # the names of the properties stored as JSON text, comma-separated
_RESERVED = {"PartitionKey", "RowKey", "Timestamp", _JSON}
_INT32 = range(-2**31, 2**31)


def encode_key(value: str) -> str:
    """``value`` as a PartitionKey/RowKey: ``%``, ``/``, ``\\``, ``#``, ``?`` and control characters become
    ``%XX``. Every character maps to a fixed string and ``%`` starts only escapes, so ``a`` is a prefix of
    ``b`` exactly when ``encode_key(a)`` is a prefix of ``encode_key(b)``: prefix queries stay exact.

    Examples
    --------
    >>> encode_key("JOB#test1-valid0#001")
    'JOB%23test1-valid0%23001'
    """
    return _FORBIDDEN.sub(lambda match: f"%{ord(match[0]):02X}", value)


def decode_key(value: str) -> str:
    """The inverse of :func:`encode_key`."""
    return _ESCAPE.sub(lambda match: chr(int(match[1], 16)), value)


def _after_prefix(prefix: str) -> str:
    """The least string greater than every string that starts with ``prefix`` (its last character, in
    UTF-16 order as Table storage compares keys, stepped up by one)."""
    while prefix and prefix[-1] == "\uffff":
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else ""


def _flat(value: Any) -> bool:
    """True for a value Table storage holds as a property of its own type (string, bool, Int32, double)."""
    return isinstance(value, (str, bool, float)) or (isinstance(value, int) and value in _INT32)


class TableRecords:
    """``Records`` over one table (azure-data-tables ``TableClient``): create-if-absent puts, and
    replaces conditioned on both the entity's ETag and its stored ``version``.

    Parameters
    ----------
    table_endpoint : str
        The account's table endpoint (``https://ACCOUNT.table.core.windows.net``; Azurite's in the tests).
    table : str
        The ledger table's name (``settings.ledger_table``).
    credential : object
        An azure-identity credential in the cloud, an ``AzureNamedKeyCredential`` for Azurite.
    """

    def __init__(self, table_endpoint: str, table: str, credential: Any) -> None:
        self.table = table
        self.name = table
        self.client = TableClient(endpoint=table_endpoint, table_name=table, credential=credential)

    @classmethod
    def from_settings(cls, settings: AzureSettings, credential: Any) -> TableRecords:
        """The ledger table of ``settings`` at its account's table endpoint."""
        return cls(settings.endpoint("table"), settings.ledger_table, credential)

    # -------------------------------------------------------------------------------------- encoding

    def _entity(self, item: dict[str, Any]) -> dict[str, Any]:
        """The entity of ``item``: escaped keys, flat values as they are, the rest as JSON text.
        None values are left out, as the DynamoDB adapter does (an absent attribute reads as absent)."""
        entity: dict[str, Any] = {"PartitionKey": encode_key(item["pk"]), "RowKey": encode_key(item["sk"])}
        as_json = []
        for name, value in item.items():
            if name in ("pk", "sk") or value is None:
                continue
            if name in _RESERVED or not _PROPERTY_NAME.fullmatch(name):
                raise ValueError(f"table {self.table}: item {item['pk']}/{item['sk']}: attribute {name!r} is "
                                 "not a Table storage property name (letters, digits, _; not a reserved name)")
            if _flat(value):
                entity[name] = value
            else:
                entity[name] = json.dumps(value, separators=(",", ":"))
                as_json.append(name)
        if as_json:
            entity[_JSON] = ",".join(as_json)
        return entity

    @staticmethod
    def _item(entity: Any) -> dict[str, Any]:
        """The item an entity was written from (the inverse of ``_entity``)."""
        as_json = set(filter(None, entity.get(_JSON, "").split(",")))
        item = {"pk": decode_key(entity["PartitionKey"]), "sk": decode_key(entity["RowKey"])}
        for name, value in entity.items():
            if name not in _RESERVED:
                item[name] = json.loads(value) if name in as_json else value
        return item

    # ---------------------------------------------------------------------------------------- the port

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        """The item at (pk, sk) (Table storage reads are strongly consistent); None when absent."""
        entity = self._get_entity(pk, sk)
        return None if entity is None else self._item(entity)

    def _get_entity(self, pk: str, sk: str):
        try:
            return self.client.get_entity(partition_key=encode_key(pk), row_key=encode_key(sk))
        except ResourceNotFoundError:
            return None

    def put_new(self, item: dict[str, Any]) -> bool:
        """Insert ``item``; False when an entity with its (pk, sk) exists (Insert Entity fails with 409)."""
        try:
            self.client.create_entity(self._entity(item))
        except ResourceExistsError:
            return False
        return True

    def replace(self, item: dict[str, Any], expected_version: int) -> bool:
        """Replace the item if its stored ``version`` is ``expected_version``: read it, compare the version,
        then replace it on the condition that its ETag is the one read (so nobody wrote in between)."""
        entity = self._get_entity(item["pk"], item["sk"])
        if entity is None or entity.get("version") != expected_version:
            return False
        try:
            self.client.update_entity(self._entity(item), mode=UpdateMode.REPLACE, etag=entity.metadata["etag"],
                                      match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):  # 412: another writer won; 404: deleted
            return False
        return True

    def query(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        """Every item of partition ``pk`` whose sort key starts with ``sk_prefix``, as a RowKey range."""
        parameters = {"pk": encode_key(pk)}
        query = "PartitionKey eq @pk"
        if sk_prefix:
            low, high = encode_key(sk_prefix), _after_prefix(encode_key(sk_prefix))
            parameters["low"] = low
            query += " and RowKey ge @low"
            if high:  # "" only for a prefix of U+FFFF alone: nothing sorts after it
                parameters["high"] = high
                query += " and RowKey lt @high"
        return [self._item(entity) for entity in self.client.query_entities(query, parameters=parameters)]

    def scan(self, sk: str) -> list[dict[str, Any]]:
        """Every item whose sort key is ``sk`` (a scan of the whole table, filtered by the service)."""
        entities = self.client.query_entities("RowKey eq @sk", parameters={"sk": encode_key(sk)})
        return [self._item(entity) for entity in entities]
