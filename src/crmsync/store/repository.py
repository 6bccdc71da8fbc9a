"""The store's public face: ``Store`` (reads, small writes in their own transaction, schema upgrade)
and ``Transaction`` (the unit of work: records, cursor, quarantine, outbox, decisions in one commit).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from crmsync.errors import bound, safe_text
from crmsync.model import ObjectType, Record, now_utc, utc
from crmsync.store import outbox as outbox_rows
from crmsync.store import tables as t
from crmsync.store.clean import clean_json
from crmsync.store.engine import WRITE_OPTION, StoreError, create_store_engine
from crmsync.store.outbox import Link, OutboxItem, OutboxStatus
from crmsync.store.owners import current_owner, owner_is_gone
from crmsync.store.types import UTCDateTime
from crmsync.store.upsert import plan_for, upsert_records

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_REVISION = re.compile(r"^revision(?:\s*:\s*str)?\s*=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN_REVISION = re.compile(r"^down_revision(?:\s*:[^=\n]*)?\s*=\s*(?:None\b|[\"']([^\"']+)[\"'])", re.M)


@functools.lru_cache(maxsize=1)
def shipped_head() -> str | None:
    """The head of the migration chain, read from the version files' text without importing alembic
    (None when that is not one plain chain, e.g. a merge: then alembic decides)."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        if down.group(1):
            downs.add(down.group(1))
    heads = revisions - downs
    return next(iter(heads)) if len(heads) == 1 else None
_IN_CHUNK = 500  # ids per IN (...) list


class RunKind(StrEnum):
    SYNC = "sync"
    BACKFILL = "backfill"
    RULES = "rules"
    SWEEP = "sweep"
    PUSH = "push"
    BILLING = "billing"
    STATE = "state"  # an operator's change to a cursor or backfill window (crmsync state set|clear)


class RunStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"  # its process was killed before it finished (see ``mark_interrupted_runs``)


@dataclass(slots=True, kw_only=True)
class Decision:
    """One decision-log entry (what a rule decided about a record, and why)."""

    rule_kind: str
    rule_name: str
    connection: str
    object_type: str
    source_id: str | None
    action: str
    fields: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    run_id: int | None = None
    rule_set_hash: str | None = None
    created_at: dt.datetime | None = None
    id: int | None = None
    idempotency_key: str | None = None


@dataclass(slots=True, frozen=True)
class RunInfo:
    id: int
    kind: str
    connection: str | None
    object_name: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    counts: dict[str, Any]
    error: str | None
    owner: str | None = None


@dataclass(slots=True, frozen=True)
class CursorInfo:
    connection: str
    object_name: str
    cursor: dict[str, Any]
    updated_at: dt.datetime


@dataclass(slots=True, frozen=True)
class QuarantineEntry:
    id: int
    connection: str
    object_name: str
    source_id: str | None
    payload: dict[str, Any]
    reason: str
    created_at: dt.datetime
    resolved: bool
    field: str | None = None


@dataclass(slots=True, frozen=True)
class RuleSetInfo:
    hash: str
    applied_at: dt.datetime
    author: str | None
    source: str


def _decision_row(d: Decision, now: dt.datetime) -> dict[str, Any]:
    return {
        "run_id": d.run_id,
        "rule_set_hash": d.rule_set_hash,
        "rule_kind": d.rule_kind,
        "rule_name": d.rule_name,
        "connection": d.connection,
        "object_type": str(d.object_type),
        "source_id": d.source_id,
        "action": d.action,
        "fields": d.fields,
        "reason": d.reason,
        "created_at": d.created_at or now,
        "idempotency_key": d.idempotency_key,
    }


#: a quarantine reason is kept to this many characters (the payload holds the values)
MAX_REASON_CHARS = 1_000


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _dialect_insert(conn: Connection, table: t.SATable) -> Any:
    return (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(table)


class Transaction:
    """One database transaction (commit on leaving ``Store.transaction()``, rollback on error)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- records ---------------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> int:
        """Bulk upsert (kinds may be mixed); last write by ``modified_at`` wins, equal timestamps
        update. Returns the number of rows inserted or updated."""
        if not records:
            return 0
        return upsert_records(self.conn, records, now_utc())

    def mark_deleted(
        self, object_type: ObjectType | str, connection: str, source_ids: Iterable[str], at: dt.datetime | None
    ) -> int:
        """Flag records as deleted at ``at`` (``modified_at`` moves forward to ``at`` if older, so a
        stale re-pull does not resurrect them; a newer one does). ``at=None`` (a deletion with no
        known time: the hard-delete sweep) leaves ``modified_at`` as it is, so the version the CRM
        lists again later, even with the stamp it had, is live again. Returns rows changed."""
        table = plan_for(object_type).table
        stamp: Any = table.c.modified_at
        if at is not None:
            at = utc(at, field_name="at")
            stamp = case((table.c.modified_at < at, literal(at, UTCDateTime())), else_=table.c.modified_at)
        ids = sorted(set(source_ids))
        changed = 0
        now = now_utc()
        for chunk in _chunks(ids):
            result = self.conn.execute(
                update(table)
                .where(table.c.connection == connection, table.c.source_id.in_(chunk), ~table.c.deleted)
                .values(deleted=True, synced_at=now, modified_at=stamp)
            )
            changed += result.rowcount
        return changed

    def child_ids(self, object_type: ObjectType | str, connection: str, parent_field: str,
                  parent_ids: Iterable[str]) -> set[str]:
        """Live (not deleted) source ids of ``object_type`` whose ``parent_field`` is one of ``parent_ids``."""
        table = plan_for(object_type).table
        parent = table.c[parent_field]
        out: set[str] = set()
        for chunk in _chunks(sorted(set(parent_ids))):
            out.update(self.conn.execute(select(table.c.source_id).where(
                table.c.connection == connection, parent.in_(chunk), ~table.c.deleted)).scalars())
        return out

    def content_hashes(self, object_type: ObjectType | str, connection: str, source_ids: Iterable[str]) -> dict[str, str]:
        """Stored ``content_hash`` per source id (missing ids are absent), to tell changes from echoes."""
        table = plan_for(object_type).table
        out: dict[str, str] = {}
        for chunk in _chunks(sorted(set(source_ids))):
            rows = self.conn.execute(
                select(table.c.source_id, table.c.content_hash).where(
                    table.c.connection == connection, table.c.source_id.in_(chunk)
                )
            )
            out.update({r[0]: r[1] for r in rows})
        return out

    def get(self, object_type: ObjectType | str, connection: str, source_id: str) -> Record | None:
        plan = plan_for(object_type)
        cols = [plan.table.c[n] for n in plan.field_names]
        row = self.conn.execute(
            select(*cols).where(plan.table.c.connection == connection, plan.table.c.source_id == source_id)
        ).first()
        return None if row is None else plan.to_record(row)

    # --- cursors ---------------------------------------------------------------------------
    def save_cursor(self, connection: str, object_name: str, cursor: dict[str, Any]) -> None:
        ins = _dialect_insert(self.conn, t.sync_cursors)
        now = now_utc()
        self.conn.execute(
            ins.values(connection=connection, object_name=object_name, cursor=cursor, updated_at=now).on_conflict_do_update(
                index_elements=[t.sync_cursors.c.connection, t.sync_cursors.c.object_name],
                set_={"cursor": ins.excluded.cursor, "updated_at": ins.excluded.updated_at},
            )
        )

    def load_cursor(self, connection: str, object_name: str) -> dict[str, Any] | None:
        c = t.sync_cursors.c
        value = self.conn.execute(
            select(c.cursor).where(c.connection == connection, c.object_name == object_name)
        ).scalar_one_or_none()
        return value  # type: ignore[no-any-return]

    def delete_cursor(self, connection: str, object_name: str) -> bool:
        c = t.sync_cursors.c
        result = self.conn.execute(
            delete(t.sync_cursors).where(c.connection == connection, c.object_name == object_name)
        )
        return result.rowcount > 0

    # --- quarantine ------------------------------------------------------------------------
    def quarantine(
        self, connection: str, object_name: str, source_id: str | None, payload: dict[str, Any], reason: str,
        *, field: str | None = None,
    ) -> int:
        """Park a payload that could not become a record; returns the quarantine id.

        A record has at most one open entry: quarantining it again (the next cycle re-reads it)
        replaces the open one. The payload is stored as both stores take it (``clean_json``) and
        the reason is bounded."""
        c = t.quarantine.c
        if source_id is not None:
            self.conn.execute(delete(t.quarantine).where(
                c.connection == connection, c.object_name == object_name, c.source_id == source_id, ~c.resolved))
        result = self.conn.execute(
            insert(t.quarantine)
            .values(
                connection=connection,
                object_name=object_name,
                source_id=source_id,
                payload=clean_json(payload, "payload"),
                reason=bound(reason, MAX_REASON_CHARS),
                field=field,
                created_at=now_utc(),
                resolved=False,
            )
            .returning(t.quarantine.c.id)
        )
        return int(result.scalar_one())

    def resolve_quarantined_ids(self, connection: str, object_name: str, source_ids: Sequence[str]) -> int:
        """Records that have now been stored: their open quarantine entries are resolved."""
        c = t.quarantine.c
        open_entry = select(c.id).where(c.connection == connection, c.object_name == object_name, ~c.resolved).limit(1)
        if self.conn.execute(open_entry).first() is None:
            return 0  # nothing open for this object (every page of a clean backfill): no per-id update
        changed = 0
        for chunk in _chunks(sorted(set(source_ids))):
            changed += self.conn.execute(update(t.quarantine).where(
                c.connection == connection, c.object_name == object_name, c.source_id.in_(chunk), ~c.resolved
            ).values(resolved=True)).rowcount
        return changed

    def resolve_quarantine(self, quarantine_id: int) -> bool:
        result = self.conn.execute(
            update(t.quarantine).where(t.quarantine.c.id == quarantine_id).values(resolved=True)
        )
        return result.rowcount > 0

    # --- outbox (SQL in ``crmsync.store.outbox``) -------------------------------------------
    def enqueue(self, item: OutboxItem) -> bool:
        """Add a change to push; False (and nothing written) if the idempotency key exists.
        On success ``item.id`` is set to the new row's id."""
        return outbox_rows.enqueue(self.conn, item)

    def update_outbox(
        self,
        item_id: int,
        status: str,
        *,
        attempts: int | None = None,
        last_error: str | None = None,
        result_id: str | None = None,
    ) -> bool:
        return outbox_rows.update_item(self.conn, item_id, status, attempts=attempts, last_error=last_error,
                                       result_id=result_id)

    # --- decisions and rule sets -----------------------------------------------------------
    def log_decision(
        self,
        *,
        rule_kind: str,
        rule_name: str,
        connection: str,
        object_type: str,
        source_id: str | None,
        action: str,
        fields: dict[str, Any] | None = None,
        reason: str | None = None,
        run_id: int | None = None,
        rule_set_hash: str | None = None,
        created_at: dt.datetime | None = None,
    ) -> int:
        """Append one decision; returns its id."""
        decision = Decision(
            rule_kind=rule_kind,
            rule_name=rule_name,
            connection=connection,
            object_type=object_type,
            source_id=source_id,
            action=action,
            fields=fields or {},
            reason=reason,
            run_id=run_id,
            rule_set_hash=rule_set_hash,
            created_at=utc(created_at, field_name="created_at") if created_at else None,
        )
        result = self.conn.execute(
            insert(t.decisions).values(**_decision_row(decision, now_utc())).returning(t.decisions.c.id)
        )
        return int(result.scalar_one())

    def log_decisions(self, decisions: Sequence[Decision]) -> int:
        """Append many decisions in one executemany; returns how many."""
        if not decisions:
            return 0
        now = now_utc()
        self.conn.execute(insert(t.decisions), [_decision_row(d, now) for d in decisions])
        return len(decisions)

    def record_rule_set(
        self, rule_set_hash: str, source: str, *, author: str | None = None, applied_at: dt.datetime | None = None
    ) -> bool:
        """Remember an applied rule-set version; False if that hash is already recorded."""
        ins = _dialect_insert(self.conn, t.rule_sets)
        result = self.conn.execute(
            ins.values(
                hash=rule_set_hash,
                source=source,
                author=author,
                applied_at=utc(applied_at, field_name="applied_at") if applied_at else now_utc(),
            )
            .on_conflict_do_nothing(index_elements=[t.rule_sets.c.hash])
            .returning(t.rule_sets.c.hash)
        )
        return result.scalar_one_or_none() is not None

    # --- links (SQL in ``crmsync.store.outbox``) --------------------------------------------
    def link(self, left: tuple[str, str, str], right: tuple[str, str, str]) -> int:
        """Record that ``left`` (connection, object, id) mirrors ``right``; returns the link id.
        Each side can be linked once (IntegrityError otherwise)."""
        return outbox_rows.link(self.conn, left, right)

    def find_link(self, connection: str, object_name: str, source_id: str) -> Link | None:
        return outbox_rows.find_link(self.conn, connection, object_name, source_id)

    # --- key/value state -------------------------------------------------------------------
    def set_state(self, namespace: str, key: str, value: Any) -> None:
        ins = _dialect_insert(self.conn, t.kv_state)
        self.conn.execute(
            ins.values(namespace=namespace, key=key, value=value, updated_at=now_utc()).on_conflict_do_update(
                index_elements=[t.kv_state.c.namespace, t.kv_state.c.key],
                set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
            )
        )

    def add_state_once(self, namespace: str, key: str, value: Any) -> bool:
        """Insert ``key`` unless it exists; True when this call inserted it (atomic across workers)."""
        ins = _dialect_insert(self.conn, t.kv_state)
        result = self.conn.execute(ins.values(namespace=namespace, key=key, value=value, updated_at=now_utc())
                                   .on_conflict_do_nothing(index_elements=[t.kv_state.c.namespace, t.kv_state.c.key])
                                   .returning(t.kv_state.c.key))
        return result.scalar_one_or_none() is not None  # (rowcount is not reliable here on psycopg)

    def delete_state_before(self, namespace: str, before: dt.datetime) -> int:
        """Delete the keys of ``namespace`` last written before ``before``."""
        c = t.kv_state.c
        return self.conn.execute(delete(t.kv_state).where(c.namespace == namespace,
                                                          c.updated_at < utc(before, field_name="before"))).rowcount

    def get_state(self, namespace: str, key: str, *, for_update: bool = False) -> Any:
        """The stored value or None. ``for_update`` locks the row until commit on PostgreSQL (on
        SQLite the write transaction already holds the database write lock)."""
        c = t.kv_state.c
        stmt = select(c.value).where(c.namespace == namespace, c.key == key)
        if for_update and self.conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return self.conn.execute(stmt).scalar_one_or_none()

    def lock_state(self, namespace: str, key: str, default: Any) -> Any:
        """The value under a row lock held until commit, creating it as ``default`` first if missing.

        For read-modify-write of a shared counter: on PostgreSQL a bare ``SELECT`` then upsert lets
        two transactions read the same value and one increment is lost; here the row exists before
        it is locked, so the second transaction waits for the first and reads its result (on
        SQLite the ``BEGIN IMMEDIATE`` write transaction already serialises writers)."""
        ins = _dialect_insert(self.conn, t.kv_state)
        self.conn.execute(ins.values(namespace=namespace, key=key, value=default, updated_at=now_utc())
                          .on_conflict_do_nothing(index_elements=[t.kv_state.c.namespace, t.kv_state.c.key]))
        return self.get_state(namespace, key, for_update=True)

    def delete_state(self, namespace: str, key: str) -> bool:
        c = t.kv_state.c
        result = self.conn.execute(delete(t.kv_state).where(c.namespace == namespace, c.key == key))
        return result.rowcount > 0


class Store:
    """Persistence for canonical records and the worker's operational state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, **engine_kwargs: Any) -> Store:
        """Create the engine (SQLite: WAL, synchronous=NORMAL, busy_timeout; PostgreSQL: psycopg 3)."""
        return cls(create_store_engine(url, **engine_kwargs))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- schema ----------------------------------------------------------------------------
    def _alembic_config(self, conn: Connection) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Apply the migrations up to ``revision`` (idempotent). A store already at the shipped head
        is left alone without loading alembic and the migration scripts (about 8 MB a process)."""
        if revision == "head" and self._at_shipped_head():
            return
        from alembic import command

        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if conn.dialect.name == "postgresql":  # one migrator at a time across workers
                    conn.execute(text("SELECT pg_advisory_xact_lock(7265734)"))
                command.upgrade(self._alembic_config(conn), revision)

    def _at_shipped_head(self) -> bool:
        from sqlalchemy.exc import SQLAlchemyError

        head = shipped_head()
        if head is None:
            return False
        try:
            with self.engine.connect() as conn:
                versions = [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
        except SQLAlchemyError:  # no version table yet: a new store
            return False
        return versions == [head]

    def head_revision(self) -> str | None:
        """The newest migration this crmsync ships (what ``upgrade()`` goes to)."""
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        return ScriptDirectory.from_config(config).get_current_head()

    def schema_problem(self) -> str | None:
        """None when the database is reachable and at this crmsync's schema, else one line saying
        why not (read-only commands print it instead of migrating)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            current, head = self.current_revision(), self.head_revision()
        except SQLAlchemyError as exc:
            return f"store unreachable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if current == head:
            return None
        where = "empty" if current is None else f"at {current}"
        return f"store schema is {where}, this crmsync needs {head}: run `crmsync db upgrade`"

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # --- transactions ----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction: commit on exit, rollback on exception."""
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield Transaction(conn)

    @contextmanager
    def _read(self) -> Iterator[Transaction]:
        with self.engine.connect() as conn:
            yield Transaction(conn)

    # --- records ---------------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> int:
        with self.transaction() as tx:
            return tx.upsert(records)

    def mark_deleted(
        self, object_type: ObjectType | str, connection: str, source_ids: Iterable[str], at: dt.datetime | None
    ) -> int:
        with self.transaction() as tx:
            return tx.mark_deleted(object_type, connection, source_ids, at)

    def get(self, object_type: ObjectType | str, connection: str, source_id: str) -> Record | None:
        with self._read() as tx:
            return tx.get(object_type, connection, source_id)

    def iter_records(
        self,
        object_type: ObjectType | str,
        connection: str | None = None,
        modified_since: dt.datetime | None = None,
        include_deleted: bool = False,
        batch_size: int = 5000,
    ) -> Iterator[Record]:
        """Stream records in (connection, source_id) order with a server-side cursor (PostgreSQL) /
        the driver's row cursor (SQLite), ``batch_size`` rows at a time. ``modified_since`` is
        inclusive. Holds a connection until the iterator is exhausted or closed."""
        plan = plan_for(object_type)
        table = plan.table
        stmt = select(*[table.c[n] for n in plan.field_names])
        if connection is not None:
            stmt = stmt.where(table.c.connection == connection)
        if modified_since is not None:
            stmt = stmt.where(table.c.modified_at >= utc(modified_since, field_name="modified_since"))
        if not include_deleted:
            stmt = stmt.where(~table.c.deleted)
        stmt = stmt.order_by(table.c.connection, table.c.source_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt)
            to_record = plan.to_record
            for partition in result.partitions():
                for row in partition:
                    yield to_record(row)

    def recent_records(self, object_type: ObjectType | str, connection: str, modified_since: dt.datetime,
                       limit: int) -> list[Record]:
        """At most ``limit`` live records of ``connection`` modified on or after ``modified_since``,
        newest first (served by the (connection, modified_at) index, no sort of the whole range)."""
        plan = plan_for(object_type)
        table = plan.table
        stmt = (select(*[table.c[n] for n in plan.field_names])
                .where(table.c.connection == connection,
                       table.c.modified_at >= utc(modified_since, field_name="modified_since"), ~table.c.deleted)
                .order_by(table.c.modified_at.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [plan.to_record(row) for row in conn.execute(stmt)]

    def count(
        self,
        object_type: ObjectType | str,
        connection: str | None = None,
        include_deleted: bool = False,
        modified_since: dt.datetime | None = None,
    ) -> int:
        """Stored records (not deleted by default); ``modified_since`` is inclusive."""
        table = plan_for(object_type).table
        stmt = select(func.count()).select_from(table)
        if connection is not None:
            stmt = stmt.where(table.c.connection == connection)
        if modified_since is not None:
            stmt = stmt.where(table.c.modified_at >= utc(modified_since, field_name="modified_since"))
        if not include_deleted:
            stmt = stmt.where(~table.c.deleted)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def source_ids(self, object_type: ObjectType | str, connection: str, include_deleted: bool = False) -> set[str]:
        """Ids stored for ``connection`` (not deleted by default), for delete-reconciliation sweeps."""
        table = plan_for(object_type).table
        stmt = select(table.c.source_id).where(table.c.connection == connection)
        if not include_deleted:
            stmt = stmt.where(~table.c.deleted)
        with self.engine.connect() as conn:
            return set(conn.execute(stmt).scalars())

    def content_hashes(self, object_type: ObjectType | str, connection: str, source_ids: Iterable[str]) -> dict[str, str]:
        with self._read() as tx:
            return tx.content_hashes(object_type, connection, source_ids)

    # --- cursors ---------------------------------------------------------------------------
    def load_cursor(self, connection: str, object_name: str) -> dict[str, Any] | None:
        with self._read() as tx:
            return tx.load_cursor(connection, object_name)

    def save_cursor(self, connection: str, object_name: str, cursor: dict[str, Any]) -> None:
        with self.transaction() as tx:
            tx.save_cursor(connection, object_name, cursor)

    def cursors(self, connection: str | None = None) -> list[CursorInfo]:
        c = t.sync_cursors.c
        stmt = select(c.connection, c.object_name, c.cursor, c.updated_at).order_by(c.connection, c.object_name)
        if connection is not None:
            stmt = stmt.where(c.connection == connection)
        with self.engine.connect() as conn:
            return [CursorInfo(*row) for row in conn.execute(stmt)]

    # --- run log ---------------------------------------------------------------------------
    def start_run(self, kind: str, connection: str | None = None, object_name: str | None = None) -> int:
        with self.transaction() as tx:
            result = tx.conn.execute(
                insert(t.runs)
                .values(
                    kind=RunKind(kind).value,
                    connection=connection,
                    object_name=object_name,
                    started_at=now_utc(),
                    status=RunStatus.RUNNING.value,
                    counts={},
                    owner=current_owner(),
                )
                .returning(t.runs.c.id)
            )
            return int(result.scalar_one())

    def mark_interrupted_runs(self) -> int:
        """Runs left ``running`` by a process of this host that is gone (a kill, a crash, a power
        cut) are marked ``interrupted``; returns how many. Called when a command or worker starts."""
        c = t.runs.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.id, c.owner).where(c.status == RunStatus.RUNNING.value)).all()
        gone = [run_id for run_id, owner in rows if owner_is_gone(owner)]
        if gone:
            with self.transaction() as tx:
                tx.conn.execute(update(t.runs).where(c.id.in_(gone), c.status == RunStatus.RUNNING.value).values(
                    status=RunStatus.INTERRUPTED.value, finished_at=now_utc(),
                    error="interrupted: its process ended before the run finished (the next run resumes "
                          "from the last checkpoint)"))
        return len(gone)

    def finish_run(self, run_id: int, status: str, counts: dict[str, Any], error: str | None = None) -> None:
        status = RunStatus(status).value
        if status in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
            raise StoreError("finish_run: status must be ok, failed or stopped")
        with self.transaction() as tx:
            result = tx.conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(status=status, counts=counts, error=None if error is None else safe_text(error),
                        finished_at=now_utc())
            )
            if result.rowcount != 1:
                raise StoreError(f"finish_run: no run {run_id}")

    def last_runs(self, limit: int = 20, *, kind: str | None = None, connection: str | None = None) -> list[RunInfo]:
        """Most recent runs first."""
        c = t.runs.c
        stmt = select(t.runs).order_by(c.id.desc()).limit(limit)
        if kind is not None:
            stmt = stmt.where(c.kind == RunKind(kind).value)
        if connection is not None:
            stmt = stmt.where(c.connection == connection)
        with self.engine.connect() as conn:
            return [RunInfo(**row._mapping) for row in conn.execute(stmt)]

    def get_run(self, run_id: int) -> RunInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
        return None if row is None else RunInfo(**row._mapping)

    # --- decisions and rule sets -----------------------------------------------------------
    def decisions(
        self,
        *,
        connection: str | None = None,
        object_type: str | None = None,
        source_id: str | None = None,
        run_id: int | None = None,
        limit: int = 100,
    ) -> list[Decision]:
        """Decision log, newest first."""
        c = t.decisions.c
        stmt = select(t.decisions).order_by(c.id.desc()).limit(limit)
        if connection is not None:
            stmt = stmt.where(c.connection == connection)
        if object_type is not None:
            stmt = stmt.where(c.object_type == str(object_type))
        if source_id is not None:
            stmt = stmt.where(c.source_id == source_id)
        if run_id is not None:
            stmt = stmt.where(c.run_id == run_id)
        with self.engine.connect() as conn:
            return [Decision(**row._mapping) for row in conn.execute(stmt)]

    def log_decision(self, **kwargs: Any) -> int:
        with self.transaction() as tx:
            return tx.log_decision(**kwargs)

    def record_rule_set(self, rule_set_hash: str, source: str, *, author: str | None = None) -> bool:
        with self.transaction() as tx:
            return tx.record_rule_set(rule_set_hash, source, author=author)

    def rule_sets(self, limit: int = 50) -> list[RuleSetInfo]:
        """Applied rule-set versions, newest first."""
        c = t.rule_sets.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.hash, c.applied_at, c.author, c.source).order_by(c.applied_at.desc()).limit(limit))
            return [RuleSetInfo(*row) for row in rows]

    # --- outbox (SQL in ``crmsync.store.outbox``) -------------------------------------------
    def enqueue(self, item: OutboxItem) -> bool:
        with self.transaction() as tx:
            return tx.enqueue(item)

    def outbox_pending(self, connection: str, limit: int = 100) -> list[OutboxItem]:
        """Pending items for ``connection``, oldest first (not claimed)."""
        with self.engine.connect() as conn:
            return outbox_rows.items(conn, connection=connection, status=OutboxStatus.PENDING.value, limit=limit)

    def outbox_items(self, *, connection: str | None = None, status: str | None = None, limit: int = 1000) -> list[OutboxItem]:
        with self.engine.connect() as conn:
            return outbox_rows.items(conn, connection=connection, status=status, limit=limit)

    def update_outbox(
        self,
        item_id: int,
        status: str,
        *,
        attempts: int | None = None,
        last_error: str | None = None,
        result_id: str | None = None,
    ) -> bool:
        with self.transaction() as tx:
            return tx.update_outbox(item_id, status, attempts=attempts, last_error=last_error, result_id=result_id)

    def outbox_counts(self, connection: str | None = None) -> dict[str, int]:
        """Items per status (statuses with no items are absent)."""
        with self.engine.connect() as conn:
            return outbox_rows.counts(conn, connection)

    # --- quarantine ------------------------------------------------------------------------
    def quarantine_count(self, connection: str | None = None, *, include_resolved: bool = False,
                         object_name: str | None = None) -> int:
        c = t.quarantine.c
        stmt = select(func.count()).select_from(t.quarantine)
        if connection is not None:
            stmt = stmt.where(c.connection == connection)
        if object_name is not None:
            stmt = stmt.where(c.object_name == object_name)
        if not include_resolved:
            stmt = stmt.where(~c.resolved)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def quarantined(self, connection: str | None = None, *, limit: int = 100) -> list[QuarantineEntry]:
        """Unresolved quarantine entries, oldest first."""
        c = t.quarantine.c
        stmt = select(t.quarantine).where(~c.resolved).order_by(c.id).limit(limit)
        if connection is not None:
            stmt = stmt.where(c.connection == connection)
        with self.engine.connect() as conn:
            return [QuarantineEntry(**row._mapping) for row in conn.execute(stmt)]

    # --- links and state -------------------------------------------------------------------
    def find_link(self, connection: str, object_name: str, source_id: str) -> Link | None:
        with self._read() as tx:
            return tx.find_link(connection, object_name, source_id)

    def get_state(self, namespace: str, key: str) -> Any:
        with self._read() as tx:
            return tx.get_state(namespace, key)

    def set_state(self, namespace: str, key: str, value: Any) -> None:
        with self.transaction() as tx:
            tx.set_state(namespace, key, value)
