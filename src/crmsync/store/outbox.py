"""The outbox's persistence: every SQL statement of the push path, in one module.

What lives here (the drain's *policy*, batching, backoff, matching answers, conflict and park
decisions, is ``crmsync.sync.outbox``):

* **rows** (``outbox``): ``OutboxItem``; ``enqueue`` (idempotent by key), ``update_item``,
  ``claim`` (orphaned ``in_flight`` rows first, then due ``pending`` rows, one (object, operation),
  one row per target record, committed ``in_flight`` with ``attempts + 1``), ``mark_done``,
  ``reset`` (the one code path of ``outbox retry`` and ``drop``), reads for the CLI, console,
  metrics and status;
* **the drain lease and the rate-limit pause** (``kv_state`` namespaces ``outbox.lease`` and
  ``outbox.pause``);
* **write memory**: the echo memory of crmsync's own writes (``outbox.writes``), the re-run markers
  of parked writes (``rules.rerun``) and the mirror links (``links``).

Functions take a SQLAlchemy ``Connection``: inside ``Store.transaction()`` pass ``tx.conn``; for
reads, ``store.engine.connect()``. This module imports nothing from the rest of the store's
public face (``repository`` builds on it), so it has no cycle with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from crmsync.errors import safe_text
from crmsync.model import ModelError, ObjectType, Record, now_utc, parse_timestamp, utc
from crmsync.store import tables as t
from crmsync.store.upsert import plan_for

LEASE_NS = "outbox.lease"
PAUSE_NS = "outbox.pause"
WRITES_NS = "outbox.writes"
RERUN_NS = "rules.rerun"
_IN_CHUNK = 500  # keys per IN (...) list


class OutboxOperation(StrEnum):
    UPDATE = "update"
    CREATE = "create"
    UPSERT = "upsert"
    DELETE = "delete"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"
    PARKED = "parked"
    DROPPED = "dropped"


@dataclass(slots=True, kw_only=True)
class OutboxItem:
    """One change to push. ``fields`` is stored as JSON: Decimal/datetime/date values come back as
    strings. ``source_id`` is None for creates (the CRM assigns it; it lands in ``result_id``)."""

    connection: str
    object_name: str
    operation: str
    fields: dict[str, Any]
    idempotency_key: str
    source_id: str | None = None
    based_on_modified_at: dt.datetime | None = None
    status: str = OutboxStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    result_id: str | None = None
    id: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        self.operation = OutboxOperation(self.operation).value
        self.status = OutboxStatus(self.status).value
        if not self.idempotency_key:
            raise ModelError("outbox: empty idempotency key")
        if self.operation in (OutboxOperation.UPDATE, OutboxOperation.DELETE) and not self.source_id:
            raise ModelError(f"outbox: {self.operation} needs a source_id")
        if self.based_on_modified_at is not None:
            self.based_on_modified_at = utc(self.based_on_modified_at, field_name="based_on_modified_at")


@dataclass(slots=True, frozen=True)
class Link:
    id: int
    left: tuple[str, str, str]  # (connection, object, id)
    right: tuple[str, str, str]
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Rerun:
    """A record whose write was parked on a conflict: the rules must decide again on new data."""

    connection: str
    object_type: str
    source_id: str
    outbox_id: int
    at: dt.datetime
    reason: str
    idempotency_key: str = ""


def item_from_row(row: Row[Any]) -> OutboxItem:
    m = row._mapping
    return OutboxItem(
        id=m["id"],
        connection=m["connection"],
        object_name=m["object_name"],
        source_id=m["source_id"],
        operation=m["operation"],
        fields=m["fields"],
        based_on_modified_at=m["based_on_modified_at"],
        idempotency_key=m["idempotency_key"],
        status=m["status"],
        attempts=m["attempts"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        result_id=m["result_id"],
    )


def _insert(conn: Connection, table: t.SATable) -> Any:
    return (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(table)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


# --- rows ---------------------------------------------------------------------------------------
def enqueue(conn: Connection, item: OutboxItem) -> bool:
    """Add a change to push; False (and nothing written) if the idempotency key exists.
    On success ``item.id`` is set to the new row's id."""
    now = now_utc()
    result = conn.execute(
        _insert(conn, t.outbox).values(
            connection=item.connection,
            object_name=item.object_name,
            source_id=item.source_id,
            operation=item.operation,
            fields=item.fields,
            based_on_modified_at=item.based_on_modified_at,
            idempotency_key=item.idempotency_key,
            status=item.status,
            attempts=item.attempts,
            last_error=item.last_error,
            created_at=item.created_at or now,
            updated_at=now,
            result_id=item.result_id,
        )
        .on_conflict_do_nothing(index_elements=[t.outbox.c.idempotency_key])
        .returning(t.outbox.c.id)
    )
    new_id = result.scalar_one_or_none()
    if new_id is None:
        return False
    item.id = int(new_id)
    return True


def update_item(conn: Connection, item_id: int, status: str, *, attempts: int | None = None,
                last_error: str | None = None, result_id: str | None = None) -> bool:
    values: dict[str, Any] = {"status": OutboxStatus(status).value, "updated_at": now_utc()}
    if attempts is not None:
        values["attempts"] = attempts
    if last_error is not None:
        values["last_error"] = safe_text(last_error)
    if result_id is not None:
        values["result_id"] = result_id
    result = conn.execute(update(t.outbox).where(t.outbox.c.id == item_id).values(**values))
    return result.rowcount > 0


def mark_done(conn: Connection, done: Sequence[tuple[int, str | None]], now: dt.datetime) -> None:
    """Book a batch of successful writes: ``(item id, the record's id in the CRM)``."""
    if not done:
        return
    c = t.outbox.c
    conn.execute(
        update(t.outbox).where(c.id == bindparam("item_id"))
        .values(status=OutboxStatus.DONE.value, result_id=bindparam("rid"), last_error=None, updated_at=now),
        [{"item_id": item_id, "rid": rid} for item_id, rid in done])


def reset(conn: Connection, *, to: OutboxStatus, item_id: int | None = None,
          only: Sequence[OutboxStatus] = (), never: Sequence[OutboxStatus] = (),
          connection: str | None = None, reset_attempts: bool = False) -> int:
    """Move rows to status ``to`` (one row by ``item_id``, or every row of ``connection`` / all);
    ``only`` and ``never`` restrict the statuses moved. Rows changed. ``outbox retry`` (back to
    pending, attempts reset) and ``drop`` (to dropped) both go through here."""
    c = t.outbox.c
    stmt = update(t.outbox)
    if item_id is not None:
        stmt = stmt.where(c.id == item_id)
    if connection is not None:
        stmt = stmt.where(c.connection == connection)
    if only:
        stmt = stmt.where(c.status.in_([s.value for s in only]))
    if never:
        stmt = stmt.where(c.status.notin_([s.value for s in never]))
    values: dict[str, Any] = {"status": to.value, "updated_at": now_utc()}
    if reset_attempts:
        values["attempts"] = 0
    return int(conn.execute(stmt.values(**values)).rowcount)


def due(now: dt.datetime, backoff: Callable[[int], float], cap_s: float) -> ColumnElement[bool]:
    """SQL: a pending row is due when its backoff (``backoff(attempts)`` seconds, at most
    ``cap_s``) since the last update has passed."""
    c = t.outbox.c
    terms: list[ColumnElement[bool]] = [c.attempts == 0]
    n = 1
    while backoff(n) < cap_s and n < 50:
        terms.append(and_(c.attempts == n, c.updated_at <= now - dt.timedelta(seconds=backoff(n))))
        n += 1
    terms.append(and_(c.attempts >= n, c.updated_at <= now - dt.timedelta(seconds=cap_s)))
    return or_(*terms)


def claim(conn: Connection, connection: str, want: int, *, due_clause: ColumnElement[bool],
          exclude: set[int], now: dt.datetime) -> tuple[list[OutboxItem], int]:
    """Orphaned in_flight rows first, then due pending rows: one (object, operation), at most one
    row per target record, marked in_flight with attempts + 1. Returns the items (as claimed) and
    how many were orphans. On PostgreSQL rows locked by another worker are skipped."""
    c = t.outbox.c
    eligible = and_(
        c.connection == connection,
        or_(c.status == OutboxStatus.IN_FLIGHT.value, and_(c.status == OutboxStatus.PENDING.value, due_clause)),
    )
    if exclude:
        eligible = and_(eligible, c.id.notin_(sorted(exclude)))
    head = conn.execute(select(c.object_name, c.operation).where(eligible).order_by(c.id).limit(1)).first()
    if head is None:
        return [], 0
    stmt = (select(t.outbox).where(eligible, c.object_name == head[0], c.operation == head[1])
            .order_by(c.id).limit(want * 2))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    items: list[OutboxItem] = []
    targets: set[str] = set()
    for row in conn.execute(stmt):
        item = item_from_row(row)
        target = item.source_id or item.idempotency_key
        if target in targets:
            continue  # a second write to the same record waits for the next batch
        targets.add(target)
        items.append(item)
        if len(items) >= want:
            break
    if not items:
        return [], 0
    conn.execute(
        update(t.outbox).where(c.id.in_([i.id for i in items]))
        .values(status=OutboxStatus.IN_FLIGHT.value, attempts=c.attempts + 1, updated_at=now))
    recovered = sum(1 for i in items if i.status == OutboxStatus.IN_FLIGHT.value)
    for item in items:
        item.status = OutboxStatus.IN_FLIGHT.value
        item.attempts += 1
    return items, recovered


def get_item(conn: Connection, item_id: int) -> OutboxItem | None:
    row = conn.execute(select(t.outbox).where(t.outbox.c.id == item_id)).first()
    return None if row is None else item_from_row(row)


def items(conn: Connection, *, connection: str | None = None, status: str | None = None,
          limit: int = 1000) -> list[OutboxItem]:
    """Rows oldest first, optionally of one connection and status."""
    c = t.outbox.c
    stmt = select(t.outbox).order_by(c.id).limit(limit)
    if connection is not None:
        stmt = stmt.where(c.connection == connection)
    if status is not None:
        stmt = stmt.where(c.status == OutboxStatus(status).value)
    return [item_from_row(r) for r in conn.execute(stmt)]


def newest_ids(conn: Connection, *, status: str | None = None, connection: str | None = None,
               limit: int = 200) -> list[int]:
    """Row ids newest first (the console's outbox page)."""
    c = t.outbox.c
    stmt = select(c.id).order_by(c.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(c.status == status)
    if connection:
        stmt = stmt.where(c.connection == connection)
    return [int(i) for (i,) in conn.execute(stmt)]


def ids_for_record(conn: Connection, connection: str, source_id: str, keys: Sequence[str],
                   *, limit: int = 200) -> list[int]:
    """Rows that write ``source_id`` or carry one of the idempotency ``keys``, oldest first."""
    c = t.outbox.c
    clauses = [c.source_id == source_id]
    if keys:
        clauses.append(c.idempotency_key.in_(keys))
    rows = conn.execute(select(c.id).where(c.connection == connection, or_(*clauses)).order_by(c.id).limit(limit))
    return [int(i) for (i,) in rows]


def idempotency_keys(conn: Connection, connections: Sequence[str]) -> set[str]:
    """Every idempotency key queued (in any status) for ``connections``."""
    c = t.outbox.c
    return {k for (k,) in conn.execute(select(c.idempotency_key).where(c.connection.in_(list(connections))))}


def created_by_decisions(conn: Connection, connection: str, *, rule_kind: str, action: str,
                         object_name: str) -> list[tuple[str, str, str, Any, str, Any]]:
    """Creates the CRM accepted for logged decisions of ``rule_kind`` / ``action``: (decision key,
    object type, source id, decision fields, the created record's id, the pushed fields)."""
    d, o = t.decisions.c, t.outbox.c
    stmt = (select(d.idempotency_key, d.object_type, d.source_id, d.fields, o.result_id, o.fields)
            .join(t.outbox, o.idempotency_key == d.idempotency_key)
            .where(and_(d.connection == connection, d.rule_kind == rule_kind, d.action == action,
                        o.object_name == object_name, o.operation == OutboxOperation.CREATE.value,
                        o.status == OutboxStatus.DONE.value, o.result_id.is_not(None))))
    return [(a, b, c, e, f, g) for a, b, c, e, f, g in conn.execute(stmt)]


def counts(conn: Connection, connection: str | None = None) -> dict[str, int]:
    """Items per status (statuses with no items are absent)."""
    c = t.outbox.c
    stmt = select(c.status, func.count()).group_by(c.status)
    if connection is not None:
        stmt = stmt.where(c.connection == connection)
    return {status: int(n) for status, n in conn.execute(stmt)}


def oldest_pending_at(conn: Connection) -> dt.datetime | None:
    c = t.outbox.c
    value = conn.execute(select(func.min(c.created_at)).where(c.status == OutboxStatus.PENDING.value)).scalar()
    return value if isinstance(value, dt.datetime) else None


def recent_errors(conn: Connection, connection: str | None = None, *, limit: int = 5) -> list[OutboxItem]:
    """Failed and parked items, most recently updated first."""
    c = t.outbox.c
    stmt = (select(t.outbox).where(c.status.in_([OutboxStatus.FAILED.value, OutboxStatus.PARKED.value]))
            .order_by(c.updated_at.desc(), c.id.desc()).limit(limit))
    if connection is not None:
        stmt = stmt.where(c.connection == connection)
    return [item_from_row(r) for r in conn.execute(stmt)]


# --- key/value rows of the push path (lease, pause, echo memory, re-runs) ------------------------
def _get(conn: Connection, namespace: str, key: str, *, for_update: bool = False) -> Any:
    c = t.kv_state.c
    stmt = select(c.value).where(c.namespace == namespace, c.key == key)
    if for_update and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).scalar_one_or_none()


def _put(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert ``kv_state`` rows (``namespace``, ``key``, ``value``, ``updated_at``)."""
    if not rows:
        return
    ins = _insert(conn, t.kv_state)
    conn.execute(ins.on_conflict_do_update(
        index_elements=[t.kv_state.c.namespace, t.kv_state.c.key],
        set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at}), list(rows))


def _delete(conn: Connection, namespace: str, key: str) -> bool:
    c = t.kv_state.c
    return conn.execute(delete(t.kv_state).where(c.namespace == namespace, c.key == key)).rowcount > 0


def _get_many(conn: Connection, namespace: str, keys: Iterable[str]) -> dict[str, Any]:
    c = t.kv_state.c
    out: dict[str, Any] = {}
    for chunk in _chunks(sorted(set(keys))):
        out.update({k: v for k, v in conn.execute(
            select(c.key, c.value).where(c.namespace == namespace, c.key.in_(chunk)))})
    return out


def acquire_lease(conn: Connection, connection: str, value: dict[str, Any],
                  is_free: Callable[[Any], bool]) -> bool:
    """Take the connection's drain lease when ``is_free(holder)`` says the current holder (None,
    or its stored value) may be replaced; the holder's row is locked until commit."""
    holder = _get(conn, LEASE_NS, connection, for_update=True)
    if not is_free(holder):
        return False
    write_lease(conn, connection, value)
    return True


def write_lease(conn: Connection, connection: str, value: dict[str, Any]) -> None:
    _put(conn, [{"namespace": LEASE_NS, "key": connection, "value": value, "updated_at": now_utc()}])


def release_lease(conn: Connection, connection: str, is_mine: Callable[[Any], bool]) -> None:
    holder = _get(conn, LEASE_NS, connection, for_update=True)
    if is_mine(holder):
        _delete(conn, LEASE_NS, connection)


def paused_until(conn: Connection, connection: str) -> dt.datetime | None:
    value = _get(conn, PAUSE_NS, connection)
    return parse_timestamp(value.get("until")) if isinstance(value, dict) else None


def pause(conn: Connection, connection: str, until: dt.datetime, reason: str) -> None:
    _put(conn, [{"namespace": PAUSE_NS, "key": connection, "updated_at": now_utc(),
                 "value": {"until": until.isoformat(), "reason": reason}}])


def write_key(connection: str, object_type: ObjectType | str, source_id: str) -> str:
    """The key of a record in the echo memory and the re-run markers: ``connection|type|id``."""
    return f"{connection}|{getattr(object_type, 'value', object_type)}|{source_id}"


def remembered_writes(conn: Connection, keys: Iterable[str]) -> dict[str, Any]:
    """Echo memory entries by write key (absent keys left out)."""
    return _get_many(conn, WRITES_NS, keys)


def remember_writes(conn: Connection, entries: Mapping[str, dict[str, Any]], now: dt.datetime) -> None:
    """Store echo memory entries (write key -> value), one upsert."""
    _put(conn, [{"namespace": WRITES_NS, "key": key, "updated_at": now, "value": value}
                for key, value in entries.items()])


def forget_writes(conn: Connection, connection: str) -> int:
    """Drop the echo memory of a connection."""
    c = t.kv_state.c
    res = conn.execute(delete(t.kv_state).where(
        c.namespace == WRITES_NS, c.key.startswith(f"{connection}|", autoescape=True)))
    return int(res.rowcount)


def stored_records(conn: Connection, object_type: ObjectType, connection: str,
                   ids: Sequence[str]) -> dict[str, Record]:
    """The stored records of ``ids`` (what a write's echo is compared with), by source id."""
    kind = plan_for(object_type)
    table = kind.table
    cols = [table.c[n] for n in kind.field_names]
    out: dict[str, Record] = {}
    for chunk in _chunks(sorted(set(ids))):
        stmt = select(*cols).where(table.c.connection == connection, table.c.source_id.in_(chunk))
        for row in conn.execute(stmt):
            record = kind.to_record(row)
            out[record.source_id] = record
    return out


def mark_rerun(conn: Connection, connection: str, object_type: ObjectType | str, source_id: str,
               *, outbox_id: int | None, at: dt.datetime, reason: str, idempotency_key: str) -> None:
    _put(conn, [{"namespace": RERUN_NS, "key": write_key(connection, object_type, source_id), "updated_at": now_utc(),
                 "value": {"outbox_id": outbox_id, "at": at.isoformat(), "reason": reason, "key": idempotency_key}}])


def clear_rerun(conn: Connection, connection: str, object_type: ObjectType | str, source_id: str) -> bool:
    return _delete(conn, RERUN_NS, write_key(connection, object_type, source_id))


def pending_reruns(conn: Connection, connection: str | None = None) -> list[Rerun]:
    c = t.kv_state.c
    stmt = select(c.key, c.value).where(c.namespace == RERUN_NS).order_by(c.key)
    if connection is not None:
        stmt = stmt.where(c.key.startswith(f"{connection}|", autoescape=True))
    out = []
    for key, value in list(conn.execute(stmt)):
        conn_name, object_type, source_id = key.split("|", 2)
        at = parse_timestamp(value.get("at")) or now_utc()
        out.append(Rerun(conn_name, object_type, source_id, int(value.get("outbox_id", 0)), at,
                         str(value.get("reason", "")), str(value.get("key", ""))))
    return out


# --- mirror links -------------------------------------------------------------------------------
def link(conn: Connection, left: tuple[str, str, str], right: tuple[str, str, str]) -> int:
    """Record that ``left`` (connection, object, id) mirrors ``right``; returns the link id.
    Each side can be linked once (IntegrityError otherwise)."""
    result = conn.execute(
        insert(t.links)
        .values(
            left_connection=left[0],
            left_object=left[1],
            left_id=left[2],
            right_connection=right[0],
            right_object=right[1],
            right_id=right[2],
            created_at=now_utc(),
        )
        .returning(t.links.c.id)
    )
    return int(result.scalar_one())


def find_link(conn: Connection, connection: str, object_name: str, source_id: str) -> Link | None:
    c = t.links.c
    row = conn.execute(
        select(t.links).where(
            or_(
                and_(c.left_connection == connection, c.left_object == object_name, c.left_id == source_id),
                and_(c.right_connection == connection, c.right_object == object_name, c.right_id == source_id),
            )
        )
    ).first()
    if row is None:
        return None
    m = row._mapping
    return Link(
        id=m["id"],
        left=(m["left_connection"], m["left_object"], m["left_id"]),
        right=(m["right_connection"], m["right_object"], m["right_id"]),
        created_at=m["created_at"],
    )


def deal_links(conn: Connection, connections: Sequence[str]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Links between deals of ``connections``: ``((left connection, id), (right connection, id))``."""
    c = t.links.c
    stmt = select(c.left_connection, c.left_id, c.right_connection, c.right_id).where(
        c.left_object == ObjectType.DEAL.value,
        or_(and_(c.left_connection.in_(connections), c.right_connection.in_(connections))))
    return [((a, b), (x, y)) for a, b, x, y in conn.execute(stmt)]
