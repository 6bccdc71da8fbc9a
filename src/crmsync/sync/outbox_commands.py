"""``crmsync outbox list | retry | drop | drain``: look at and act on the writes waiting for the CRMs.

A refused or failed write stays with its error until someone acts: ``retry`` puts it back to
pending (due now), ``drop`` gives up on it (kept as ``dropped`` for the record).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crmsync.settings import Settings
from crmsync.store import OutboxStatus, Store
from crmsync.sync import outbox

outbox_app = typer.Typer(help="Writes waiting for the CRMs: list, retry, drop, drain.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="config file (default config/crmsync.yaml)")]
STATUSES = [s.value for s in OutboxStatus]


def _settings(config: Path | None) -> Settings:
    """The global ``--config/-c`` (or this command's own), secrets handed to the log redactor."""
    from crmsync.cli import state

    return state.settings(config)


def _store(config: Path | None) -> Store:
    settings = _settings(config)
    store = Store.open(settings.store.url)
    store.upgrade()
    return store


def _shorten(text: str | None, width: int) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


@outbox_app.command("list")
def list_items(
    config: ConfigOption = None,
    status: Annotated[str | None, typer.Option("--status", "-s", help=f"one of {', '.join(STATUSES)}")] = None,
    connection: Annotated[str | None, typer.Option("--connection", help="only this connection")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
) -> None:
    """Outbox rows (newest last) with status, attempts and the last error."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(STATUSES)}", param_hint="--status")
    store = _store(config)
    items = store.outbox_items(connection=connection, status=status, limit=100_000)[-limit:]
    counts = store.outbox_counts(connection)
    table = Table(title="outbox " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for col in ("id", "connection", "object", "op", "record", "status", "tries", "fields", "updated", "last error"):
        table.add_column(col, overflow="fold" if col == "last error" else "ellipsis")
    for item in items:
        table.add_row(
            str(item.id), item.connection, item.object_name, item.operation,
            item.source_id or item.result_id or "-", item.status, str(item.attempts),
            _shorten(", ".join(sorted(item.fields)), 40),
            item.updated_at.isoformat(timespec="seconds") if item.updated_at else "-",
            _shorten(item.last_error, 120),
        )
    console.print(table)
    if not items:
        console.print("no outbox items match")


@outbox_app.command("retry")
def retry_cmd(
    item_id: Annotated[int | None, typer.Argument(help="outbox id (failed or parked)")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="every failed item")] = False,
    connection: Annotated[str | None, typer.Option("--connection", help="with --all-failed: one connection")] = None,
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
    item = outbox.get_item(store, item_id)
    if item is None:
        err_console.print(f"no outbox item {item_id}")
        raise typer.Exit(1)
    if not outbox.retry(store, item_id):
        err_console.print(f"outbox item {item_id} is {item.status}; only failed or parked items can be retried")
        raise typer.Exit(1)
    console.print(f"outbox item {item_id} back to pending")


@outbox_app.command("drop")
def drop_cmd(
    item_id: Annotated[int, typer.Argument(help="outbox id")],
    config: ConfigOption = None,
) -> None:
    """Give up on an item (it is kept as dropped)."""
    store = _store(config)
    item = outbox.get_item(store, item_id)
    if item is None:
        err_console.print(f"no outbox item {item_id}")
        raise typer.Exit(1)
    if not outbox.drop(store, item_id):
        err_console.print(f"outbox item {item_id} is {item.status}; it cannot be dropped")
        raise typer.Exit(1)
    console.print(f"outbox item {item_id} dropped")


@outbox_app.command("drain")
def drain_cmd(
    connection: Annotated[str, typer.Argument(help="connection name")],
    config: ConfigOption = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1)] = None,
) -> None:
    """Push the connection's pending items now."""
    from crmsync.connectors import build_connector

    settings = _settings(config)
    conn = settings.connection(connection)
    store = Store.open(settings.store.url)
    store.upgrade()
    connector = build_connector(conn)
    try:
        result = outbox.drain(store, connector, conn, limit=limit)
    finally:
        connector.close()
    console.print(f"{connection}: {result.status}; " + ", ".join(f"{k} {v}" for k, v in result.counts().items())
                  + f"; {result.seconds:.1f}s")
    for message in result.errors[:5]:
        console.print(f"  error: {_shorten(message, 200)}")
    if result.status == "failed":
        err_console.print(result.error or "failed")
        raise typer.Exit(1)
