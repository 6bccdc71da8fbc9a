"""The embedded worker's single-instance lock: an OS file lock beside the SQLite database.

Two embedded workers on one SQLite store would each run every schedule (and fight over the
database's write lock), so the second one refuses to start with a clear error. The lock is an
``fcntl.flock`` on ``<database>.worker.lock``: the kernel drops it when the process dies, so a
killed worker never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url


class WorkerLockError(RuntimeError):
    """Another worker holds the store's lock."""


def sqlite_database_path(store_url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or in-memory SQLite)."""
    url = make_url(store_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


class StoreLock:
    """Exclusive, non-blocking lock file; ``acquire`` raises ``WorkerLockError`` if held."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_store(cls, store_url: str) -> StoreLock | None:
        database = sqlite_database_path(store_url)
        if database is None:
            return None
        return cls(database.with_name(database.name + ".worker.lock"))

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StoreLock:
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise WorkerLockError(
                f"another crmsync worker (pid {holder}) already runs on this SQLite store; lock file {self.path}. "
                "Stop it first, or move to PostgreSQL and `crmsync worker --distributed` to run several."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
