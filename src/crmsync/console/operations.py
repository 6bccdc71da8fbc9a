"""Operations pages' data and actions: connections, runs, outbox, quarantine, backfills.

Actions go through the same library calls as the CLI (``crmsync.sync.outbox.retry``/``drop``,
``crmsync.sync.runner.run_backfill``) and each leaves an audit entry. A backfill started from the
console runs in a background thread of the console process; its progress is the run log's row
(records and status), which the page polls.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from crmsync.console import audit
from crmsync.logging import get_logger
from crmsync.model import parse_timestamp
from crmsync.runtime import schedule_state
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.store import outbox as store_outbox
from crmsync.store import tables as t
from crmsync.store.repository import OutboxItem, QuarantineEntry, RunInfo
from crmsync.sync import outbox

log = get_logger("crmsync.console")
CURSOR_KEYS = ("ts", "id", "since", "job_id", "updated_since", "after")


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    name: str
    kind: str
    objects: list[str]
    schedule: str
    cursors: list[tuple[str, str, dt.datetime | None]]
    last_run: RunInfo | None
    quota: dict[str, Any]
    next_due: str | None


def connections(settings: Settings, store: Store) -> list[ConnectionRow]:
    cursors = store.cursors()
    usages = schedule_state.load_all(store, schedule_state.USAGE_NS)
    schedules = schedule_state.load_all(store)
    out = []
    for conn in settings.connections:
        runs = store.last_runs(1, connection=conn.name)
        mine: list[tuple[str, str, dt.datetime | None]] = []
        for cur in cursors:
            if cur.connection != conn.name:
                continue
            inner = cur.cursor.get("connector") if isinstance(cur.cursor, dict) else cur.cursor
            text = ", ".join(f"{k}={v}" for k, v in (inner or {}).items() if k in CURSOR_KEYS)
            mine.append((cur.object_name, text[:80] or "-", cur.updated_at))
        out.append(ConnectionRow(
            name=conn.name, kind=conn.kind, objects=list(conn.objects),
            schedule=conn.schedule.cron or f"every {conn.schedule.interval_seconds}s",
            cursors=mine, last_run=runs[0] if runs else None, quota=usages.get(conn.name, {}),
            next_due=schedules.get(conn.name, {}).get("next_due_at"),
        ))
    return out


def runs(store: Store, limit: int = 30) -> list[RunInfo]:
    return store.last_runs(limit)


def outbox_page(store: Store, *, status: str | None, connection: str | None, limit: int = 200) -> list[OutboxItem]:
    """Newest first, at most ``limit`` rows, filtered in SQL."""
    with store.engine.connect() as conn:
        ids = store_outbox.newest_ids(conn, status=status, connection=connection, limit=limit)
    return [item for item in (outbox.get_item(store, i) for i in ids) if item is not None]


def retry_item(store: Store, actor: str, item_id: int) -> str | None:
    """None on success, else why not."""
    return _act(store, actor, item_id, "retry")


def drop_item(store: Store, actor: str, item_id: int) -> str | None:
    return _act(store, actor, item_id, "drop")


def _act(store: Store, actor: str, item_id: int, action: str) -> str | None:
    item, why_not = outbox.act(store, item_id, action)
    if why_not is None and item is not None:
        audit.record(store, actor, f"outbox.{action}", f"outbox {item_id}", connection=item.connection)
    return why_not


def quarantine_page(store: Store, limit: int = 200) -> list[QuarantineEntry]:
    return store.quarantined(limit=limit)


def retry_quarantined(store: Store, actor: str, entry_id: int) -> str | None:
    """Mark the entry resolved once the record was fixed at the source: the fixed record is read by
    the next sync that sees its new modification time (and quarantined again if still bad)."""
    q = t.quarantine.c
    with store.engine.connect() as conn:
        row = conn.execute(select(q.connection, q.object_name, q.payload, q.resolved).where(q.id == entry_id)).first()
    if row is None:
        return f"no quarantine entry {entry_id}"
    if row.resolved:
        return f"quarantine entry {entry_id} is already resolved"
    with store.engine.begin() as conn:
        conn.execute(update(t.quarantine).where(q.id == entry_id).values(resolved=True))
    audit.record(store, actor, "quarantine.retry", f"quarantine {entry_id}", connection=row.connection,
                 object=row.object_name)
    return None


class Backfills:
    """Backfills started from the console, one thread each; at most one per connection/object."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store
        self._threads: dict[tuple[str, str], threading.Thread] = {}
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def start(self, actor: str, connection: str, object_name: str, since: str | None) -> str | None:
        try:
            conn = self.settings.connection(connection)
        except Exception:  # noqa: BLE001 - the settings error names the connection
            return f"connection: no connection named {connection!r}"
        if object_name not in conn.objects:
            return f"object: {connection} syncs {', '.join(conn.objects)}, not {object_name!r}"
        start = None
        if since:
            try:
                start = parse_timestamp(since, field_name="since")
            except Exception:  # noqa: BLE001 - the model error says what was expected
                return f"since: {since!r} is not a date (YYYY-MM-DD)"
        key = (connection, object_name)
        with self._lock:
            running = self._threads.get(key)
            if running is not None and running.is_alive():
                return f"a backfill of {connection}/{object_name} is already running"
            thread = threading.Thread(target=self._run, args=(connection, object_name, start),
                                      name=f"console-backfill-{connection}-{object_name}", daemon=True)
            self._threads[key] = thread
            thread.start()
        audit.record(self.store, actor, "backfill.start", f"{connection}/{object_name}", since=since or None)
        return None

    def _run(self, connection: str, object_name: str, since: dt.datetime | None) -> None:
        from crmsync.sync.runner import run_backfill

        try:
            run_backfill(self.settings, self.store, connection, object_name, since=since, stop_event=self.stop)
        except Exception as exc:  # noqa: BLE001 - recorded in the run log by the engine; logged here by type
            log.error("console.backfill_failed", connection=connection, object=object_name,
                      error=type(exc).__name__)

    def running(self) -> list[str]:
        with self._lock:
            return [f"{c}/{o}" for (c, o), th in self._threads.items() if th.is_alive()]

    def wait(self, timeout: float) -> None:
        for thread in list(self._threads.values()):
            thread.join(timeout)


class FunnelReport:
    """The funnel report, computed in a background thread and kept for ``ttl`` seconds: at a
    million deals it reads every deal and stage event, far too long for a page request."""

    def __init__(self, store: Store, ttl: float = 600.0) -> None:
        self.store, self.ttl = store, ttl
        self._lock = threading.Lock()
        self._funnels: list[Any] | None = None
        self._at: float = 0.0
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def get(self) -> tuple[list[Any] | None, bool]:
        """(funnels or None, whether a computation is running); starts one when stale."""
        import time

        with self._lock:
            stale = self._funnels is None or time.monotonic() - self._at > self.ttl
            running = self._thread is not None and self._thread.is_alive()
            if stale and not running:
                self._thread = threading.Thread(target=self._compute, name="console-funnel", daemon=True)
                self._thread.start()
                running = True
            return self._funnels, running

    def _compute(self) -> None:
        import time

        from crmsync.report.funnel import compute_funnels
        from crmsync.report.funnel_data import load_funnel_input

        try:
            funnels = compute_funnels(load_funnel_input(self.store))
        except Exception as exc:  # noqa: BLE001 - shown on the page by type; details in the log
            log.error("console.funnel_failed", error=type(exc).__name__)
            self.error = f"the funnel could not be computed ({type(exc).__name__})"
            return
        with self._lock:
            self._funnels, self._at, self.error = funnels, time.monotonic(), None

    def wait(self, timeout: float) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
