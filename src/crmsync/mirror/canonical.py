"""Canonical field values as they travel through the outbox.

Outbox rows keep ``fields`` as JSON, so ``Decimal``, ``date`` and ``datetime`` come back as strings.
``coerce_fields`` turns them back into the canonical types of the record kind (by the dataclass
annotations), ``jsonable`` goes the other way, and ``same_value`` compares a written value with a
pulled one (``Decimal('10.0') == '10'``; timestamps by instant).
"""

from __future__ import annotations

import datetime as dt
import functools
import typing
from decimal import Decimal
from typing import Any

from crmsync.model import (
    RECORD_TYPES,
    ObjectType,
    Record,
    parse_bool,
    parse_date,
    parse_decimal,
    parse_timestamp,
)

#: fields crmsync writes for its own bookkeeping; never subject to ``writable_fields``, never compared
BOOKKEEPING_FIELDS = frozenset({"crmsync_key"})

#: canonical plural object names (config, cursors, outbox rows) -> kinds
OBJECT_TYPES: dict[str, ObjectType] = {
    "deals": ObjectType.DEAL, "leads": ObjectType.LEAD, "accounts": ObjectType.ACCOUNT,
    "contacts": ObjectType.CONTACT, "owners": ObjectType.OWNER, "pipelines": ObjectType.PIPELINE,
    "stages": ObjectType.STAGE, "line_items": ObjectType.LINE_ITEM, "products": ObjectType.PRODUCT,
    "price_book_entries": ObjectType.PRICE_BOOK_ENTRY, "tasks": ObjectType.TASK,
}
OBJECT_NAMES: dict[ObjectType, str] = {v: k for k, v in OBJECT_TYPES.items()}


def object_type_of(object_name: str) -> ObjectType | None:
    """``"deals"`` / ``"deal"`` -> ObjectType.DEAL; None for names that are not canonical kinds."""
    if object_name in OBJECT_TYPES:
        return OBJECT_TYPES[object_name]
    try:
        return ObjectType(object_name)
    except ValueError:
        return None


@functools.cache
def field_kinds(object_type: ObjectType) -> dict[str, str]:
    """Canonical field name -> one of decimal, datetime, date, bool, int, list, str, dict."""
    hints = typing.get_type_hints(RECORD_TYPES[object_type])
    kinds: dict[str, str] = {}
    for name, hint in hints.items():
        if typing.get_origin(hint) is typing.ClassVar:
            continue
        args = set(typing.get_args(hint)) or {hint}
        origins = {typing.get_origin(a) or a for a in args}
        if Decimal in origins:
            kinds[name] = "decimal"
        elif dt.datetime in origins:
            kinds[name] = "datetime"
        elif dt.date in origins:
            kinds[name] = "date"
        elif bool in origins:
            kinds[name] = "bool"
        elif int in origins:
            kinds[name] = "int"
        elif list in origins:
            kinds[name] = "list"
        elif dict in origins:
            kinds[name] = "dict"
        else:
            kinds[name] = "str"
    return kinds


def coerce_value(kind: str, value: Any, name: str) -> Any:
    if value is None:
        return None
    if kind == "decimal":
        return parse_decimal(value, field_name=name)
    if kind == "datetime":
        return parse_timestamp(value, field_name=name)
    if kind == "date":
        return parse_date(value, field_name=name)
    if kind == "bool":
        return parse_bool(value, field_name=name)
    if kind == "int":
        number = parse_decimal(value, field_name=name)
        return None if number is None else int(number)
    if kind == "str":
        return str(value)
    return value


def coerce_fields(object_type: ObjectType | None, fields: dict[str, Any]) -> dict[str, Any]:
    """Values of canonical fields back to their canonical types; other keys (custom fields,
    ``extra.*``, crmsync keys) are passed through unchanged."""
    if object_type is None:
        return dict(fields)
    kinds = field_kinds(object_type)
    return {k: coerce_value(kinds[k], v, k) if k in kinds else v for k, v in fields.items()}


def jsonable(value: Any) -> Any:
    """A JSON-safe form (Decimal -> str, datetimes -> ISO UTC, dates -> ISO)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def same_value(kind: str, left: Any, right: Any) -> bool:
    """Equality after coercing both sides to ``kind`` (``None`` and ``""`` are the same)."""
    if left in (None, "") and right in (None, ""):
        return True
    try:
        a = coerce_value(kind, left, "value")
        b = coerce_value(kind, right, "value")
    except ValueError:
        return bool(left == right)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a.compare(b) == 0
    return bool(a == b)


def record_value(record: Record, name: str) -> Any:
    """A canonical field, or ``extra.<name>`` / a bare custom name from ``extra``."""
    if name.startswith("extra."):
        return record.extra.get(name[6:])
    if name in field_kinds(record.object_type):
        return getattr(record, name)
    return record.extra.get(name)


def apply_fields(record: Record, fields: dict[str, Any]) -> Record:
    """A copy of ``record`` with canonical ``fields`` applied (unknown names go to ``extra``)."""
    kinds = field_kinds(record.object_type)
    values = record.as_dict()
    extra = dict(values.get("extra") or {})
    for name, value in fields.items():
        if name.startswith("extra."):
            extra[name[6:]] = value
        elif name in kinds and name not in ("connection", "source_object", "source_id", "modified_at",
                                            "created_at", "extra"):
            values[name] = coerce_value(kinds[name], value, name)
        else:
            extra[name] = value
    values["extra"] = extra
    return type(record)(**values)
