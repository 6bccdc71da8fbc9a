"""``crmsync outbox list | retry | drop | drain``: look at and act on the writes waiting for the CRMs.

A refused or failed write stays with its error until someone acts: ``retry`` puts it back to
pending (due now), ``drop`` gives up on it (kept as ``dropped`` for the record).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from crmsync.cli_options import (
    ConfigOption,
    ConnectionOption,
    DryRunOption,
    JsonOption,
    console,
    err_console,
    print_json,
    require_connection,
    state,
)
from crmsync.store import OutboxItem, OutboxStatus, Store
from crmsync.sync import outbox

outbox_app = typer.Typer(help="Writes waiting for the CRMs: list, retry, drop, drain.", no_args_is_help=True)

STATUSES = [s.value for s in OutboxStatus]


def _store(config: Path | None) -> Store:
    state.settings(config)
    return state.write_store()


def _item_dict(item: OutboxItem) -> dict[str, object]:
    return {"id": item.id, "connection": item.connection, "object": item.object_name, "operation": item.operation,
            "source_id": item.source_id, "result_id": item.result_id, "status": item.status,
            "attempts": item.attempts, "fields": sorted(item.fields), "last_error": item.last_error,
            "created_at": item.created_at.isoformat() if item.created_at else None,
            "updated_at": item.updated_at.isoformat() if item.updated_at else None}


def _shorten(text: str | None, width: int) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


@outbox_app.command("list")
def list_items(
    config: ConfigOption = None,
    status: Annotated[str | None, typer.Option("--status", "-s", help=f"one of {', '.join(STATUSES)}")] = None,
    connection: ConnectionOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Outbox rows (newest last) with status, attempts and the last error."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(STATUSES)}", param_hint="--status")
    require_connection(state.settings(config), connection)
    store = state.read_store()
    items = store.outbox_items(connection=connection, status=status, limit=100_000)[-limit:]
    counts = store.outbox_counts(connection)
    store.close()
    if as_json:
        print_json({"counts": counts, "items": [_item_dict(i) for i in items]})
        return
    table = Table(title="outbox " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    # 80 columns: the essentials, with the error folded over lines; --json has every field
    for col in ("id", "connection", "object/op", "record", "status", "tries"):
        table.add_column(col, no_wrap=True)
    table.add_column("fields / last error", overflow="fold", ratio=1)
    for item in items:
        detail = _shorten(", ".join(sorted(item.fields)), 60)
        if item.last_error:
            detail += "\n" + _shorten(item.last_error, 200)
        table.add_row(
            str(item.id), item.connection, f"{item.object_name}/{item.operation}",
            item.source_id or item.result_id or "-", item.status, str(item.attempts), detail,
        )
    console.print(table)
    if not items:
        console.print("no outbox items match")


@outbox_app.command("retry")
def retry_cmd(
    item_id: Annotated[int | None, typer.Argument(help="outbox id (failed or parked)")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="every failed item")] = False,
    connection: ConnectionOption = None,
    config: ConfigOption = None,
) -> None:
    """Put a failed or parked item (or all failed ones) back to pending."""
    if (item_id is None) == (not all_failed):
        raise typer.BadParameter("give an outbox ID or --all-failed (not both)")
    store = _store(config)
    if all_failed:
        n = outbox.retry_failed(store, connection)
        console.print(f"{n} failed item(s) back to pending")
        return
    assert item_id is not None
    _act(store, item_id, "retry")
    console.print(f"outbox item {item_id} back to pending")


def _act(store: Store, item_id: int, action: str) -> None:
    """``retry`` / ``drop`` of one item through ``outbox.act`` (the console's path too)."""
    _, why_not = outbox.act(store, item_id, action)
    if why_not is not None:
        err_console.print(why_not)
        raise typer.Exit(1)


@outbox_app.command("drop")
def drop_cmd(
    item_id: Annotated[int, typer.Argument(help="outbox id")],
    config: ConfigOption = None,
) -> None:
    """Give up on an item (it is kept as dropped)."""
    store = _store(config)
    _act(store, item_id, "drop")
    console.print(f"outbox item {item_id} dropped")


@outbox_app.command("drain")
def drain_cmd(
    name: Annotated[str | None, typer.Argument(metavar="[CONNECTION]", help="connection name (or --connection)")]
        = None,
    connection: ConnectionOption = None,
    config: ConfigOption = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1)] = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Push the connection's pending items now (--dry-run: list what would be pushed)."""
    from crmsync.connectors import build_connector

    if not (name or connection) or (name and connection and name != connection):
        raise typer.BadParameter("give the connection once: CONNECTION or --connection NAME")
    connection = name or connection
    settings = state.settings(config)
    require_connection(settings, connection)
    assert connection is not None
    conn = settings.connection(connection)
    if dry_run:
        store = state.read_store()
        pending = store.outbox_pending(connection, limit=limit or 100_000)
        store.close()
        if as_json:
            print_json({"connection": connection, "dry_run": True, "would_push": [_item_dict(i) for i in pending]})
            return
        console.print(f"{connection}: {len(pending)} pending item(s) would be pushed (dry run: nothing sent)")
        for item in pending[:20]:
            console.print(f"  #{item.id} {item.object_name}/{item.operation} {item.source_id or '(new)'}: "
                          f"{_shorten(', '.join(sorted(item.fields)), 60)}", highlight=False)
        return
    store = state.write_store()
    connector = build_connector(conn)
    try:
        result = outbox.drain(store, connector, conn, limit=limit)
    finally:
        connector.close()
        store.close()
    if as_json:
        print_json({"connection": connection, "dry_run": False, "status": result.status, **result.counts(),
                    "seconds": round(result.seconds, 3), "errors": result.errors[:20], "error": result.error})
        if result.status == "failed":
            raise typer.Exit(1)
        return
    console.print(f"{connection}: {result.status}; " + ", ".join(f"{k} {v}" for k, v in result.counts().items())
                  + f"; {result.seconds:.1f}s")
    for message in result.errors[:5]:
        console.print(f"  error: {_shorten(message, 200)}")
    if result.status == "failed":
        err_console.print(result.error or "failed")
        raise typer.Exit(1)
