"""``engagement_records``: write a page of a tool's objects with its cursor, read them back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from crmsync.connectors.engagement import EngagementRecord
from crmsync.mirror.canonical import jsonable
from crmsync.store import Store, Transaction
from crmsync.store import tables as t


def email_of(record: EngagementRecord) -> str | None:
    """The person's address where the object names one (Outreach prospects: ``emails[0]``)."""
    emails = record.data.get("emails")
    if isinstance(emails, list) and emails:
        return str(emails[0]).strip().lower() or None
    email = record.data.get("email")
    return str(email).strip().lower() if isinstance(email, str) and email.strip() else None


def upsert(tx: Transaction, records: Sequence[EngagementRecord]) -> int:
    if not records:
        return 0
    module: Any = sqlite if tx.conn.dialect.name == "sqlite" else postgresql
    ins = module.insert(t.engagement_records)
    rows = [{"connection": r.connection, "object_name": r.source_object, "source_id": r.source_id,
             "modified_at": r.modified_at, "email": email_of(r), "data": jsonable(r.data), "deleted": r.deleted}
            for r in records]
    c = t.engagement_records.c
    tx.conn.execute(ins.on_conflict_do_update(
        index_elements=[c.connection, c.object_name, c.source_id],
        set_={"modified_at": ins.excluded.modified_at, "email": ins.excluded.email, "data": ins.excluded.data,
              "deleted": ins.excluded.deleted}), rows)
    return len(rows)


def read(store: Store, connection: str, object_name: str, *, emails: Iterable[str] | None = None
         ) -> list[dict[str, Any]]:
    """Live rows of one object as ``{"id": source_id, **data}`` (by person email when given)."""
    c = t.engagement_records.c
    stmt = select(c.source_id, c.data).where(c.connection == connection, c.object_name == object_name,
                                             c.deleted.is_(False))
    out: list[dict[str, Any]] = []
    with store.engine.connect() as db:
        if emails is None:
            out = [{"id": sid, **data} for sid, data in db.execute(stmt.order_by(c.source_id))]
        else:
            wanted = sorted({e.lower() for e in emails if e})
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                out.extend({"id": sid, **data} for sid, data in db.execute(stmt.where(c.email.in_(chunk))))
    return out
