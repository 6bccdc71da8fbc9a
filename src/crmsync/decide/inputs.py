"""The store-side inputs of the signal and health rules (the one I/O step, called by the runner):
call signals per deal and lead, and ``CustomerFacts`` per won deal with a billing subscription.

A subscription is the won deal's when its purchase order is crmsync's marker for that deal
(``crmsync:<connection>:<deal id>``, set when the deal was provisioned); its invoices are matched
by subscription id. Calls come from every enabled call connection (``kind: gong``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from crmsync.billing_keys import subscription_marker
from crmsync.model import Contact, Deal, Lead, ObjectType
from crmsync.rules.health import CustomerFacts
from crmsync.rules.signals import (
    EngagementSummary,
    Signals,
    build_signals,
    engagement_from_calls,
    merge_engagement,
)
from crmsync.store import Store
from crmsync.store.activity import load_calls, load_invoices, load_readings


def load_inputs(store: Store, connection: str, now: dt.datetime, *, call_connections: Iterable[str] = (),
                billing_connection: str | None = None,
                engagement: Mapping[str, EngagementSummary] | None = None) -> tuple[dict[tuple[str, str, str], Signals],
                                                                 dict[tuple[str, str], CustomerFacts]]:
    calls_from = list(call_connections)
    deals = [d for d in store.iter_records(ObjectType.DEAL, connection=connection) if isinstance(d, Deal)]
    signals: dict[tuple[str, str, str], Signals] = {}
    if calls_from or engagement:
        calls = load_calls(store, calls_from) if calls_from else []
        leads = [r for r in store.iter_records(ObjectType.LEAD, connection=connection) if isinstance(r, Lead)]
        contacts = [r for r in store.iter_records(ObjectType.CONTACT, connection=connection) if isinstance(r, Contact)]
        # engagement from calls (meetings held) merged with what other sources (sales engagement:
        # opens, replies, meetings) summarised per email
        people = merge_engagement(engagement_from_calls(calls), engagement or {})
        signals = build_signals(connection, calls, deals, leads, contacts, now, engagement=people,
                                call_source=bool(calls_from))
    customers: dict[tuple[str, str], CustomerFacts] = {}
    if billing_connection:
        by_marker = {subscription_marker(connection, d.source_id): d for d in deals if d.is_won}
        readings: dict[str, list[Any]] = {}
        for r in load_readings(store, billing_connection):
            readings.setdefault(r.subscription_id, []).append(r)
        invoices: dict[str, list[Any]] = {}
        for i in load_invoices(store, billing_connection):
            if i.subscription_id:
                invoices.setdefault(i.subscription_id, []).append(i)
        subs_of: dict[str, list[str]] = {}  # a deal provisioned as several subscriptions (#0, #1...)
        for sub_id, rows in readings.items():
            deal = by_marker.get((rows[0].purchase_order or "").split("#")[0])
            if deal is not None:
                subs_of.setdefault(deal.source_id, []).append(sub_id)
        for deal_id, sub_ids in subs_of.items():
            deal = next(d for d in deals if d.source_id == deal_id)
            rows = [r for sid in sub_ids for r in readings[sid]]
            # the subscription measured against a limit names the customer (else the first)
            main = next((r.subscription_id for r in rows if r.included is not None), sub_ids[0])
            start = deal.contract_start or (deal.close_date or now.date())
            sig = signals.get((connection, "deal", deal.source_id))
            last = sig.last_call_at if sig is not None else None
            since_start = 1 if last is not None and last.date() >= start else 0
            customers[(connection, deal.source_id)] = CustomerFacts(
                main, start, tuple(rows), tuple(i for sid in sub_ids for i in invoices.get(sid, [])), last,
                since_start)
    return signals, customers
