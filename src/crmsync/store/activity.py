"""Calls, meter readings and invoices in the store: upserts inside a caller's transaction, reads.

A call is replaced whole (its parties too) when it is read again: Gong keeps processing a call
after it happened, so the latest read is the truth. Readings are keyed by subscription, metric and
period start; invoices by id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from crmsync.activity import Call, CallParty, CrmRef, InvoiceFact, MeterReading
from crmsync.store import tables as t
from crmsync.store.repository import Store, Transaction


def _insert(conn: Connection, table: t.SATable) -> Any:
    return (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(table)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def upsert_calls(tx: Transaction, calls: Sequence[Call]) -> int:
    if not calls:
        return 0
    conn, now = tx.conn, _now()
    rows = [{"connection": c.connection, "call_id": c.call_id, "started": c.started, "duration_s": c.duration_s,
             "title": c.title, "primary_user_id": c.primary_user_id, "synced_at": now,
             "data": {"crm_refs": [[r.system, r.object_type, r.object_id] for r in c.crm_refs],
                      "trackers": dict(c.trackers), "tracker_phrases": {k: list(v) for k, v in c.tracker_phrases.items()},
                      "topics": dict(c.topics), "highlights": {k: list(v) for k, v in c.highlights.items()},
                      "brief": c.brief, "outcome": c.outcome}} for c in calls]
    stmt = _insert(conn, t.calls)
    stmt = stmt.on_conflict_do_update(index_elements=["connection", "call_id"],
                                      set_={k: stmt.excluded[k] for k in rows[0] if k not in ("connection", "call_id")})
    conn.execute(stmt, rows)
    keys = [(c.connection, c.call_id) for c in calls]
    cp = t.call_parties.c
    conn.execute(delete(t.call_parties).where(tuple_(cp.connection, cp.call_id).in_(keys)))
    parties = [{"connection": c.connection, "call_id": c.call_id, "position": i, "email": p.email, "name": p.name,
                "title": p.title, "affiliation": p.affiliation, "user_id": p.user_id}
               for c in calls for i, p in enumerate(c.parties)]
    if parties:
        conn.execute(t.call_parties.insert(), parties)
    return len(rows)


def load_calls(store: Store, connections: Iterable[str] | None = None,
               since: dt.datetime | None = None) -> list[Call]:
    """Stored calls (with parties), oldest first."""
    c = t.calls.c
    stmt = select(t.calls)
    names = list(connections) if connections is not None else None
    if names is not None:
        stmt = stmt.where(c.connection.in_(names))
    if since is not None:
        stmt = stmt.where(c.started >= since)
    p = t.call_parties.c
    pstmt = select(t.call_parties).order_by(p.connection, p.call_id, p.position)
    if names is not None:
        pstmt = pstmt.where(p.connection.in_(names))
    with store.engine.connect() as conn:
        parties: dict[tuple[str, str], list[CallParty]] = {}
        for row in conn.execute(pstmt).mappings():
            parties.setdefault((row["connection"], row["call_id"]), []).append(CallParty(
                row["email"], row["name"], row["title"], row["affiliation"], row["user_id"]))
        out = []
        for row in conn.execute(stmt.order_by(c.started, c.call_id)).mappings():
            data = row["data"] or {}
            out.append(Call(
                connection=row["connection"], call_id=row["call_id"], started=row["started"],
                duration_s=int(row["duration_s"]), title=row["title"], primary_user_id=row["primary_user_id"],
                parties=tuple(parties.get((row["connection"], row["call_id"]), ())),
                crm_refs=tuple(CrmRef(*ref) for ref in data.get("crm_refs") or []),
                trackers={k: int(v) for k, v in (data.get("trackers") or {}).items()},
                tracker_phrases={k: tuple(v) for k, v in (data.get("tracker_phrases") or {}).items()},
                topics={k: int(v) for k, v in (data.get("topics") or {}).items()},
                highlights={k: tuple(v) for k, v in (data.get("highlights") or {}).items()},
                brief=data.get("brief"), outcome=data.get("outcome")))
        return out


def upsert_readings(tx: Transaction, readings: Sequence[MeterReading]) -> int:
    if not readings:
        return 0
    now = _now()
    rows = [{"connection": r.connection, "subscription_id": r.subscription_id, "metric_id": r.metric_id,
             "period_start": r.period_start, "period_end": r.period_end, "customer_id": r.customer_id,
             "metric_code": r.metric_code, "metric_name": r.metric_name, "value": r.value, "included": r.included,
             "purchase_order": r.purchase_order, "synced_at": now} for r in readings]
    stmt = _insert(tx.conn, t.meter_readings)
    pk = ["connection", "subscription_id", "metric_id", "period_start"]
    stmt = stmt.on_conflict_do_update(index_elements=pk, set_={k: stmt.excluded[k] for k in rows[0] if k not in pk})
    tx.conn.execute(stmt, rows)
    return len(rows)


def load_readings(store: Store, connection: str) -> list[MeterReading]:
    c = t.meter_readings.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.meter_readings).where(c.connection == connection)
                            .order_by(c.subscription_id, c.metric_id, c.period_start)).mappings().all()
    return [MeterReading(r["connection"], r["subscription_id"], r["customer_id"], r["metric_id"], r["metric_code"],
                         r["metric_name"] or r["metric_code"], r["period_start"], r["period_end"],
                         Decimal(r["value"]), None if r["included"] is None else Decimal(r["included"]),
                         r["purchase_order"])
            for r in rows]


def upsert_invoices(tx: Transaction, invoices: Sequence[InvoiceFact]) -> int:
    if not invoices:
        return 0
    now = _now()
    rows = [{"connection": i.connection, "invoice_id": i.invoice_id, "customer_id": i.customer_id,
             "subscription_id": i.subscription_id, "status": i.status, "payment_status": i.payment_status,
             "invoice_date": i.invoice_date, "due_date": i.due_date, "paid_at": i.paid_at,
             "total_cents": i.total_cents, "amount_due_cents": i.amount_due_cents, "currency": i.currency,
             "synced_at": now} for i in invoices]
    stmt = _insert(tx.conn, t.invoices)
    pk = ["connection", "invoice_id"]
    stmt = stmt.on_conflict_do_update(index_elements=pk, set_={k: stmt.excluded[k] for k in rows[0] if k not in pk})
    tx.conn.execute(stmt, rows)
    return len(rows)


def load_invoices(store: Store, connection: str, customer_ids: Iterable[str] | None = None) -> list[InvoiceFact]:
    c = t.invoices.c
    stmt = select(t.invoices).where(c.connection == connection)
    if customer_ids is not None:
        stmt = stmt.where(and_(c.customer_id.in_(list(customer_ids))))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(c.invoice_date, c.invoice_id)).mappings().all()
    return [InvoiceFact(r["connection"], r["invoice_id"], r["customer_id"], r["subscription_id"], r["status"],
                        r["payment_status"], r["invoice_date"], r["due_date"], r["paid_at"], int(r["total_cents"]),
                        int(r["amount_due_cents"]), r["currency"]) for r in rows]
