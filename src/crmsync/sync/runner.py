"""Glue for commands and the worker: build a connection's connector and engine, run, close."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from crmsync.connectors import build_connector
from crmsync.connectors.base import Page
from crmsync.errors import describe_error
from crmsync.logging import get_logger
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.sync.engine import ObjectResult, SyncEngine

log = get_logger("crmsync.sync")


@contextmanager
def open_engine(settings: Settings, store: Store, connection: str, *,
                stop_event: threading.Event | None = None) -> Iterator[SyncEngine]:
    conn = settings.connection(connection)
    connector = build_connector(conn)
    try:
        yield SyncEngine(store, connector, conn, stop_event=stop_event)
    finally:
        connector.close()


def run_sync_cycle(settings: Settings, store: Store, connection: str, *,
                   objects: Sequence[str] | None = None,
                   stop_event: threading.Event | None = None, dry_run: bool = False) -> list[ObjectResult]:
    if settings.connection(connection).kind == "gong":
        return [_sync_gong(settings, store, connection, dry_run=dry_run)]
    with open_engine(settings, store, connection, stop_event=stop_event) as engine:
        return engine.sync(objects, dry_run=dry_run)


def _sync_gong(settings: Settings, store: Store, connection: str, *, dry_run: bool) -> ObjectResult:
    """A call system's cycle: pull calls into the store (``crmsync.sync.activity``)."""
    from crmsync.connectors.gong import GongConnector
    from crmsync.sync.activity import CALLS_OBJECT, sync_calls

    connector = GongConnector(settings.connection(connection))
    try:
        if dry_run:
            cursor = store.load_cursor(connection, CALLS_OBJECT)
            pages = list(connector.pull(CALLS_OBJECT, cursor))
            return ObjectResult(connection, CALLS_OBJECT, "sync", pages=len(pages),
                                records=sum(len(p.calls) for p in pages), api_calls=connector.usage.calls)
        result = sync_calls(store, connector)
        return ObjectResult(connection, CALLS_OBJECT, "sync", pages=result.pages, records=result.records,
                            quarantined=result.quarantined, api_calls=result.api_calls)
    finally:
        connector.close()


def run_sync_cycles(settings: Settings, store: Store, connections: Sequence[str], *,
                    stop_event: threading.Event | None = None, dry_run: bool = False) -> list[ObjectResult]:
    """One cycle per connection; a connection that fails (cannot be built, its CRM or a bug) is
    reported as a failed result and never stops the others."""
    results: list[ObjectResult] = []
    for name in connections:
        if stop_event is not None and stop_event.is_set():
            break
        try:
            results.extend(run_sync_cycle(settings, store, name, stop_event=stop_event, dry_run=dry_run))
        except Exception as exc:  # noqa: BLE001 - reported per connection, the others go on
            error = describe_error(exc)
            log.error("sync.connection_failed", connection=name, error=error)
            results.append(ObjectResult(name, "*", "sync", status="failed", error=error))
    return results


def run_backfill(settings: Settings, store: Store, connection: str, object_name: str, *,
                 since: dt.datetime | None = None, until: dt.datetime | None = None, dry_run: bool = False,
                 stop_event: threading.Event | None = None, console: Console | None = None) -> ObjectResult:
    with open_engine(settings, store, connection, stop_event=stop_event) as engine:
        total: int | None = None
        try:
            total = engine.connector.count(object_name, since=since, until=until)
        except Exception:  # noqa: BLE001 - the count only feeds the ETA; the backfill checks again at the end
            total = None
        if console is None:
            return engine.backfill(object_name, since=since, until=until, dry_run=dry_run)
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.fields[total_text]}"),
            TextColumn("{task.fields[rate]:,.0f} rec/s"), TextColumn("calls {task.fields[calls]:,}"),
            TextColumn("quota left {task.fields[quota]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        ) as progress:
            task = progress.add_task(f"{connection}/{object_name}", total=total, rate=0.0, calls=0, quota="?",
                                     total_text="?" if total is None else f"{total:,}")
            started = dt.datetime.now(dt.UTC)

            def on_page(result: ObjectResult, page: Page) -> None:
                elapsed = max((dt.datetime.now(dt.UTC) - started).total_seconds(), 1e-6)
                usage: Any = engine.connector.usage
                quota = "?" if usage.remaining is None else f"{usage.remaining:,}"
                progress.update(task, completed=result.records, rate=result.records / elapsed,
                                calls=result.api_calls, quota=quota)

            return engine.backfill(object_name, since=since, until=until, dry_run=dry_run, progress=on_page)


# --- several backfills at once ------------------------------------------------------------------
# Small reference objects go first, so the big ones find their owners and stages stored.
REFERENCE = ("owners", "pipelines", "stages", "products", "price_book_entries")
MAX_WORKERS = 8


def backfill_jobs(settings: Settings, connections: Sequence[str], objects: Sequence[str] | None
                  ) -> list[tuple[str, str]]:
    """(connection, object) pairs: the given objects, or every configured object of each connection."""
    jobs: list[tuple[str, str]] = []
    for name in connections:
        conn = settings.connection(name)
        for object_name in (objects or conn.objects):
            jobs.append((name, object_name))
    return jobs


def plan_backfills(settings: Settings, jobs: Sequence[tuple[str, str]], *, since: dt.datetime | None = None,
                   until: dt.datetime | None = None) -> list[tuple[str, str, Any]]:
    """Each job's ``BackfillPlan`` (or the reason there is none): what ``backfill --dry-run`` shows.
    Each plan costs the one call the source's count takes."""
    out: list[tuple[str, str, Any]] = []
    for connection, object_name in jobs:
        connector = build_connector(settings.connection(connection))
        try:
            planner = getattr(connector, "plan_backfill", None)
            if planner is None:
                out.append((connection, object_name, f"{connector.kind} has no backfill plan"))
                continue
            out.append((connection, object_name, planner(object_name, since=since, until=until)))
        except Exception as exc:  # noqa: BLE001 - one connection's failure is shown, the others go on
            out.append((connection, object_name, describe_error(exc)))
        finally:
            connector.close()
    return out


def run_backfills(settings: Settings, store: Store, jobs: Sequence[tuple[str, str]], *,
                  since: dt.datetime | None = None, until: dt.datetime | None = None, dry_run: bool = False,
                  stop_event: threading.Event | None = None, workers: int | None = None) -> list[ObjectResult]:
    """Several backfills at once, one thread, connector and engine per (connection, object).

    The connectors of one portal, org or token spend from one shared limiter
    (``connectors.ratelimit.shared``), so however many run together they stay within the CRM's
    limit; the per-connection API budget is checked by each engine against the store. Reference
    objects run first, then everything else side by side. A job that fails is reported and never
    stops the others."""
    from concurrent.futures import ThreadPoolExecutor

    def one(job: tuple[str, str]) -> ObjectResult:
        connection, object_name = job
        if stop_event is not None and stop_event.is_set():
            return ObjectResult(connection, object_name, "backfill", status="stopped", error="stop requested")
        try:
            with open_engine(settings, store, connection, stop_event=stop_event) as engine:
                return engine.backfill(object_name, since=since, until=until, dry_run=dry_run)
        except Exception as exc:  # noqa: BLE001 - reported per job, the others go on
            error = describe_error(exc)
            log.error("backfill.job_failed", connection=connection, object=object_name, error=error)
            return ObjectResult(connection, object_name, "backfill", status="failed", error=error)

    results: list[ObjectResult] = []
    phases = [[j for j in jobs if j[1] in REFERENCE], [j for j in jobs if j[1] not in REFERENCE]]
    for phase in phases:
        if not phase:
            continue
        size = max(1, min(workers or MAX_WORKERS, len(phase)))
        with ThreadPoolExecutor(max_workers=size, thread_name_prefix="backfill") as pool:
            results.extend(pool.map(one, phase))
    return results
