"""Run a connector's page iterator one page ahead of the engine, in a worker thread.

While the engine writes page *n* (SQLite and psycopg do their work without holding the GIL),
the connector already fetches and maps page *n + 1*. Pages still reach the engine one at a time
and in order, and only the engine saves cursors, so a crash or a stop loses nothing: a page read
ahead but never handed over is simply read again by the next run. Errors raised by the connector
surface in the engine at the page where they happened. The worker runs in a copy of the caller's
context, so log lines keep the bound connection and run id.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = 0, 1, 2


class ReadAhead(Generic[T]):
    def __init__(self, source: Iterator[T], *, depth: int = 1, name: str = "crmsync-readahead") -> None:
        self._source = source
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._finished = False
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name=name, daemon=True)
        self._thread.start()

    def _put(self, entry: tuple[int, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put((_ITEM, item)):
                    return
            self._put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put((_ERROR, exc))

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == _ITEM:
            return value  # type: ignore[return-value]
        self._finished = True
        self._thread.join()
        if kind == _ERROR:
            assert isinstance(value, BaseException)
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the worker (it finishes the page in hand), then close the source iterator."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        self._thread.join()
        close = getattr(self._source, "close", None)
        if close is not None:
            close()
