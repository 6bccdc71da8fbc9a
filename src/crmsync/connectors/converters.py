"""Converters of native field values to canonical ones (a mapping's ``FieldMap.convert``).

Each takes the value and the native field's name and raises ``ModelError`` naming that field when
the value does not convert. The common case of each comes first: they run for every field of every
record read (``connectors.mapping_code`` writes some of them out inline).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from crmsync.model import ModelError, parse_bool, parse_date, parse_decimal, parse_timestamp

Converter = Callable[[Any, str], Any]


def as_str(value: Any, name: str) -> str | None:
    if type(value) is str:  # the common case first (called for most fields of every record)
        return value or None
    if value is None or value == "":
        return None
    if isinstance(value, dict | list):
        raise ModelError(f"{name}: expected text, got {type(value).__name__}")
    return str(value)


def as_id(value: Any, name: str) -> str | None:
    """Ids are strings in the canonical model whatever the CRM sends (HubSpot str, Pipedrive int)."""
    if type(value) is str:
        return value or None
    if type(value) is int:  # Pipedrive's ids
        return str(value)
    if isinstance(value, dict):  # Pipedrive v1 embeds {"id": ..., "name": ...}
        value = value.get("id") if "id" in value else value.get("value")
    return as_str(value, name)


def as_int(value: Any, name: str) -> int | None:
    if type(value) is int:
        return value
    number = parse_decimal(value, field_name=name)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise ModelError(f"{name}: {value!r} is not a whole number")
    return int(number)


def as_decimal(value: Any, name: str) -> Any:
    if type(value) is Decimal and value.is_finite():  # a JSON fraction, already Decimal (wire.decode_body)
        return value
    if type(value) is str and value:  # fast path for the usual "1234.50"; anything odd takes the full check
        try:
            number = Decimal(value)
        except InvalidOperation:
            return parse_decimal(value, field_name=name)
        if number.is_finite():
            return number
    elif type(value) is int:  # a whole JSON number (Decimal from float_hook covers fractions)
        return Decimal(value)
    return parse_decimal(value, field_name=name)


def as_percent(value: Any, name: str) -> Any:
    """0-100 percent (Salesforce Probability, Pipedrive probability) to a 0..1 fraction."""
    number = as_decimal(value, name)
    return None if number is None else number / 100


def as_bool(value: Any, name: str) -> bool | None:
    if type(value) is bool:
        return value
    return parse_bool(value, field_name=name)


def as_timestamp(value: Any, name: str) -> Any:
    if type(value) is str and value:  # ISO 8601 in UTC parses in C; any other form takes the full parser
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return parse_timestamp(value, field_name=name)
        if parsed.tzinfo is dt.UTC:
            return parsed
    return parse_timestamp(value, field_name=name)


def as_date(value: Any, name: str) -> Any:
    if type(value) is str and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    return parse_date(value, field_name=name)


CONVERTERS: dict[str, Converter] = {
    "str": as_str, "id": as_id, "int": as_int, "decimal": as_decimal, "percent": as_percent,
    "bool": as_bool, "timestamp": as_timestamp, "date": as_date,
}
#: converters that turn a missing value (None) into None: ``to_record`` skips the call for them
NONE_TO_NONE: frozenset[Converter] = frozenset(CONVERTERS.values())


def walk_path(node: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
