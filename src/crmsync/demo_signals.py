"""The demo's calls, usage and health phases: pull Gong calls before the rules run (call signals
feed scoring and hygiene), pull Meteroid usage and invoices after billing provisioned the won
deals, re-run the rules (health, check-ins, expansion opportunities) and print a short summary."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from crmsync.settings import Settings
from crmsync.store import Store


def pull_calls(console: Console, settings: Settings, store: Store) -> None:
    from crmsync.connectors.gong import GongConnector
    from crmsync.store.activity import load_calls
    from crmsync.sync.activity import sync_calls

    for conn in settings.connections:
        if conn.kind != "gong" or not conn.enabled:
            continue
        console.rule("calls: Gong into the store (3 calls/s, 10,000/day)")
        connector = GongConnector(conn)
        started = time.perf_counter()
        try:
            result = sync_calls(store, connector)
            users = len(connector.users())
        finally:
            connector.close()
        calls = load_calls(store, [conn.name])
        console.print(f"{conn.name}: {result.records:,} calls in {result.pages} pages, {users} users, "
                      f"{connector.usage.calls} API calls, {time.perf_counter() - started:.1f}s; "
                      f"{sum(len(c.parties) for c in calls):,} participants stored")


def usage_and_health(console: Console, settings: Settings, store: Store, crm_connections: list[str],
                     details: bool = False, billing_sim: Any = None) -> None:
    from crmsync.connectors.meteroid import MeteroidConnector
    from crmsync.decide.runner import run_full
    from crmsync.sync.activity import sync_usage

    if not settings.billing.connection:
        return
    console.rule("usage, health and expansion")
    connector = MeteroidConnector(settings.connection(settings.billing.connection))
    try:
        usage = sync_usage(store, connector)
        console.print(f"usage: {usage.records:,} meter readings, {usage.invoices:,} invoices, "
                      f"{usage.api_calls} API calls")
        for name in crm_connections:
            run_full(settings, store, name)
        grown = _grow_one_customer(store, billing_sim) if billing_sim is not None else None
        if grown is not None:
            console.print(f"a customer's seat usage grows: {grown} (the billing user handle); usage pulled "
                          "and rules run twice more")
            sync_usage(store, connector)
            for _ in range(2):  # the second pass finds the expansion decided: nothing new
                for name in crm_connections:
                    run_full(settings, store, name)
    finally:
        connector.close()
    decisions = store.decisions(limit=100_000)
    latest: dict[tuple[str, str | None], Any] = {}
    for d in decisions:
        if d.rule_kind == "health" and d.action == "finding":
            key = (d.connection, d.source_id)
            if key not in latest or (d.id or 0) > (latest[key].id or 0):
                latest[key] = d
    grades = Counter(d.fields.get("grade") for d in latest.values())
    console.print("health: " + ", ".join(f"{g} {n}" for g, n in sorted(grades.items(), key=lambda x: str(x[0])))
                  + f" ({len(latest)} customers)")
    table = Table(title="health scores (lowest first): points per input")
    for col in ("connection", "deal", "score", "grade", "usage", "onboarding", "billing", "engagement"):
        table.add_column(col, no_wrap=col in ("connection", "deal"))
    ranked = sorted(latest.values(), key=lambda d: float(d.fields.get("score") or 0))
    for d in ranked if details else ranked[:5]:
        parts = d.fields.get("parts") or {}
        table.add_row(d.connection, d.source_id, str(d.fields.get("score")), str(d.fields.get("grade")),
                      *(str(parts.get(p, "-")) for p in ("usage", "onboarding", "billing", "engagement")))
    console.print(table)
    if ranked:
        console.print(f"why ({ranked[0].connection}/{ranked[0].source_id}): {ranked[0].reason}", overflow="fold")
    expansions = [d for d in decisions if d.action == "create_expansion"]
    out = Table(title=f"expansion opportunities ({len(expansions)}), created in the CRM through the outbox")
    for col in ("connection", "from deal", "opportunity", "owner", "why"):
        out.add_column(col, overflow="fold")
    for d in expansions[:10]:
        out.add_row(d.connection, d.source_id, str(d.fields.get("name")), str(d.fields.get("owner_id")),
                    (d.reason or "").split("; health")[0])
    console.print(out)
    calls = Counter(d.rule_name for d in decisions if d.rule_kind == "hygiene" and d.action == "finding"
                    and d.rule_name in ("late_stage_no_recent_call", "champion_not_on_any_call"))
    if calls:
        console.print("call findings: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())))


def _grow_one_customer(store: Store, sim: Any) -> str | None:
    """The healthiest-looking seat customer below the expansion share adds users: 95% of its seats."""
    from decimal import Decimal

    from crmsync.store.activity import load_readings

    for r in load_readings(store, "sandbox-billing"):
        if r.metric_code == "active_seats" and r.included and r.value / r.included < Decimal("0.9") and \
                (r.purchase_order or "").startswith("crmsync:"):
            used = int(r.included * Decimal("0.95"))
            sim.set_usage(r.subscription_id, "active_seats", used)
            return f"{r.subscription_id} {r.value:f} -> {used} of {r.included:f} seats"
    return None
