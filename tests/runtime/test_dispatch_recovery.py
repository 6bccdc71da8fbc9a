"""Dispatch and stalled-job recovery on PostgreSQL, piece by piece: one dispatcher at a time across
workers; a dead worker's sync job goes back to the queue, or, when the connection already has a job
waiting, is closed so that job can run.

The second case is what a webhook, or a dispatch that found the connection due again, leaves behind: while a sync job runs, its
queueing lock (a unique index over ``todo`` jobs only) lets another job for the same connection wait.
Requeueing the dead one would break that index, and leaving it ``doing`` would hold the connection's
lock forever (seen once in CI as one connection of fifty never synced after a worker was killed).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from procrastinate import App

from crmsync.runtime.distributed import (
    DISPATCH_LOCK_KEY,
    SYNC_TASK,
    Runtime,
    build_app,
    defer_sync,
    ensure_schema,
    libpq_conninfo,
    recover_stalled,
    sole_dispatcher,
)
from crmsync.settings import load_settings
from crmsync.store import Store

from .conftest import write_config

T = TypeVar("T")


def run_alone(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a thread of its own: the browser tests' Playwright (sync API) keeps an event
    loop running on the main thread for the whole session."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _jobs(conninfo: str, connection: str) -> list[tuple[int, str, int]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT id, status::text, attempts FROM procrastinate_jobs WHERE task_name = %s "
                            "AND args->>'connection' = %s ORDER BY id", (SYNC_TASK, connection)).fetchall()
    return [(int(i), str(s), int(a)) for i, s, a in rows]


async def _take_job_on_a_worker_that_dies(app: App, conninfo: str) -> int:
    """Fetch the next job as a registered worker, then age that worker's heartbeat past any timeout."""
    worker_id = await app.job_manager.register_worker()
    job = await app.job_manager.fetch_job(queues=None, worker_id=worker_id)
    assert job is not None and job.id is not None
    with psycopg.connect(conninfo) as conn:
        conn.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' WHERE id = %s",
                     (worker_id,))
    return job.id


def _runtime(tmp_path: Path, store_url: str) -> Runtime:
    settings = load_settings(write_config(tmp_path / "crmsync.yaml", store_url, []))
    store = Store.open(store_url)
    store.upgrade()
    return Runtime(settings, store, threading.Event(), stalled_after=5.0)


async def _scenario(app: App, conninfo: str, runtime: Runtime, *, second_job: bool) -> tuple[int, int]:
    async with app.open_async():
        assert await defer_sync(app, "pd-07", "schedule") == "queued"
        stalled = await _take_job_on_a_worker_that_dies(app, conninfo)
        if second_job:  # deferred while the first one ran: the queueing lock only covers waiting jobs
            assert await defer_sync(app, "pd-07", "webhook") == "queued"
        recovered = await recover_stalled(app, runtime)
    return stalled, recovered


def test_a_stalled_job_goes_back_to_the_queue(tmp_path: Path, pg_database: str) -> None:
    conninfo = libpq_conninfo(pg_database)
    ensure_schema(conninfo)
    runtime = _runtime(tmp_path, pg_database)
    app = build_app(conninfo)

    stalled, recovered = run_alone(_scenario(app, conninfo, runtime, second_job=False))

    assert recovered == 1 and runtime.recovered == [stalled]
    assert _jobs(conninfo, "pd-07") == [(stalled, "todo", 1)]


def test_a_stalled_job_with_one_already_waiting_is_closed_so_the_waiting_one_runs(
        tmp_path: Path, pg_database: str) -> None:
    conninfo = libpq_conninfo(pg_database)
    ensure_schema(conninfo)
    runtime = _runtime(tmp_path, pg_database)
    app = build_app(conninfo)

    stalled, recovered = run_alone(_scenario(app, conninfo, runtime, second_job=True))

    jobs = _jobs(conninfo, "pd-07")
    assert recovered == 1
    assert [(s, a) for i, s, a in jobs if i == stalled] == [("failed", 1)]
    waiting = [i for i, s, _ in jobs if s == "todo"]
    assert len(waiting) == 1 and waiting[0] != stalled

    async def next_job_runs() -> int | None:
        async with app.open_async():
            worker_id = await app.job_manager.register_worker()
            job = await app.job_manager.fetch_job(queues=None, worker_id=worker_id)
        return job.id if job else None

    # Nothing holds the connection's lock any more: a live worker gets the waiting job.
    assert run_alone(next_job_runs()) == waiting[0]


def test_one_dispatcher_at_a_time_and_the_lock_goes_with_the_session(pg_database: str) -> None:
    conninfo = libpq_conninfo(pg_database)

    async def scenario() -> tuple[bool, bool, bool]:
        # the second: another worker's dispatch, while the first runs
        async with sole_dispatcher(conninfo) as first, sole_dispatcher(conninfo) as second:
            pass
        async with sole_dispatcher(conninfo) as after:
            pass
        return first, second, after

    assert run_alone(scenario()) == (True, False, True)

    # A worker killed mid-dispatch: its session ends, so does the lock.
    holder = psycopg.connect(conninfo, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (DISPATCH_LOCK_KEY,))

    async def try_once() -> bool:
        async with sole_dispatcher(conninfo) as sole:
            return sole

    assert run_alone(try_once()) is False
    holder.close()
    assert run_alone(try_once()) is True
