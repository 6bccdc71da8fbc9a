"""Bulk upsert of canonical records: one ``INSERT .. ON CONFLICT (connection, source_id) DO UPDATE``
statement per kind, executed with a list of prebuilt parameter dicts (executemany /
insertmanyvalues), no ORM objects on the way.

Conflict policy: **the last write by ``modified_at`` wins.** An incoming row replaces the stored one
when ``incoming.modified_at >= stored.modified_at``; equal timestamps still update, so pulling the
same record twice is idempotent and a re-pull after a mapping change refreshes the row. Older
incoming rows (a stale replica, an overlapping lookback window) are ignored. Within one call,
duplicates of a key are reduced to the newest (the later one on equal timestamps) before writing,
and rows are written in key order so concurrent writers lock rows in the same order.

``content_hash`` is a hash of the kind's *mapped* fields, i.e. the fields a kind declares beyond the
common ``Record`` ones. It leaves out ``modified_at``, ``created_at``, ``deleted``, ``extra`` and the
identity columns, so an echo of our own write (same fields, newer ``modified_at``, different
system fields in ``extra``) has the same hash as what is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from crmsync.model import RECORD_TYPES, UTC, ModelError, ObjectType, Record
from crmsync.store.tables import record_table

#: fields every record has; everything else a kind declares is "mapped"
COMMON_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record))
_UNHASHED = frozenset(COMMON_FIELDS)
_CURRENCY_FIELDS = frozenset({"currency"})


def _hash_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.normalize()) if value.is_finite() else str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ModelError(f"naive datetime {value.isoformat()} (expected timezone-aware)")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"{type(value).__name__} is not hashable content")


_HASH_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


@dataclass(frozen=True)
class KindPlan:
    """Everything about one kind that the hot path needs, computed once."""

    object_type: ObjectType
    record_cls: type[Record]
    table: Table
    field_names: tuple[str, ...]  # dataclass fields, in declaration order
    mapped: tuple[str, ...]  # fields that go into content_hash
    get_all: Callable[[Any], tuple[Any, ...]]
    get_mapped: Callable[[Any], tuple[Any, ...]]
    has_currency: tuple[str, ...]
    statements: dict[str, Insert]

    def content_hash(self, record: Record) -> str:
        payload = orjson.dumps(self.get_mapped(record), default=_hash_default, option=_HASH_OPTIONS)
        return hashlib.blake2b(payload, digest_size=16).hexdigest()

    def statement(self, dialect_name: str) -> Insert:
        return self.statements[dialect_name]

    def to_record(self, values: Sequence[Any]) -> Record:
        return self.record_cls(**dict(zip(self.field_names, values, strict=True)))


def _build_statement(table: Table, dialect_name: str) -> Insert:
    module: Any = sqlite if dialect_name == "sqlite" else postgresql
    ins = module.insert(table)
    excluded = ins.excluded
    set_ = {c.name: excluded[c.name] for c in table.columns if not c.primary_key}
    return ins.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[table.c.connection, table.c.source_id],
        set_=set_,
        where=excluded.modified_at >= table.c.modified_at,
    )


def _make_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) == 1:
        single = attrgetter(names[0])
        return lambda obj: (single(obj),)
    if not names:
        return lambda obj: ()
    return attrgetter(*names)  # type: ignore[return-value]


def _plan(object_type: ObjectType) -> KindPlan:
    cls = RECORD_TYPES[object_type]
    table = record_table(object_type)
    names = tuple(f.name for f in fields(cls))
    missing = [n for n in names if n not in table.c]
    if missing:
        raise RuntimeError(f"table {table.name} lacks columns for {cls.__name__} fields {missing}")
    mapped = tuple(n for n in names if n not in _UNHASHED)
    return KindPlan(
        object_type=object_type,
        record_cls=cls,
        table=table,
        field_names=names,
        mapped=mapped,
        get_all=_make_getter(names),
        get_mapped=_make_getter(mapped),
        has_currency=tuple(n for n in names if n in _CURRENCY_FIELDS),
        statements={d: _build_statement(table, d) for d in ("sqlite", "postgresql")},
    )


PLANS: dict[ObjectType, KindPlan] = {t: _plan(t) for t in RECORD_TYPES}


def plan_for(object_type: ObjectType | str) -> KindPlan:
    try:
        return PLANS[ObjectType(object_type)]
    except ValueError as exc:
        raise ModelError(f"unknown object type {object_type!r}") from exc


def content_hash(record: Record) -> str:
    """Hash of the record's mapped fields (see module docstring for what is left out)."""
    return PLANS[record.object_type].content_hash(record)


def build_rows(plan: KindPlan, records: Sequence[Record], synced_at: dt.datetime) -> list[dict[str, Any]]:
    """Parameter dicts for ``records`` (one kind), deduplicated by key (newest wins), in key order."""
    newest: dict[tuple[str, str], Record] = {}
    for record in records:
        key = (record.connection, record.source_id)
        seen = newest.get(key)
        if seen is None or record.modified_at >= seen.modified_at:
            newest[key] = record
    names = plan.field_names
    get_all = plan.get_all
    rows: list[dict[str, Any]] = []
    for key in sorted(newest):
        record = newest[key]
        if type(record) is not plan.record_cls:
            raise ModelError(f"{key}: expected {plan.record_cls.__name__}, got {type(record).__name__}")
        row = dict(zip(names, get_all(record), strict=True))
        for name in plan.has_currency:
            currency = row[name]
            if currency is not None and (type(currency) is not str or len(currency) != 3):
                raise ModelError(
                    f"{plan.object_type.value} {record.connection}/{record.source_id}: "
                    f"{name} {currency!r} is not a 3-letter code"
                )
        row["synced_at"] = synced_at
        row["content_hash"] = plan.content_hash(record)
        rows.append(row)
    return rows


def upsert_records(conn: Connection, records: Sequence[Record], synced_at: dt.datetime) -> int:
    """Write ``records`` (kinds may be mixed). Returns how many rows were inserted or updated
    (stale incoming rows are not counted)."""
    by_kind: dict[ObjectType, list[Record]] = {}
    for record in records:
        by_kind.setdefault(record.object_type, []).append(record)
    dialect_name = conn.dialect.name
    written = 0
    for object_type, group in by_kind.items():
        plan = PLANS[object_type]
        rows = build_rows(plan, group, synced_at)
        result = conn.execute(plan.statement(dialect_name), rows)
        written += result.rowcount if result.rowcount >= 0 else len(rows)
    return written
