"""The embedded worker: APScheduler in this process, one machine, SQLite (or PostgreSQL) store.

Per connection an incremental-sync job on its schedule (interval or cron, UTC) runs the pipeline
(sync -> rules on changed -> outbox drain); a delete-sweep job per connection; the daily hygiene
digest and the billing sync on their own crons. Jobs coalesce and run one instance at a time; a
per-connection lock additionally serialises everything touching one connection (a webhook-triggered
cycle arriving during a scheduled one makes that one run once more instead of running twice).

On SQLite an OS file lock beside the database keeps a second embedded worker out. SIGTERM/SIGINT
set the stop event: the running cycles finish their current page, checkpoint and return; then the
scheduler, the HTTP endpoint and the lock are released and the process exits.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.schedulers.background import BackgroundScheduler

from crmsync.logging import get_logger
from crmsync.model import UTC, now_utc
from crmsync.runtime import jobs, schedule_state
from crmsync.runtime.http import HttpServer, build_app
from crmsync.runtime.locks import StoreLock
from crmsync.runtime.metrics import WorkerMetrics
from crmsync.runtime.pipeline import CycleReport, run_connection_cycle, sync_connections
from crmsync.runtime.store_health import StoreOutage, is_store_outage, wait_until_available
from crmsync.runtime.triggers import cron_trigger, sync_trigger
from crmsync.settings import Settings
from crmsync.signals import install_stop_signals
from crmsync.store import Store

log = get_logger("crmsync.runtime.embedded")


class ConnectionRunner:
    """Runs connection cycles, at most one per connection at a time in this process."""

    def __init__(self, settings: Settings, store: Store, stop_event: threading.Event,
                 observer: Callable[[CycleReport], None] | None = None,
                 outage: StoreOutage | None = None) -> None:
        self.settings = settings
        self.store = store
        self.stop_event = stop_event
        self.observer = observer
        self.outage = outage or StoreOutage()
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._again: set[str] = set()

    def _lock(self, connection: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(connection, threading.Lock())

    def run(self, connection: str, reason: str = "schedule") -> CycleReport | None:
        """One cycle; if one is already running for ``connection``, it runs once more afterwards.
        While the store is down, cycles wait out the outage's backoff and never raise for it."""
        if not self.outage.may_try():
            return None
        try:
            report = self._run(connection, reason)
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            self.outage.failed(exc, connection=connection)
            return None
        self.outage.succeeded()
        return report

    def _run(self, connection: str, reason: str) -> CycleReport | None:
        lock = self._lock(connection)
        if not lock.acquire(blocking=False):
            with self._guard:
                self._again.add(connection)
            return None
        try:
            while True:
                with self._guard:
                    self._again.discard(connection)
                report = run_connection_cycle(self.settings, self.store, connection, stop_event=self.stop_event,
                                              reason=reason, observer=self.observer)
                with self._guard:
                    again = connection in self._again
                    self._again.discard(connection)
                if not again or self.stop_event.is_set():
                    return report
                reason = "coalesced"
        finally:
            lock.release()

    @contextmanager
    def exclusive(self, connection: str) -> Iterator[None]:
        with self._lock(connection):
            yield


class EmbeddedWorker:
    def __init__(self, settings: Settings, store: Store, *, concurrency: int = 4, http_host: str = "127.0.0.1",
                 http_port: int | None = None, debounce_seconds: float = 0.5,
                 stop_event: threading.Event | None = None) -> None:
        self.settings = settings
        self.store = store
        self.concurrency = max(1, concurrency)
        self.http_host = http_host
        self.http_port = settings.worker.http_port if http_port is None else http_port
        self.debounce = dt.timedelta(seconds=debounce_seconds)
        self.stop_event = stop_event or threading.Event()
        self.connections = [c.name for c in sync_connections(settings)]
        self.metrics = WorkerMetrics(store, self.connections, {c.name: c.kind for c in settings.connections})
        self.runner = ConnectionRunner(settings, store, self.stop_event, self.metrics.observe_cycle)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(self.concurrency)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        self.lock = StoreLock.for_store(settings.store.url)
        self.http: HttpServer | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> EmbeddedWorker:
        if self.lock is not None:
            self.lock.acquire()  # WorkerLockError when another embedded worker holds the store
        try:
            if not wait_until_available(self.store, self.stop_event, self.runner.outage, prepare=self.store.upgrade):
                raise SystemExit(0)  # asked to stop while waiting for the store
            interrupted = self.store.mark_interrupted_runs()
            if interrupted:
                log.warning("worker.interrupted_runs", count=interrupted)
            self._add_jobs()
            self.scheduler.start()
            if self.http_port is not None and self.http_port >= 0:
                app = build_app(self.settings, self.store, self.metrics, self)
                self.http = HttpServer(app, host=self.http_host, port=self.http_port).start()
        except BaseException:
            self._release()
            raise
        log.info("worker.started", mode="embedded", connections=len(self.connections),
                 http=self.http.url if self.http else None)
        return self

    def _add_jobs(self) -> None:
        now = now_utc()
        states = schedule_state.load_all(self.store)
        for conn in sync_connections(self.settings):
            due = schedule_state.read_timestamp(states.get(conn.name), "next_due_at")
            first = now if due is None or due <= now else due
            self.scheduler.add_job(self.runner.run, sync_trigger(conn.schedule), args=[conn.name, "schedule"],
                                   id=f"sync:{conn.name}", name=f"sync {conn.name}", next_run_time=first)
            self.scheduler.add_job(self._sweep, cron_trigger(conn.schedule.delete_sweep_cron), args=[conn.name],
                                   id=f"sweep:{conn.name}", name=f"delete sweep {conn.name}")
        worker = self.settings.worker
        self.scheduler.add_job(self._outage_safe, cron_trigger(worker.hygiene_digest_cron),
                               args=[jobs.hygiene_digest, self.settings, self.store], id="hygiene_digest",
                               name="hygiene digest")
        if self.settings.billing.connection:
            self.scheduler.add_job(self._outage_safe, cron_trigger(worker.billing_sync_cron),
                                   args=[jobs.billing_sync, self.settings, self.store], id="billing_sync",
                                   name="billing sync")

    def _outage_safe(self, job: Callable[..., Any], *args: Any) -> Any:
        """Run a scheduled job; a store outage is logged once and waits for the next run."""
        try:
            return job(*args)
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            self.runner.outage.failed(exc, job=getattr(job, "__name__", "job"))
            return None

    def _sweep(self, connection: str) -> None:
        with self.runner.exclusive(connection):
            if not self.stop_event.is_set():
                self._outage_safe(partial(jobs.sweep_connection, stop_event=self.stop_event), self.settings,
                                  self.store, connection)

    def stop(self) -> None:
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # running cycles stop after their current page
        self._release()
        log.info("worker.stopped", mode="embedded")

    def _release(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.lock is not None:
            self.lock.release()

    def run_forever(self, install_signals: bool = True) -> None:
        if install_signals and threading.current_thread() is threading.main_thread():
            install_stop_signals(self.stop_event)  # the one helper (crmsync.signals)
        self.start()
        try:
            while not self.stop_event.wait(0.5):
                pass
        finally:
            self.stop()

    # --- SyncRequester (webhooks) -------------------------------------------------------------
    def is_running(self) -> bool:
        return bool(self.scheduler.running) and not self.stop_event.is_set()

    def request_sync(self, connection: str, *, reason: str, touched: list[tuple[str, str]]) -> str:
        if self.stop_event.is_set():
            return "stopping"
        try:
            self.scheduler.add_job(self.runner.run, "date", run_date=now_utc() + self.debounce,
                                   args=[connection, reason], id=f"hook:{connection}",
                                   name=f"webhook sync {connection}", misfire_grace_time=None)
        except ConflictingIdError:
            return "already queued"
        return "queued"
