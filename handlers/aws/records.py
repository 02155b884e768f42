"""The ledger's records in one DynamoDB table (partition key ``pk``, sort key ``sk``, no index)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SERIALIZER, _DESERIALIZER = TypeSerializer(), TypeDeserializer()


def _plain(value: Any) -> Any:
    """DynamoDB numbers (Decimal) as int or float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class DynamoRecords:
    """``Records`` over the table ``table`` (a boto3 ``dynamodb`` client): conditional puts and
    version-conditioned replaces, strongly consistent reads."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        self.name = table

    def _encode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: _SERIALIZER.serialize(v) for k, v in item.items() if v is not None}

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return _plain({k: _DESERIALIZER.deserialize(v) for k, v in item.items()})

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key=self._encode({"pk": pk, "sk": sk}),
                                        ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else self._decode(item)

    def put_new(self, item: dict[str, Any]) -> bool:
        try:
            self.client.put_item(TableName=self.table, Item=self._encode(item),
                                 ConditionExpression="attribute_not_exists(pk)")
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def replace(self, item: dict[str, Any], expected_version: int) -> bool:
        try:
            self.client.put_item(TableName=self.table, Item=self._encode(item),
                                 ConditionExpression="#version = :expected",
                                 ExpressionAttributeNames={"#version": "version"},
                                 ExpressionAttributeValues={":expected": {"N": str(expected_version)}})
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def query(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        items = []
        for page in self.client.get_paginator("query").paginate(
                TableName=self.table, ConsistentRead=True,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": sk_prefix}}):
            items += [self._decode(item) for item in page["Items"]]
        return items

    def scan(self, sk: str) -> list[dict[str, Any]]:
        items = []
        for page in self.client.get_paginator("scan").paginate(
                TableName=self.table, ConsistentRead=True, FilterExpression="sk = :sk",
                ExpressionAttributeValues={":sk": {"S": sk}}):
            items += [self._decode(item) for item in page["Items"]]
        return items
