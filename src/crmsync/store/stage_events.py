"""Stage history of deals: one row per deal entering a stage (``stage_events``).

Two sources feed it, both inside the transaction that writes a page of deals:

* **the CRM's own history**: what the connector's ``stage_histories`` read for the page (see
  ``crmsync.connectors.stage_history``), or ``deal.extra["stage_history"]`` as a list of
  ``{"stage_id": ..., "at": iso}`` (oldest first); every entry becomes an event (``source="history"``).
* **changes seen on pull**: otherwise the page's deals are compared with the stored rows (one
  ``SELECT`` per page, before the upsert). A deal seen for the first time gets ``None -> stage`` at
  ``stage_changed_at`` (else ``created_at``); a deal whose stage differs from the stored one gets
  ``stored -> new`` at ``stage_changed_at`` (else ``modified_at``). Stale rows (older than the
  stored one, which the upsert ignores) and deleted rows make no event. Moves that leave and come
  back between two pulls cannot be seen this way.

Events are keyed ``(connection, deal_id, at, to_stage_id)`` and inserted with ``ON CONFLICT DO
NOTHING``, so re-pulling a page, or a history that repeats what a pull already saw, adds nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.dialects.sqlite import pysqlite

from crmsync.model import UTC, Deal, ModelError, Record, now_utc, parse_timestamp
from crmsync.store import tables as t
from crmsync.store.sqlite_batch import execute_rows
from crmsync.store.types import aware_param, format_utc

HISTORY_KEY = "stage_history"
_LOOKUP_CHUNK = 2_000  # ids per look-up; a normal page is one query


@dataclass(frozen=True, slots=True)
class StageEvent:
    """A deal entering ``to_stage_id`` at ``at`` (tz-aware UTC); ``from_stage_id`` None when unknown."""

    connection: str
    deal_id: str
    pipeline_id: str | None
    from_stage_id: str | None
    to_stage_id: str
    at: dt.datetime
    source: str = "sync"  # sync | history

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ModelError(f"stage event {self.connection}/{self.deal_id}: naive timestamp {self.at.isoformat()}")


@dataclass(frozen=True, slots=True)
class _Stored:
    stage_id: str | None
    modified_at: dt.datetime


def history_events(deal: Deal, history: Sequence[Any] | None = None) -> list[StageEvent]:
    """Events from ``history`` (entries with ``stage_id`` and ``at``, e.g. a connector's
    ``StageEntry``s) or else ``deal.extra["stage_history"]``; empty when there is neither."""
    raw: Any = history if history is not None else (deal.extra.get(HISTORY_KEY) if deal.extra else None)
    if not raw or not isinstance(raw, list | tuple):
        return []
    entries: list[tuple[dt.datetime, str]] = []
    for item in raw:
        if isinstance(item, Mapping):
            stage_id, when = item.get("stage_id"), item.get("at")
        else:
            stage_id, when = getattr(item, "stage_id", None), getattr(item, "at", None)
        if stage_id in (None, ""):
            continue
        at = when if isinstance(when, dt.datetime) else parse_timestamp(when, field_name=f"{HISTORY_KEY}.at")
        if at is not None:
            entries.append((at, str(stage_id)))
    entries.sort(key=lambda e: e[0])
    events: list[StageEvent] = []
    previous: str | None = None
    for at, stage_id in entries:
        if stage_id != previous:
            events.append(StageEvent(deal.connection, deal.source_id, deal.pipeline_id, previous, stage_id, at,
                                     "history"))
        previous = stage_id
    return events


def _newest(deals: Iterable[Any]) -> dict[tuple[str, str], Deal]:
    newest: dict[tuple[str, str], Deal] = {}
    for deal in deals:
        key = (deal.connection, deal.source_id)
        seen = newest.get(key)
        if seen is None or deal.modified_at >= seen.modified_at:
            newest[key] = deal
    return newest


def _stored_stages(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], _Stored]:
    deals = t.record_table("deal")
    sqlite_side = conn.dialect.name == "sqlite"
    wanted: ColumnElement[bool]
    if sqlite_side:  # one JSON parameter: no IN list to render each time
        wanted = deals.c.source_id.in_(select(func.json_each(bindparam("ids")).table_valued("value").c.value))
    else:  # one array parameter: an index scan (a long IN list was not)
        wanted = deals.c.source_id == any_(bindparam("ids", type_=postgresql.ARRAY(String())))
    stmt = select(deals.c.source_id, deals.c.stage_id, deals.c.modified_at).where(
        deals.c.connection == bindparam("connection"), wanted
    )
    by_connection: dict[str, list[str]] = {}
    for connection, source_id in keys:
        by_connection.setdefault(connection, []).append(source_id)
    out: dict[tuple[str, str], _Stored] = {}
    for connection, ids in by_connection.items():
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            rows = conn.execute(stmt, {"connection": connection,
                                       "ids": orjson.dumps(chunk).decode() if sqlite_side else chunk})
            for source_id, stage_id, modified_at in rows:
                out[(connection, source_id)] = _Stored(stage_id, modified_at)
    return out


#: an event as the insert takes it: (connection, deal_id, pipeline_id, from_stage_id, to_stage_id, at, source)
EventRow = tuple[str, str, "str | None", "str | None", str, dt.datetime, str]


def events_for_page(conn: Connection, records: Sequence[Record],
                    histories: Mapping[str, Sequence[Any]] | None = None) -> list[StageEvent]:
    """The events a page of deals implies, against what ``conn`` has stored (call before the upsert).
    ``histories`` (deal id -> the CRM's history, oldest first) wins over comparing with the store.
    Records of other kinds are ignored."""
    return [StageEvent(*row) for row in _event_rows(conn, records, histories)]


def _event_rows(conn: Connection, records: Sequence[Record],
                histories: Mapping[str, Sequence[Any]] | None) -> list[EventRow]:
    """``events_for_page`` as plain tuples (a page of new deals is one event per deal: the insert
    takes tuples, so no event object is built for it); timestamps checked as ``StageEvent`` does."""
    newest = _newest(d for d in records if type(d) is Deal and not d.deleted)
    if not newest:
        return []
    rows: list[EventRow] = []
    compare: list[tuple[Deal, str]] = []
    for deal in newest.values():
        history = history_events(deal, histories.get(deal.source_id) if histories else None)
        if history:
            rows.extend((e.connection, e.deal_id, e.pipeline_id, e.from_stage_id, e.to_stage_id, e.at, e.source)
                        for e in history)
        elif deal.stage_id is not None:
            compare.append((deal, deal.stage_id))
    if not compare:
        return rows
    stored = _stored_stages(conn, [(d.connection, d.source_id) for d, _ in compare])
    for deal, stage_id in compare:
        before = stored.get((deal.connection, deal.source_id))
        if before is None:
            at = deal.stage_changed_at or deal.created_at or deal.modified_at
            from_stage = None
        elif deal.modified_at >= before.modified_at and before.stage_id != stage_id:
            at = deal.stage_changed_at or deal.modified_at
            from_stage = before.stage_id
        else:
            continue
        if at.tzinfo is not UTC and (at.tzinfo is None or at.utcoffset() is None):
            raise ModelError(f"stage event {deal.connection}/{deal.source_id}: naive timestamp {at.isoformat()}")
        rows.append((deal.connection, deal.source_id, deal.pipeline_id, from_stage, stage_id, at, "sync"))
    return rows


_INSERT_COLUMNS = ("connection", "deal_id", "pipeline_id", "from_stage_id", "to_stage_id", "at", "source",
                   "recorded_at")
_COMPILE_DIALECTS: dict[str, Any] = {
    "sqlite": pysqlite.dialect(paramstyle="qmark"),
    "postgresql": pg_psycopg.dialect(paramstyle="format"),
}


@functools.cache
def _insert_sql(dialect_name: str) -> str:
    """``INSERT .. ON CONFLICT DO NOTHING`` compiled once with positional parameters in
    ``_INSERT_COLUMNS`` order (run with the driver's executemany, like the record upserts)."""
    table = t.stage_events
    module: Any = sqlite if dialect_name == "sqlite" else postgresql
    stmt = module.insert(table).on_conflict_do_nothing(
        index_elements=[table.c.connection, table.c.deal_id, table.c.at, table.c.to_stage_id]
    )
    compiled = stmt.compile(dialect=_COMPILE_DIALECTS[dialect_name], column_keys=list(_INSERT_COLUMNS))
    if tuple(compiled.positiontup or ()) != _INSERT_COLUMNS:
        raise RuntimeError(f"stage_events insert compiled to parameters {compiled.positiontup}")
    return compiled.string


def insert_events(conn: Connection, events: Sequence[StageEvent], *, recorded_at: dt.datetime | None = None) -> int:
    """Append events (duplicates of ``(connection, deal_id, at, to_stage_id)`` are skipped);
    returns how many rows were added."""
    return _insert_rows(conn, [(e.connection, e.deal_id, e.pipeline_id, e.from_stage_id, e.to_stage_id, e.at, e.source)
                               for e in events], recorded_at)


def _insert_rows(conn: Connection, rows: Sequence[EventRow], recorded_at: dt.datetime | None = None) -> int:
    if not rows:
        return 0
    dialect_name = conn.dialect.name
    stamp: Callable[[Any], Any] = format_utc if dialect_name == "sqlite" else aware_param
    recorded = stamp(recorded_at or now_utc())
    params = [(c, d, p, f, to, stamp(at), s, recorded) for c, d, p, f, to, at, s in rows]
    if dialect_name == "sqlite":  # one statement, not a GIL hand-over per row (``store.sqlite_batch``)
        return execute_rows(conn, _insert_sql(dialect_name), params)
    result = conn.exec_driver_sql(_insert_sql(dialect_name), params)
    return max(result.rowcount, 0)


def record_stage_events(conn: Connection, deals: Sequence[Record],
                        histories: Mapping[str, Sequence[Any]] | None = None) -> int:
    """Compute and append the events of a page of deals; returns rows added. Call inside the page's
    transaction *before* upserting the deals."""
    return _insert_rows(conn, _event_rows(conn, deals, histories))


def iter_stage_events(
    engine: Engine | Connection,
    *,
    connection: str | None = None,
    pipeline_id: str | None = None,
    since: dt.datetime | None = None,
) -> Iterator[StageEvent]:
    """Stored events ordered by (connection, deal_id, at, id); ``since`` is inclusive on ``at``."""
    c = t.stage_events.c
    stmt = select(c.connection, c.deal_id, c.pipeline_id, c.from_stage_id, c.to_stage_id, c.at, c.source)
    if connection is not None:
        stmt = stmt.where(c.connection == connection)
    if pipeline_id is not None:
        stmt = stmt.where(c.pipeline_id == pipeline_id)
    if since is not None:
        stmt = stmt.where(c.at >= since)
    stmt = stmt.order_by(c.connection, c.deal_id, c.at, c.id)
    if isinstance(engine, Connection):
        yield from _rows(engine, stmt)
        return
    with engine.connect() as conn:
        yield from _rows(conn, stmt)


def _rows(conn: Connection, stmt: Any) -> Iterator[StageEvent]:
    result = conn.execution_options(stream_results=True, yield_per=5_000).execute(stmt)
    for row in result:
        yield StageEvent(*row)


def count_stage_events(engine: Engine, connection: str | None = None) -> int:
    c = t.stage_events.c
    stmt = select(func.count()).select_from(t.stage_events)
    if connection is not None:
        stmt = stmt.where(c.connection == connection)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


__all__ = [
    "HISTORY_KEY",
    "StageEvent",
    "count_stage_events",
    "events_for_page",
    "history_events",
    "insert_events",
    "iter_stage_events",
    "record_stage_events",
]
