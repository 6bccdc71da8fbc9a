"""``crmsync backfill`` for several objects or connections, and its ``--dry-run`` plan table."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from rich.table import Table

from crmsync.cli_options import console, err_console, print_json
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.sync.engine import ObjectResult


def split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _seconds(value: float | None) -> str:
    if value is None:
        return "no rate limit"
    return f"{value:,.0f}s" if value < 3600 else f"{value / 3600:,.1f}h"


def show_plans(settings: Settings, jobs: list[tuple[str, str]], *, since: dt.datetime | None,
               until: dt.datetime | None, as_json: bool) -> int:
    """Print each job's plan (strategy, calls, expected wall time, quota share); 1 if one failed."""
    from crmsync.sync.runner import plan_backfills

    plans = plan_backfills(settings, jobs, since=since, until=until)
    failed = 0
    if as_json:
        print_json({"dry_run": True, "plans": [
            plan.as_dict() if not isinstance(plan, str) else {"connection": c, "object": o, "error": plan}
            for c, o, plan in plans]})
        return int(any(isinstance(p, str) for _, _, p in plans))
    table = Table(title="backfill plan (dry run: nothing pulled or written)")
    for col in ("connection", "object", "records", "strategy", "calls", "expected wall", "quota share", "limits"):
        table.add_column(col, justify="right" if col in ("records", "calls", "expected wall", "quota share") else "left")
    for connection, object_name, plan in plans:
        if isinstance(plan, str):
            failed = 1
            table.add_row(connection, object_name, "?", "-", "-", "-", "-", plan)
            continue
        share = plan.quota_share
        table.add_row(connection, object_name, "?" if plan.records is None else f"{plan.records:,}",
                      plan.chosen.strategy, f"{plan.chosen.calls:,}", _seconds(plan.chosen.seconds),
                      "?" if share is None else f"{share:.2%}",
                      "; ".join(f"{k} {v}" for k, v in plan.limits.items()))
    console.print(table)
    for _, _, plan in plans:
        if isinstance(plan, str):
            continue
        others = [o for o in plan.options if o is not plan.chosen]
        note = f"{plan.connection}/{plan.object_name}: {plan.chosen.strategy} ({plan.chosen.note})"
        if others:
            note += "; instead of " + ", ".join(f"{o.strategy} ({o.calls:,} calls, {_seconds(o.seconds)})"
                                                for o in others)
        console.print(note, markup=False, highlight=False)
    return failed


def run_many(settings: Settings, store: Store, jobs: list[tuple[str, str]], *, since: dt.datetime | None,
             until: dt.datetime | None, stop: threading.Event, as_json: bool) -> list[ObjectResult]:
    from crmsync.sync.runner import run_backfills

    results = run_backfills(settings, store, jobs, since=since, until=until, stop_event=stop)
    if as_json:
        rows: list[dict[str, Any]] = [{"connection": r.connection, "object": r.object_name, "status": r.status,
                                       **r.counts(), "complete": r.complete, "error": r.error} for r in results]
        print_json({"results": rows})
        return results
    table = Table(title=f"backfill of {len(jobs)} objects, side by side within each CRM's limits")
    for col in ("connection", "object", "status", "records", "calls", "source", "stored", "complete"):
        table.add_column(col)
    for r in results:
        table.add_row(r.connection, r.object_name, r.status, f"{r.records:,}", f"{r.api_calls:,}",
                      str(r.source_count), str(r.stored_count), str(r.complete))
    console.print(table)
    for r in results:
        if r.error:
            err_console.print(f"{r.connection}/{r.object_name}: {r.error}", markup=False, highlight=False)
    return results
