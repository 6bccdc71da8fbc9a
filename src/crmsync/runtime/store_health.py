"""Riding through a store outage: tell an unavailable database from a bug, back off, resume.

PostgreSQL stopped or restarting, a network cut, SQLite locked past its busy timeout or its disk
full: none is a record's or a connection's fault, and none is a reason for the worker to exit.
``StoreOutage`` keeps the worker's view of the store: each failed attempt doubles the wait before
the next (``base`` to ``cap`` seconds, with jitter so several workers do not retry in step), the
first success after an outage is logged, and ``wait_until_available`` holds a starting worker
until its store answers (or it is asked to stop). Readiness answers 503 meanwhile (``/readyz``
checks the store itself).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from crmsync.errors import describe_error
from crmsync.logging import get_logger
from crmsync.store import Store

log = get_logger("crmsync.runtime.store")

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0


def is_store_outage(exc: BaseException) -> bool:
    """True when ``exc`` says the database is unreachable or cannot take writes right now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OperationalError | InterfaceError | DisconnectionError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        name = type(current).__module__ + "." + type(current).__name__
        if name.startswith("psycopg.") and type(current).__name__ in ("OperationalError", "InterfaceError"):
            return True
        current = current.__cause__ or current.__context__
    return False


class StoreOutage:
    def __init__(self, *, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base_s, self.cap_s, self.clock = base_s, cap_s, clock
        self._lock = threading.Lock()
        self.failures = 0
        self.retry_at = 0.0
        self.since: float | None = None

    @property
    def down(self) -> bool:
        return self.failures > 0

    def delay(self) -> float:
        raw = min(self.cap_s, self.base_s * 2 ** max(self.failures - 1, 0))
        return raw * random.uniform(0.8, 1.0)

    def may_try(self) -> bool:
        with self._lock:
            return self.failures == 0 or self.clock() >= self.retry_at

    def failed(self, exc: BaseException, **context: Any) -> float:
        with self._lock:
            self.failures += 1
            if self.since is None:
                self.since = self.clock()
            wait = self.delay()
            self.retry_at = self.clock() + wait
        log.warning("worker.store_unavailable", attempt=self.failures, retry_in_s=round(wait, 1),
                    error=describe_error(exc), **context)
        return wait

    def succeeded(self) -> None:
        with self._lock:
            if not self.failures:
                return
            down_s = self.clock() - (self.since or self.clock())
            attempts, self.failures, self.since, self.retry_at = self.failures, 0, None, 0.0
        log.info("worker.store_recovered", after_s=round(down_s, 1), attempts=attempts)


def wait_until_available(store: Store, stop_event: threading.Event, outage: StoreOutage | None = None,
                         *, prepare: Callable[[], Any] | None = None) -> bool:
    """Block until the store answers (and ``prepare``, e.g. the schema upgrade, succeeds); False if
    asked to stop first. Never gives up on its own."""
    outage = outage or StoreOutage()
    while not stop_event.is_set():
        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            if prepare is not None:
                prepare()
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            stop_event.wait(outage.failed(exc, phase="start"))
            continue
        outage.succeeded()
        return True
    return False
