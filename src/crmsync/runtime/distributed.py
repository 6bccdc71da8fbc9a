"""Distributed mode: several worker processes share the work through PostgreSQL with procrastinate.

No home-made coordination: procrastinate's job table is the queue and its locks are the mutexes.

- The schedule stays in crmsync's tables (``kv_state`` namespace ``worker_schedule``, see
  ``schedule_state``). A procrastinate *periodic* task, ``crmsync.dispatch``, runs every few seconds
  (once per tick across all workers: procrastinate deduplicates periodic defers; and one at a time,
  under a session advisory lock, as one tick's run may outlast the tick), reads which
  connections are due and defers ``crmsync.sync_connection(connection=...)`` with
  ``lock="sync:<name>"`` (a connection never syncs on two workers at once) and
  ``queueing_lock="sync:<name>"`` (at most one waiting job per connection: no pile-up).
- Stalled-job recovery: workers send heartbeats; the same periodic task finds ``doing`` jobs whose
  worker stopped heartbeating (``JobManager.get_stalled_jobs``), closes the dead worker's open run
  rows as failed, and puts the job back to ``todo`` (``retry_job``): another worker continues it from
  the last committed page. If a job for that connection is already waiting, the stalled one is
  closed instead and the waiting one does the work.
- Large backfills are split into time-window slices (``defer_backfill``), each a
  ``crmsync.backfill_slice`` job resumable through the engine's per-window backfill cursor; any worker
  can take or continue a slice. Slices of one connection run one at a time (``lock="backfill:<name>"``).
- Webhooks defer ``sync_connection`` at once under the same queueing lock.
- SIGTERM: running jobs finish their current page and checkpoint; a job stopped this way leaves the
  connection due, so the next dispatch hands it to another worker.

procrastinate's schema is applied programmatically and idempotently next to crmsync's tables.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import procrastinate
import psycopg
from procrastinate import exceptions as pexc
from procrastinate.job_context import JobContext
from procrastinate.jobs import Job, Status
from procrastinate.schema import SchemaManager
from procrastinate.worker import Worker
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from crmsync.logging import get_logger
from crmsync.model import now_utc, parse_timestamp
from crmsync.runtime import schedule_state
from crmsync.runtime.http import HttpServer
from crmsync.runtime.http import build_app as build_http_app
from crmsync.runtime.metrics import WorkerMetrics
from crmsync.runtime.pipeline import run_connection_cycle, sync_connections
from crmsync.runtime.store_health import StoreOutage, wait_until_available
from crmsync.runtime.triggers import next_due
from crmsync.settings import Settings
from crmsync.signals import install_stop_signals
from crmsync.store import Store
from crmsync.store import tables as t
from crmsync.sync.runner import open_engine

log = get_logger("crmsync.runtime.distributed")

SYNC_TASK = "crmsync.sync_connection"
BACKFILL_TASK = "crmsync.backfill_slice"
DISPATCH_TASK = "crmsync.dispatch"
SCHEMA_LOCK_KEY = 7265735  # advisory lock: one schema installer at a time
DISPATCH_LOCK_KEY = 7265736  # advisory lock: one dispatch (recovery and deferral) at a time
CONTEXT_KEY = "crmsync"


class DistributedError(RuntimeError):
    pass


def libpq_conninfo(store_url: str) -> str:
    """The store's SQLAlchemy URL as a libpq URL for psycopg / procrastinate."""
    url = make_url(store_url)
    if url.get_backend_name() != "postgresql":
        raise DistributedError("distributed mode needs the store on PostgreSQL (store.url: postgresql+psycopg://...)")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def sync_lock(connection: str) -> str:
    return f"sync:{connection}"


def backfill_lock(connection: str) -> str:
    return f"backfill:{connection}"


def ensure_schema(conninfo: str) -> bool:
    """Install procrastinate's schema if absent (under an advisory lock); True if installed now."""
    with psycopg.connect(conninfo, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if row is not None and row[0] is not None:
            return False
        conn.execute(SchemaManager.get_schema())
        conn.commit()
        return True


@dataclass
class Runtime:
    """What the tasks of one worker process need (passed as procrastinate additional context)."""

    settings: Settings
    store: Store
    stop_event: threading.Event
    stalled_after: float = 30.0
    metrics: WorkerMetrics | None = None
    dispatched: int = 0
    recovered: list[int] = field(default_factory=list)


def _runtime(context: JobContext) -> Runtime:
    runtime = context.additional_context.get(CONTEXT_KEY)
    if not isinstance(runtime, Runtime):
        raise DistributedError("crmsync task run outside a crmsync worker (no runtime context)")
    return runtime


def build_app(conninfo: str, *, dispatch_every: int = 2) -> procrastinate.App:
    """The procrastinate app with crmsync's tasks (sync, backfill slice, periodic dispatch)."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name=SYNC_TASK, pass_context=True)
    def sync_connection(context: JobContext, connection: str, reason: str = "schedule") -> dict[str, Any]:
        runtime = _runtime(context)
        observer = runtime.metrics.observe_cycle if runtime.metrics else None
        report = run_connection_cycle(runtime.settings, runtime.store, connection, stop_event=runtime.stop_event,
                                      reason=reason, observer=observer)
        return {"status": report.status, "changed": report.changed, "steps": report.outcomes}

    @app.task(name=BACKFILL_TASK, pass_context=True)
    def backfill_slice(context: JobContext, connection: str, object_name: str, since: str | None = None,
                       until: str | None = None) -> dict[str, Any]:
        runtime = _runtime(context)
        lo, hi = parse_timestamp(since), parse_timestamp(until)
        with open_engine(runtime.settings, runtime.store, connection, stop_event=runtime.stop_event) as engine:
            result = engine.backfill(object_name, since=lo, until=hi)
        if result.status == "stopped" and runtime.stop_event.is_set():
            # Interrupted by shutdown: hand the rest of the slice (from its checkpoint) to any worker.
            sync_app_defer_slice(context, connection, object_name, since, until)
        return {"status": result.status, "records": result.records, "complete": result.complete}

    @app.periodic(cron=f"* * * * * */{max(1, dispatch_every)}", periodic_id="dispatch")
    @app.task(name=DISPATCH_TASK, pass_context=True, queueing_lock="crmsync.dispatch")
    async def dispatch(context: JobContext, timestamp: int) -> dict[str, Any]:
        runtime = _runtime(context)
        async with sole_dispatcher(conninfo) as sole:
            if not sole:
                return {"skipped": "another worker is dispatching"}
            recovered = await recover_stalled(context.app, runtime)
            deferred = await dispatch_due(context.app, runtime)
        return {"deferred": deferred, "recovered": recovered}

    return app


@asynccontextmanager
async def sole_dispatcher(conninfo: str) -> AsyncIterator[bool]:
    """True while this worker's dispatch is the only one running. The periodic dispatch job's queueing
    lock only keeps one *waiting*, so a dispatch can start while another still runs on a second worker:
    both would read the same due connections and recover the same stalled jobs. A session advisory
    lock (not a job lock, which a killed worker would hold until its job is recovered, by a dispatch)
    goes away with the session, however the worker ends."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (DISPATCH_LOCK_KEY,))
        row = await cursor.fetchone()
        yield bool(row and row[0])


def sync_app_defer_slice(context: JobContext, connection: str, object_name: str, since: str | None,
                         until: str | None) -> None:
    context.app.configure_task(BACKFILL_TASK, lock=backfill_lock(connection)).defer(
        connection=connection, object_name=object_name, since=since, until=until)


async def defer_sync(app: procrastinate.App, connection: str, reason: str) -> str:
    try:
        await app.configure_task(SYNC_TASK, lock=sync_lock(connection), queueing_lock=sync_lock(connection)
                                 ).defer_async(connection=connection, reason=reason)
    except pexc.AlreadyEnqueued:
        return "already queued"
    return "queued"


async def dispatch_due(app: procrastinate.App, runtime: Runtime) -> int:
    """Defer a sync for every due connection; move its ``next_due_at`` on (the finish moves it again).
    Deferred before it is moved on: a worker killed between the two leaves the connection due, not
    skipped for an interval."""
    now = now_utc()
    names = [c.name for c in sync_connections(runtime.settings)]
    due = await asyncio.to_thread(schedule_state.due_connections, runtime.store, names, now)
    deferred = 0
    for name in due:
        outcome = await defer_sync(app, name, "schedule")
        deferred += outcome == "queued"
        conn = runtime.settings.connection(name)
        await asyncio.to_thread(schedule_state.update, runtime.store, name, last_deferred_at=now,
                                next_due_at=next_due(conn.schedule, now))
    if deferred:
        log.info("dispatch.deferred", count=deferred, due=len(due))
    runtime.dispatched += deferred
    return deferred


async def recover_stalled(app: procrastinate.App, runtime: Runtime) -> int:
    """Put the jobs of workers that stopped heartbeating back in the queue."""
    stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=runtime.stalled_after)
    count = 0
    for job in stalled:
        if job.task_name not in (SYNC_TASK, BACKFILL_TASK):
            continue
        connection = str(job.task_kwargs.get("connection", ""))
        kind = "sync" if job.task_name == SYNC_TASK else "backfill"
        try:
            closed = await asyncio.to_thread(close_orphan_runs, runtime.store, connection, kind)
            outcome = await _requeue_or_close(app, job)
        except Exception as exc:  # noqa: BLE001 - another worker recovered it first
            log.info("recover.skipped", job=job.id, error=type(exc).__name__)
            continue
        count += 1
        assert job.id is not None
        runtime.recovered.append(job.id)
        log.warning("recover.stalled_job", job=job.id, task=job.task_name, connection=connection,
                    closed_runs=closed, outcome=outcome)
    return count


async def _requeue_or_close(app: procrastinate.App, job: Job) -> str:
    """Put a stalled job back to ``todo``; if the connection already has a job waiting under the same
    queueing lock (deferred while this one ran: a webhook, or a dispatch finding it due), that job does the
    same work, so the stalled one is closed as failed instead. Requeueing it is refused by the queueing
    lock's unique index, and left ``doing`` it would hold the connection's lock forever."""
    try:
        await app.job_manager.retry_job(job)
    except pexc.UniqueViolation:
        await app.job_manager.finish_job(job, Status.FAILED, delete_job=False)
        return "closed; a queued job takes over"
    return "requeued"


def close_orphan_runs(store: Store, connection: str, kind: str) -> int:
    """Runs a dead worker left ``running`` for this connection are closed as failed. Safe because
    the stalled job still holds the connection's lock: no live worker runs this kind for it."""
    runs = t.runs.c
    with store.transaction() as tx:
        ids = list(tx.conn.execute(select(runs.id).where(
            runs.connection == connection, runs.kind == kind, runs.status == "running")).scalars())
        if ids:
            tx.conn.execute(update(t.runs).where(runs.id.in_(ids)).values(
                status="interrupted", finished_at=now_utc(), error="worker lost; job recovered by another worker"))
    return len(ids)


def split_window(since: dt.datetime, until: dt.datetime, slices: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """``slices`` contiguous half-open windows covering [since, until)."""
    if until <= since or slices < 1:
        raise ValueError("need since < until and at least one slice")
    step = (until - since) / slices
    edges = [since + step * i for i in range(slices)] + [until]
    return [(edges[i], edges[i + 1]) for i in range(slices)]


def defer_backfill(app: procrastinate.App, connection: str, object_name: str, windows: Iterable[tuple[dt.datetime,
                   dt.datetime]]) -> int:
    """Defer one resumable backfill job per window (synchronously, e.g. from the CLI)."""
    n = 0
    with app.open():
        for lo, hi in windows:
            app.configure_task(BACKFILL_TASK, lock=backfill_lock(connection)).defer(
                connection=connection, object_name=object_name, since=lo.isoformat(), until=hi.isoformat())
            n += 1
    return n


class _Requester:
    """Webhook side: defer from the HTTP thread onto the worker's event loop."""

    def __init__(self, app: procrastinate.App, loop: asyncio.AbstractEventLoop, worker: Callable[[], Worker],
                 stop_event: threading.Event) -> None:
        self.app, self.loop, self.worker, self.stop_event = app, loop, worker, stop_event

    def request_sync(self, connection: str, *, reason: str, touched: list[tuple[str, str]]) -> str:
        future = asyncio.run_coroutine_threadsafe(defer_sync(self.app, connection, reason), self.loop)
        return future.result(timeout=10)

    def is_running(self) -> bool:
        return self.worker().worker_id is not None and not self.stop_event.is_set()


def run_worker(settings: Settings, *, concurrency: int = 4, http_host: str = "127.0.0.1",
               http_port: int | None = None, dispatch_every: int = 2, heartbeat_every: float = 2.0,
               stalled_after: float = 10.0, stop_event: threading.Event | None = None,
               install_signals: bool = True, name: str | None = None) -> None:
    """Run one distributed worker process until SIGTERM/SIGINT (or ``stop_event``)."""
    conninfo = libpq_conninfo(settings.store.url)
    store = Store.open(settings.store.url)
    stop = stop_event or threading.Event()

    def prepare() -> None:
        store.upgrade()
        store.mark_interrupted_runs()
        ensure_schema(conninfo)

    if not wait_until_available(store, stop, prepare=prepare):
        return
    metrics = WorkerMetrics(store, [c.name for c in sync_connections(settings)],
                            {c.name: c.kind for c in settings.connections})
    runtime = Runtime(settings, store, stop, stalled_after=stalled_after, metrics=metrics)
    app = build_app(conninfo, dispatch_every=dispatch_every)
    port = settings.worker.http_port if http_port is None else http_port
    try:
        asyncio.run(_serve(app, runtime, concurrency=concurrency, http_host=http_host, http_port=port,
                           heartbeat_every=heartbeat_every, install_signals=install_signals, name=name))
    finally:
        store.close()


async def _serve(app: procrastinate.App, runtime: Runtime, *, concurrency: int, http_host: str, http_port: int,
                 heartbeat_every: float, install_signals: bool, name: str | None) -> None:
    loop = asyncio.get_running_loop()
    async with app.open_async():
        current: dict[str, Worker] = {}

        def new_worker() -> Worker:
            current["worker"] = Worker(
                app, concurrency=max(2, concurrency), name=name, install_signal_handlers=False,
                additional_context={CONTEXT_KEY: runtime}, update_heartbeat_interval=heartbeat_every,
                stalled_worker_timeout=runtime.stalled_after, fetch_job_polling_interval=1.0)
            return current["worker"]

        new_worker()

        def request_stop(*_: Any) -> None:
            log.warning("worker.stop_requested", mode="distributed")
            runtime.stop_event.set()
            current["worker"].stop()

        if install_signals:  # the one helper; the worker stops from the loop's thread
            install_stop_signals(runtime.stop_event, on_stop=lambda: loop.call_soon_threadsafe(request_stop))

        async def watch_stop_event() -> None:
            while not runtime.stop_event.is_set():
                await asyncio.sleep(0.2)
            current["worker"].stop()

        watcher = asyncio.create_task(watch_stop_event())
        http: HttpServer | None = None
        if http_port >= 0:
            assert runtime.metrics is not None
            requester = _Requester(app, loop, lambda: current["worker"], runtime.stop_event)
            http = HttpServer(build_http_app(runtime.settings, runtime.store, runtime.metrics, requester),
                              host=http_host, port=http_port)
            await asyncio.to_thread(http.start)
        log.info("worker.started", mode="distributed", concurrency=concurrency, http=http.url if http else None)
        outage = StoreOutage()
        try:
            while True:
                # procrastinate stops its worker when the database goes away (its listener and
                # heartbeat side tasks fail): wait for the store, then start a fresh one. Only a
                # stop request ends this loop.
                try:
                    await current["worker"].run()
                    reason: BaseException = RuntimeError("the job worker stopped")
                except Exception as exc:  # noqa: BLE001 - classified: outages are waited out
                    reason = exc
                if runtime.stop_event.is_set():
                    break
                outage.failed(reason, phase="jobs")
                await asyncio.sleep(outage.delay())
                if not await asyncio.to_thread(wait_until_available, runtime.store, runtime.stop_event, outage):
                    break
                new_worker()
                log.info("worker.jobs_restarted", mode="distributed")
        finally:
            watcher.cancel()
            if http is not None:
                await asyncio.to_thread(http.stop)
            log.info("worker.stopped", mode="distributed")
