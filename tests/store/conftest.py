"""Record factories for the store tests."""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from decimal import Decimal
from typing import Any

import pytest

from crmsync.model import RECORD_TYPES, ObjectType, Record

PLUS_TWO = dt.timezone(dt.timedelta(hours=2))
BASE = dt.datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=dt.UTC)

EXTRA: dict[str, Any] = {
    "Custom__c": "keep me",
    "ratio": 1.5,
    "big": 2**53 + 1,
    "unicode": "Zürich 日本",
    "nested": {"list": [1, "two", None, True, {"deep": []}], "empty": {}},
}


def _unwrap(hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0]
    return hint


def full_value(name: str, hint: Any, default: Any, n: int) -> Any:
    """A non-default value for a field, exercising precision, offsets and nesting."""
    hint = _unwrap(hint)
    origin = typing.get_origin(hint)
    if name == "currency":
        return "EUR"
    if name == "timezone":
        return "Europe/Berlin"
    if hint is str:
        return f"{name} ü {n}"
    if hint is bool:
        return not default
    if hint is int:
        return 40 + n
    if hint is Decimal:
        return Decimal("0.123456789") if name == "probability" else Decimal("123456789012.123456789")
    if hint is dt.datetime:
        return (BASE + dt.timedelta(days=n)).astimezone(PLUS_TWO)  # stored and returned as UTC
    if hint is dt.date:
        return dt.date(2024, 2, 29)
    if origin is list:
        return [f"c{n}", f"c{n + 1}"]
    if origin is dict:
        return {"start": "09:00", "end": "17:30", "days": [0, 1, 2], "nested": {"n": n}}
    raise AssertionError(f"no sample value for {name}: {hint}")


def make_full(object_type: ObjectType, n: int = 1, *, connection: str = "sf-main", **overrides: Any) -> Record:
    """A record of ``object_type`` with every field set to a non-default value."""
    cls = RECORD_TYPES[object_type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {
        "connection": connection,
        "source_object": f"Native{cls.__name__}",
        "source_id": f"{object_type.value}-{n:06d}",
        "modified_at": BASE + dt.timedelta(hours=n),
        "created_at": (BASE - dt.timedelta(days=30)).astimezone(PLUS_TWO),
        "deleted": False,
        "extra": {**EXTRA, "n": n},
    }
    common = {f.name for f in fields(Record)}
    for f in fields(cls):
        if f.name in common:
            continue
        default = f.default if f.default is not MISSING else None
        values[f.name] = full_value(f.name, hints[f.name], default, n)
        assert values[f.name] != default, f"{cls.__name__}.{f.name} sample equals its default"
    values.update(overrides)
    return cls(**values)


def make_minimal(object_type: ObjectType, n: int = 1, *, connection: str = "sf-main", **overrides: Any) -> Record:
    """A record with only the required fields (every optional field left at its default)."""
    cls = RECORD_TYPES[object_type]
    values: dict[str, Any] = {
        "connection": connection,
        "source_object": cls.__name__,
        "source_id": f"{object_type.value}-min-{n:06d}",
        "modified_at": BASE,
    }
    for f in fields(cls):
        if f.default is MISSING and f.default_factory is MISSING and f.name not in values:
            values[f.name] = f"required {f.name}"
    values.update(overrides)
    return cls(**values)


@pytest.fixture
def full_record() -> Callable[..., Record]:
    return make_full


@pytest.fixture
def minimal_record() -> Callable[..., Record]:
    return make_minimal
