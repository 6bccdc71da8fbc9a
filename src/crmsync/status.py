"""``crmsync status``: connections, cursors, last runs, outbox and quarantine, as tables or JSON."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from crmsync.settings import Settings


def status_data(settings: Settings, store: Any) -> dict[str, Any]:
    """What ``render_status`` shows, as one JSON-ready document."""
    from crmsync.sync.outbox import recent_errors
    from crmsync.sync.state import position_of

    runs = store.last_runs(200)

    def last_of(name: str) -> Any:
        return next((r for r in runs if r.connection == name), None)

    def iso(moment: Any) -> str | None:
        return moment.isoformat(timespec="seconds") if moment else None

    connections = []
    for conn in settings.connections:
        last = last_of(conn.name)
        connections.append({"name": conn.name, "kind": conn.kind, "objects": list(conn.objects),
                            "schedule": conn.schedule.cron or f"every {conn.schedule.interval_seconds}s",
                            "last_run_at": iso(last.started_at) if last else None,
                            "last_status": last.status if last else None})
    return {
        "connections": connections,
        "cursors": [{"connection": c.connection, "object": c.object_name,
                     "position": iso(position_of(c.cursor)), "updated_at": iso(c.updated_at)}
                    for c in store.cursors()],
        "last_runs": [{"id": r.id, "kind": r.kind, "connection": r.connection, "object": r.object_name,
                       "started_at": iso(r.started_at), "finished_at": iso(r.finished_at), "status": r.status,
                       "counts": r.counts or {}, "error": r.error} for r in runs[:15]],
        "outbox": {name: store.outbox_counts().get(name, 0)
                   for name in ("pending", "in_flight", "failed", "parked", "done", "dropped")},
        "quarantine_open": store.quarantine_count(),
        "outbox_errors": [{"id": i.id, "connection": i.connection, "object": i.object_name,
                           "operation": i.operation, "status": i.status, "attempts": i.attempts,
                           "error": i.last_error} for i in recent_errors(store, limit=8)],
    }


def render_status(console: Console, settings: Settings, store: Any) -> None:
    from crmsync.cli_options import short_time
    from crmsync.sync.state import position_of

    connections = Table(title="connections")
    for col in ("name", "kind", "objects", "schedule", "last run", "status"):
        connections.add_column(col, overflow="fold")
    runs = store.last_runs(200)
    for conn in settings.connections:
        last = next((r for r in runs if r.connection == conn.name), None)
        schedule = conn.schedule.cron or f"every {conn.schedule.interval_seconds}s"
        connections.add_row(conn.name, conn.kind, str(len(conn.objects)), schedule,
                            short_time(last.started_at) if last else "never", last.status if last else "-")
    console.print(connections)

    cursors = Table(title="cursors (crmsync state list for windows and details)")
    for col in ("connection", "object", "position", "saved"):
        cursors.add_column(col, overflow="fold")
    for cur in store.cursors():
        cursors.add_row(cur.connection, cur.object_name, short_time(position_of(cur.cursor)),
                        short_time(cur.updated_at))
    console.print(cursors)

    last_runs = Table(title="last runs")
    for col in ("id", "started", "run", "records"):
        last_runs.add_column(col, no_wrap=True, justify="right" if col in ("id", "records") else "left")
    last_runs.add_column("status", overflow="fold", ratio=1)
    for run in runs[:15]:
        counts = run.counts or {}
        what = f"{run.kind} {run.connection or ''}{'/' + run.object_name if run.object_name else ''}"
        outcome = run.status + (f": {run.error[:120]}" if run.error else "")
        last_runs.add_row(str(run.id), short_time(run.started_at), what, str(counts.get("records", "")), outcome)
    console.print(last_runs)

    outbox = store.outbox_counts()
    quarantined = store.quarantine_count()
    summary = Table(title="queues")
    summary.add_column("queue")
    summary.add_column("count", justify="right")
    for status_name in ("pending", "in_flight", "failed", "parked", "done", "dropped"):
        summary.add_row(f"outbox {status_name}", str(outbox.get(status_name, 0)))
    summary.add_row("quarantine (open)", str(quarantined))
    console.print(summary)

    from crmsync.sync.outbox import recent_errors

    errors = recent_errors(store, limit=8)
    if errors:
        refused = Table(title="outbox: refused or parked writes (crmsync outbox list | retry | drop)")
        for col in ("id", "connection", "object", "operation", "status", "attempts", "error"):
            refused.add_column(col, overflow="fold")
        for item in errors:
            refused.add_row(str(item.id), item.connection, item.object_name, item.operation, item.status,
                            str(item.attempts), (item.last_error or "")[:120])
        console.print(refused)

