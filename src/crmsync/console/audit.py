"""The audit trail: one row per change made through the console (who, when, what)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from crmsync.model import now_utc
from crmsync.store import Store
from crmsync.store import tables as t


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


def record(store: Store, actor: str, action: str, target: str | None = None, **detail: Any) -> None:
    """Append an entry; ``detail`` must never hold a secret (callers pass names and counts)."""
    with store.engine.begin() as conn:
        conn.execute(insert(t.audit_log).values(at=now_utc(), actor=actor, action=action, target=target,
                                                detail=detail))


def recent(store: Store, limit: int = 100, *, action_prefix: str | None = None) -> list[AuditEntry]:
    c = t.audit_log.c
    stmt = select(c.id, c.at, c.actor, c.action, c.target, c.detail).order_by(c.id.desc()).limit(limit)
    if action_prefix:
        stmt = stmt.where(c.action.startswith(action_prefix, autoescape=True))
    with store.engine.connect() as conn:
        return [AuditEntry(*row) for row in conn.execute(stmt)]
