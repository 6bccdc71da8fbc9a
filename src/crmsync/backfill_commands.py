"""``crmsync backfill`` for several objects or connections, and its ``--dry-run`` plan table."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from rich.table import Table

from crmsync.cli_options import console, err_console, print_json
from crmsync.connectors.plan import BackfillPlan
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.sync.engine import ObjectResult


def split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"  # the limits set no rate (the limits line says why)
    return f"{value:,.0f}s" if value < 3600 else f"{value / 3600:,.1f}h"


def _share(value: float | None) -> str:
    return "?" if value is None else f"{value:.2%}"


def show_plans(settings: Settings, jobs: list[tuple[str, str]], *, since: dt.datetime | None,
               until: dt.datetime | None, as_json: bool) -> int:
    """Print each job's plan (strategy, calls, expected wall time, quota share); 1 if one failed.

    A connection with several objects gets a total row: its objects run side by side but share the
    connection's limit, so their floors add up; the limits each plan was computed from are printed
    once per connection under the table."""
    from crmsync.sync.runner import plan_backfills

    plans = plan_backfills(settings, jobs, since=since, until=until)
    if as_json:
        print_json({"dry_run": True, "plans": [
            plan.as_dict() if not isinstance(plan, str) else {"connection": c, "object": o, "error": plan}
            for c, o, plan in plans]})
        return int(any(isinstance(p, str) for _, _, p in plans))
    by_connection: dict[str, list[tuple[str, BackfillPlan | str]]] = {}
    for connection, object_name, plan in plans:
        by_connection.setdefault(connection, []).append((object_name, plan))
    console.print("backfill plan (dry run: nothing pulled or written)", markup=False, highlight=False)
    for connection, rows in by_connection.items():
        console.print(_plan_table(connection, rows))
    failed = 0
    for connection, object_name, plan in plans:
        if isinstance(plan, str):
            failed = 1
            err_console.print(f"{connection}/{object_name}: cannot plan: {plan}", markup=False, highlight=False)
            continue
        others = [o for o in plan.options if o is not plan.chosen]
        if not (plan.chosen.note or others):
            continue
        note = f"{plan.connection}/{plan.object_name}: {plan.chosen.strategy}" + (
            f" ({plan.chosen.note})" if plan.chosen.note else "")
        if others:
            note += "; instead of " + ", ".join(f"{o.strategy} ({o.calls:,} calls, "
                                                f"{_seconds(o.seconds) if o.seconds is not None else 'not rate-bound'})"
                                                for o in others)
        console.print(note, markup=False, highlight=False)
    return failed


def _plan_table(connection: str, rows: list[tuple[str, BackfillPlan | str]]) -> Table:
    """One connection's plans, a total row when there are several, its limits as the caption (as
    the last plan read them: the first calls of a dry run are what report them)."""
    table = Table(title=connection, title_justify="left")
    for col in ("object", "records", "strategy", "calls", "expected wall", "quota share"):
        table.add_column(col, justify="left" if col in ("object", "strategy") else "right")
    planned = [p for _, p in rows if not isinstance(p, str)]
    for object_name, plan in rows:
        if isinstance(plan, str):
            table.add_row(object_name, "?", "[red]cannot plan", "-", "-", "-")
            continue
        table.add_row(object_name, "?" if plan.records is None else f"{plan.records:,}", plan.chosen.strategy,
                      f"{plan.chosen.calls:,}", _seconds(plan.chosen.seconds), _share(plan.quota_share))
    if len(rows) > 1 and planned:
        # the objects run side by side within one shared limit: their floors add up
        floors = [p.chosen.seconds for p in planned if p.chosen.seconds is not None]
        shares = [p.quota_share for p in planned]
        table.add_section()
        table.add_row("[bold]all", "", "", f"[bold]{sum(p.chosen.calls for p in planned):,}",
                      f"[bold]{_seconds(sum(floors) if floors else None)}",
                      f"[bold]{_share(None if None in shares else sum(s or 0.0 for s in shares))}")
    reported = [p.limits for p in planned if p.limits]
    table.caption = "limits: " + ("; ".join(f"{k} {v}" for k, v in reported[-1].items()) if reported
                                  else "none reported")
    table.caption_justify = "left"
    return table


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
