"""Bulk upsert of canonical records: one ``INSERT .. ON CONFLICT (connection, source_id) DO UPDATE``
statement per kind (SQLAlchemy Core, sqlite / postgresql dialects), compiled once with positional
parameters and executed with prebuilt parameter tuples, no ORM objects on the way:

* SQLite: one multi-row ``INSERT .. VALUES (..), (..)`` per page (``store.sqlite_batch`` says why
  not ``executemany``: a GIL hand-over per row);
* PostgreSQL: the same, psycopg 3 runs ``executemany`` in pipeline mode (one round trip per page).
  Multi-row ``VALUES`` statements (100-1,000 rows each) measured 3-5x *slower* here than the
  pipelined executemany (bench/bench_store.py), so they are not used.

Parameter values are converted by the same helpers the column types use (``crmsync.store.types``),
so naive datetimes, non-Decimal money and malformed currencies are refused exactly as elsewhere.

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
from sqlalchemy import JSON, Connection, Date, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.sql.dml import Insert

from crmsync.model import RECORD_TYPES, ModelError, ObjectType, Record
from crmsync.store.clean import storable_json
from crmsync.store.sqlite_batch import execute_rows
from crmsync.store.tables import record_table
from crmsync.store.types import (
    ExactDecimal,
    UTCDateTime,
    aware_param,
    date_param,
    date_text,
    decimal_param,
    decimal_text,
    format_utc,
)

#: fields every record has; everything else a kind declares is "mapped"
COMMON_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record))
_UNHASHED = frozenset(COMMON_FIELDS)
_CURRENCY_FIELDS = frozenset({"currency"})


def _hash_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.normalize()) if value.is_finite() else str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"{type(value).__name__} is not hashable content")


# datetimes are serialised natively by orjson (ISO with their offset; connectors hand over UTC)
_HASH_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


Converter = Callable[[Any], Any]


def _converter(column_type: Any, dialect_name: str) -> Converter | None:
    """The parameter conversion a column needs on ``dialect_name`` (None: pass the value as is)."""
    sqlite_side = dialect_name == "sqlite"
    if isinstance(column_type, UTCDateTime):
        return format_utc if sqlite_side else aware_param
    if isinstance(column_type, ExactDecimal):
        return decimal_text if sqlite_side else decimal_param
    if isinstance(column_type, JSON):
        return storable_json  # NULs and surrogates cleaned with a note, the same on both stores
    if isinstance(column_type, Date):
        return date_text if sqlite_side else date_param
    return None


@dataclass(frozen=True)
class CompiledUpsert:
    """The upsert statement of one kind compiled for one dialect with positional parameters."""

    sql: str  # single-row statement, positional parameters (qmark / format)
    columns: tuple[str, ...]  # parameter order
    field_getter: Callable[[Any], tuple[Any, ...]]  # record fields in parameter order
    synced_at_index: int
    hash_index: int
    converters: tuple[tuple[int, Converter], ...]  # (position in the field tuple, converter)
    # (record, synced_at, content_hash) -> the parameter tuple: the same conversions as the loop over
    # ``converters``, written out as one function per kind and dialect (see ``_row_builder``)
    row_builder: Callable[[Any, Any, str], tuple[Any, ...]]


def _row_builder(columns: tuple[str, ...], converters: dict[str, Converter]) -> Callable[[Any, Any, str], tuple[Any, ...]]:
    """One function building a row's parameter tuple in ``columns`` order: ``synced_at`` and
    ``content_hash`` from its arguments, each other column the record's field of that name, through
    its converter when it has one and is not None. Generated once per kind (column names are the
    record's dataclass field names, checked as identifiers), it does per row what the generic loop
    does, without the loop: this runs for every record stored."""
    parts = []
    scope: dict[str, Any] = {}
    for name in columns:
        if not name.isidentifier():
            raise RuntimeError(f"column {name!r} is not an identifier")
        if name == "synced_at":
            parts.append("synced")
        elif name == "content_hash":
            parts.append("digest")
        elif name in converters:
            scope[f"c_{name}"] = converters[name]
            parts.append(f"(None if (v_{name} := r.{name}) is None else c_{name}(v_{name}))")
        else:
            parts.append(f"r.{name}")
    source = f"def build(r, synced, digest):\n    return ({', '.join(parts)},)\n"
    exec(compile(source, "<crmsync.store.upsert row builder>", "exec"), scope)  # noqa: S102 - names checked above
    return scope["build"]  # type: ignore[no-any-return]


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


_COMPILE_DIALECTS: dict[str, Any] = {
    "sqlite": pysqlite.dialect(paramstyle="qmark"),
    "postgresql": pg_psycopg.dialect(paramstyle="format"),
}


def _compile(table: Table, field_names: tuple[str, ...], dialect_name: str) -> CompiledUpsert:
    statement = _build_statement(table, dialect_name)
    compiled = statement.compile(dialect=_COMPILE_DIALECTS[dialect_name], column_keys=[c.name for c in table.columns])
    columns = tuple(compiled.positiontup or ())
    expected = set(field_names) | {"synced_at", "content_hash"}
    if set(columns) != expected or len(columns) != len(expected):
        raise RuntimeError(f"{table.name}: compiled parameters {columns} do not match fields {sorted(expected)}")
    sql = compiled.string
    field_order = tuple(c for c in columns if c not in ("synced_at", "content_hash"))
    converters = []
    by_name: dict[str, Converter] = {}
    for i, name in enumerate(field_order):
        conv = _converter(table.c[name].type, dialect_name)
        if conv is not None:
            converters.append((i, conv))
            by_name[name] = conv
    return CompiledUpsert(
        sql=sql,
        columns=columns,
        field_getter=_make_getter(field_order),
        synced_at_index=columns.index("synced_at"),
        hash_index=columns.index("content_hash"),
        converters=tuple(converters),
        row_builder=_row_builder(columns, by_name),
    )


@dataclass(frozen=True)
class KindPlan:
    """Everything about one kind that the hot path needs, computed once."""

    object_type: ObjectType
    record_cls: type[Record]
    table: Table
    field_names: tuple[str, ...]  # dataclass fields, in declaration order
    mapped: tuple[str, ...]  # fields that go into content_hash
    get_mapped: Callable[[Any], tuple[Any, ...]]
    currency_fields: tuple[str, ...]
    statements: dict[str, Insert]
    compiled: dict[str, CompiledUpsert]

    def content_hash(self, record: Record) -> str:
        payload = orjson.dumps(self.get_mapped(record), default=_hash_default, option=_HASH_OPTIONS)
        return hashlib.blake2b(payload, digest_size=16).hexdigest()

    def statement(self, dialect_name: str) -> Insert:
        """The Core upsert statement (for callers that want SQLAlchemy's own execution path)."""
        return self.statements[dialect_name]

    def to_record(self, values: Sequence[Any]) -> Record:
        return self.record_cls(**dict(zip(self.field_names, values, strict=True)))


def _plan(object_type: ObjectType) -> KindPlan:
    cls = RECORD_TYPES[object_type]
    table = record_table(object_type)
    names = tuple(f.name for f in fields(cls))
    missing = [n for n in names if n not in table.c]
    if missing:
        raise RuntimeError(f"table {table.name} lacks columns for {cls.__name__} fields {missing}")
    mapped = tuple(n for n in names if n not in _UNHASHED)
    dialects = ("sqlite", "postgresql")
    return KindPlan(
        object_type=object_type,
        record_cls=cls,
        table=table,
        field_names=names,
        mapped=mapped,
        get_mapped=_make_getter(mapped),
        currency_fields=tuple(n for n in names if n in _CURRENCY_FIELDS),
        statements={d: _build_statement(table, d) for d in dialects},
        compiled={d: _compile(table, names, d) for d in dialects},
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


def newest_by_key(records: Sequence[Record]) -> list[Record]:
    """One record per (connection, source_id), the newest by ``modified_at`` (the later one on
    equal timestamps), in key order."""
    newest: dict[tuple[str, str], Record] = {}
    for record in records:
        key = (record.connection, record.source_id)
        seen = newest.get(key)
        if seen is None or record.modified_at >= seen.modified_at:
            newest[key] = record
    return [newest[key] for key in sorted(newest)]


def _describe(record: Record) -> str:
    return f"{record.object_type.value} {record.connection}/{record.source_id}"


def build_params(plan: KindPlan, records: Sequence[Record], dialect_name: str, synced_at: dt.datetime) -> list[tuple[Any, ...]]:
    """Positional parameter tuples for ``records`` (all of ``plan``'s kind), ready for the driver."""
    compiled = plan.compiled[dialect_name]
    getter = compiled.field_getter
    converters = compiled.converters
    synced = format_utc(synced_at) if dialect_name == "sqlite" else aware_param(synced_at)
    build = compiled.row_builder
    record_cls = plan.record_cls
    currency_fields = plan.currency_fields
    content_hash_of = plan.content_hash
    out: list[tuple[Any, ...]] = []
    for record in records:
        if type(record) is not record_cls:
            raise ModelError(f"{_describe(record)}: expected {record_cls.__name__}, got {type(record).__name__}")
        for name in currency_fields:
            currency = getattr(record, name)
            if currency is not None and (type(currency) is not str or len(currency) != 3):
                raise ModelError(f"{_describe(record)}: {name} {currency!r} is not a 3-letter code", field=name)
        digest = content_hash_of(record)
        try:
            out.append(build(record, synced, digest))
            continue
        except (ModelError, TypeError):
            pass  # the loop below finds the field at fault and says so
        row = list(getter(record))
        i = -1
        try:
            for i, conv in converters:
                value = row[i]
                if value is not None:
                    row[i] = conv(value)
        except (ModelError, TypeError) as exc:
            names = [c for c in compiled.columns if c not in ("synced_at", "content_hash")]
            raise ModelError(f"{_describe(record)}: {exc}", field=names[i] if 0 <= i < len(names) else None) from exc
        raise ModelError(f"{_describe(record)}: refused by the row builder but not by its converters")
    return out


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
        compiled = plan.compiled[dialect_name]
        params = build_params(plan, newest_by_key(group), dialect_name, synced_at)
        if not params:
            continue
        if dialect_name == "sqlite":
            written += execute_rows(conn, compiled.sql, params)
        else:
            written += conn.exec_driver_sql(compiled.sql, params).rowcount
    return written
