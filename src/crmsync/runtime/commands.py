"""``crmsync worker``: the embedded scheduler, or ``--distributed`` procrastinate worker."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.console import Console

from crmsync.cli_options import ConfigOption, ConnectionRequired
from crmsync.errors import describe_error
from crmsync.logging import get_logger

worker_app = typer.Typer(help="Run the background worker (embedded scheduler, or --distributed on PostgreSQL).",
                         invoke_without_command=True, add_completion=False)
err_console = Console(stderr=True)
log = get_logger("crmsync.runtime.worker")



@worker_app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
    distributed: Annotated[bool, typer.Option("--distributed", help="procrastinate worker on the PostgreSQL store "
                                              "(run several; they share the work).")] = False,
    config: ConfigOption = None,
    http_port: Annotated[int | None, typer.Option("--http-port", help="Health/metrics/webhook port "
                                                  "(default worker.http_port; 0 = any free port, -1 = off).")] = None,
    http_host: Annotated[str, typer.Option("--http-host", help="Address the HTTP endpoint binds.")] = "127.0.0.1",
    concurrency: Annotated[int, typer.Option("--concurrency", help="Connection cycles run at once.")] = 4,
    dispatch_every: Annotated[int, typer.Option(help="Distributed: seconds between schedule dispatches.")] = 2,
    stalled_after: Annotated[float, typer.Option(help="Distributed: seconds without heartbeat before a "
                                                 "worker's jobs are handed to others.")] = 10.0,
    console_port: Annotated[int | None, typer.Option("--console-port", help="Also serve the admin console on "
                                                     "this port (on --http-host; 0 = any free port).")] = None,
) -> None:
    """Run the worker until SIGTERM/SIGINT (the current page is finished and checkpointed)."""
    if ctx.invoked_subcommand is not None:
        return
    from crmsync.cli_options import state

    settings = state.settings(config)
    console = _start_console(settings, http_host, console_port)
    try:
        _run_worker(settings, distributed, concurrency, http_host, http_port, dispatch_every, stalled_after)
    finally:
        if console is not None:
            console.stop()


def _start_console(settings: Any, host: str, port: int | None) -> Any:
    """The admin console in this process, on its own store connection pool (optional)."""
    if port is None:
        return None
    from crmsync.console.server import ConsoleServer
    from crmsync.store import Store

    store = Store.open(settings.store.url)
    store.upgrade()
    server = ConsoleServer(settings, store, host=host, port=port).start()
    err_console.print(f"admin console on {server.url}", markup=False, highlight=False)
    return server


def _run_worker(settings: Any, distributed: bool, concurrency: int, http_host: str, http_port: int | None,
                dispatch_every: int, stalled_after: float) -> None:
    if distributed:
        from crmsync.runtime.distributed import DistributedError, run_worker

        try:
            run_worker(settings, concurrency=concurrency, http_host=http_host, http_port=http_port,
                       dispatch_every=dispatch_every, stalled_after=stalled_after,
                       heartbeat_every=max(0.5, stalled_after / 5))
        except DistributedError as exc:
            log.error("worker.cannot_run", mode="distributed", error=str(exc))
            err_console.print(f"worker: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        return
    from crmsync.runtime.embedded import EmbeddedWorker
    from crmsync.runtime.locks import WorkerLockError
    from crmsync.store import Store

    store = Store.open(settings.store.url)
    try:
        EmbeddedWorker(settings, store, concurrency=concurrency, http_host=http_host,
                       http_port=http_port).run_forever()
    except WorkerLockError as exc:
        log.error("worker.cannot_run", mode="embedded", error=str(exc))
        err_console.print(f"worker: {exc}", markup=False, highlight=False)
        raise typer.Exit(3) from None
    except Exception as exc:  # a worker that must stop says so at error level, then the CLI explains it
        log.error("worker.stopped_on_error", mode="embedded", error=describe_error(exc))
        raise
    finally:
        store.close()


def _parse(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO timestamp)", param_hint=name) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


@worker_app.command("backfill")
def plan_backfill(
    connection: ConnectionRequired,
    since: Annotated[str, typer.Option(help="Window start (YYYY-MM-DD), inclusive.")],
    until: Annotated[str, typer.Option(help="Window end (YYYY-MM-DD), exclusive.")],
    object_name: Annotated[str, typer.Option("--object", help="Object to backfill.")] = "deals",
    slices: Annotated[int, typer.Option(help="Number of resumable slices.")] = 8,
    config: ConfigOption = None,
) -> None:
    """Distributed: split a backfill into time-window slices any worker can take and resume."""
    from crmsync.cli_options import state
    from crmsync.runtime.distributed import (
        build_app,
        defer_backfill,
        ensure_schema,
        libpq_conninfo,
        split_window,
    )

    settings = state.settings(config)
    settings.connection(connection)
    conninfo = libpq_conninfo(settings.store.url)
    ensure_schema(conninfo)
    windows = split_window(_parse(since, "--since"), _parse(until, "--until"), slices)
    n = defer_backfill(build_app(conninfo), connection, object_name, windows)
    typer.echo(f"deferred {n} backfill slices of {connection}/{object_name}")
