"""Every canonical kind survives a write and a read unchanged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import fields
from decimal import Decimal

import pytest
from sqlalchemy import inspect

from crmsync.model import RECORD_TYPES, UTC, Deal, ObjectType, Record
from crmsync.store import Store
from crmsync.store.tables import record_table

KINDS = list(RECORD_TYPES)


def test_every_kind_has_a_table_with_a_column_per_field(store: Store) -> None:
    inspector = inspect(store.engine)
    for object_type, cls in RECORD_TYPES.items():
        table = record_table(object_type)
        stored = {c["name"] for c in inspector.get_columns(table.name)}
        wanted = {f.name for f in fields(cls)} | {"synced_at", "content_hash"}
        assert wanted <= stored, f"{table.name} lacks {wanted - stored}"
        pk = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert pk == ["connection", "source_id"]
        indexes = {tuple(i["column_names"]) for i in inspector.get_indexes(table.name)}
        assert ("connection", "modified_at") in indexes


@pytest.mark.parametrize("object_type", KINDS, ids=[k.value for k in KINDS])
def test_full_record_round_trips(store: Store, full_record: Callable[..., Record], object_type: ObjectType) -> None:
    record = full_record(object_type, 7)
    with store.transaction() as tx:
        assert tx.upsert([record]) == 1
    loaded = store.get(object_type, record.connection, record.source_id)
    assert loaded == record
    assert type(loaded) is type(record)
    for f in fields(record):
        value = getattr(loaded, f.name)
        if isinstance(value, dt.datetime):
            assert value.tzinfo is UTC, f"{f.name} came back as {value!r}"
        if isinstance(getattr(record, f.name), Decimal):
            assert isinstance(value, Decimal) and str(value) == str(getattr(record, f.name)), f.name
    assert loaded.extra["nested"] == {"list": [1, "two", None, True, {"deep": []}], "empty": {}}
    assert loaded.extra["big"] == 2**53 + 1
    assert list(store.iter_records(object_type)) == [record]
    assert store.count(object_type) == 1
    assert store.count(object_type, "other-connection") == 0


@pytest.mark.parametrize("object_type", KINDS, ids=[k.value for k in KINDS])
def test_minimal_record_round_trips(
    store: Store, minimal_record: Callable[..., Record], object_type: ObjectType
) -> None:
    record = minimal_record(object_type)
    with store.transaction() as tx:
        tx.upsert([record])
    assert store.get(object_type, record.connection, record.source_id) == record


def test_decimals_keep_every_digit(store: Store) -> None:
    amounts = ["0.1", "1234567890123456.0001", "-0.000000001", "99999999999999999999.99", "1E+3", "100.50"]
    deals = [
        Deal(connection="c", source_object="Opportunity", source_id=f"d{i}",
             modified_at=dt.datetime(2025, 1, 1, tzinfo=UTC), amount=Decimal(a), currency="USD")
        for i, a in enumerate(amounts)
    ]
    with store.transaction() as tx:
        tx.upsert(deals)
    for deal, text in zip(deals, amounts, strict=True):
        loaded = store.get("deal", "c", deal.source_id)
        assert isinstance(loaded, Deal) and loaded.amount == Decimal(text)


def test_extra_with_decimal_and_datetimes_is_stored_as_strings(store: Store) -> None:
    when = dt.datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
    deal = Deal(connection="c", source_object="Opportunity", source_id="x", modified_at=when,
                extra={"price": Decimal("10.10"), "at": when, "day": dt.date(2025, 6, 1), "tags": ("a", "b")})
    with store.transaction() as tx:
        tx.upsert([deal])
    loaded = store.get("deal", "c", "x")
    assert loaded is not None
    assert loaded.extra == {"price": "10.10", "at": "2025-06-01T08:30:00+00:00", "day": "2025-06-01",
                            "tags": ["a", "b"]}


def test_get_missing_returns_none(store: Store) -> None:
    assert store.get("deal", "c", "nope") is None
