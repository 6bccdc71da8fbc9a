"""The schedule's state in crmsync's own tables (``kv_state``), shared by every worker.

Per connection (namespace ``worker_schedule``, key = connection name)::

    {"next_due_at": iso, "last_deferred_at": iso, "last_started_at": iso, "last_finished_at": iso,
     "last_status": "ok" | "stopped" | "failed", "last_reason": "schedule" | "webhook" | ...}

The embedded scheduler and the distributed dispatcher only *dispatch*; what ran last and what is
due next lives here, so a restart, or another worker, continues the same schedule. API usage as
the CRM last reported it (namespace ``worker_usage``) feeds the quota metric.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from crmsync.connectors.base import Usage
from crmsync.model import now_utc, parse_timestamp
from crmsync.store import Store
from crmsync.store import tables as t

SCHEDULE_NS = "worker_schedule"
USAGE_NS = "worker_usage"


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


def read_timestamp(state: dict[str, Any] | None, key: str) -> dt.datetime | None:
    if not state or not state.get(key):
        return None
    return parse_timestamp(state[key])


def load(store: Store, connection: str) -> dict[str, Any]:
    with store.transaction() as tx:
        value = tx.get_state(SCHEDULE_NS, connection)
    return dict(value) if isinstance(value, dict) else {}


def load_all(store: Store, namespace: str = SCHEDULE_NS) -> dict[str, dict[str, Any]]:
    c = t.kv_state.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.key, c.value).where(c.namespace == namespace))
        return {key: dict(value) for key, value in rows if isinstance(value, dict)}


def update(store: Store, connection: str, **values: Any) -> dict[str, Any]:
    """Merge ``values`` into the connection's schedule row (datetimes stored as ISO strings). The row
    is created before it is locked: a worker's ``mark_started`` and a dispatcher's update of a
    connection that never ran both read an absent row otherwise, and the later write drops the other's
    keys (a lost ``last_started_at`` once left a finished sync looking never started)."""
    with store.transaction() as tx:
        current = tx.lock_state(SCHEDULE_NS, connection, {})
        merged = dict(current) if isinstance(current, dict) else {}
        for key, value in values.items():
            merged[key] = _iso(value) if isinstance(value, dt.datetime) else value
        tx.set_state(SCHEDULE_NS, connection, merged)
    return merged


def mark_started(store: Store, connection: str, reason: str) -> None:
    update(store, connection, last_started_at=now_utc(), last_reason=reason)


def mark_finished(store: Store, connection: str, status: str, next_due_at: dt.datetime | None) -> None:
    values: dict[str, Any] = {"last_finished_at": now_utc(), "last_status": status}
    if next_due_at is not None:
        values["next_due_at"] = next_due_at
    update(store, connection, **values)


def save_usage(store: Store, connection: str, usage: Usage) -> None:
    with store.transaction() as tx:
        tx.set_state(USAGE_NS, connection, {
            "used": usage.used, "limit": usage.limit, "remaining": usage.remaining,
            "burst_remaining": usage.burst_remaining,
            "observed_at": _iso(usage.observed_at) if usage.observed_at else _iso(now_utc()),
        })


def due_connections(store: Store, names: Iterable[str], now: dt.datetime) -> list[str]:
    """Connections whose ``next_due_at`` has passed (or that never ran), oldest-due first."""
    states = load_all(store)
    due: list[tuple[dt.datetime, str]] = []
    for name in names:
        next_at = read_timestamp(states.get(name), "next_due_at")
        if next_at is None or next_at <= now:
            due.append((next_at or dt.datetime.min.replace(tzinfo=dt.UTC), name))
    return [name for _, name in sorted(due)]
