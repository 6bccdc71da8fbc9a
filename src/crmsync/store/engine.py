"""Engine construction for the two supported databases.

SQLite (the embedded default): WAL journal, ``synchronous=NORMAL``, a busy timeout, foreign keys on.
pysqlite's own implicit transaction handling is switched off so that SQLAlchemy's ``begin`` emits
``BEGIN`` itself: write transactions (``Store.transaction()``) use ``BEGIN IMMEDIATE`` so two writers
queue on the busy timeout instead of failing with "database is locked" when upgrading a read lock.

PostgreSQL: ``postgresql+psycopg://`` (psycopg 3); plain ``postgresql://`` URLs are mapped to it.
Sessions run with ``timezone=UTC``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from crmsync.store.types import json_dumps, json_loads

#: execution option set on a connection whose transaction must take the write lock up front
WRITE_OPTION = "crmsync_write"

SQLITE_BUSY_TIMEOUT_MS = 30_000


class StoreError(RuntimeError):
    """A store operation that cannot be carried out (bad URL, bad argument, unknown kind)."""


def normalize_url(url: str | URL) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported store database {parsed.get_backend_name()!r} (sqlite or postgresql)")
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        raise StoreError(f"PostgreSQL needs the psycopg 3 driver (postgresql+psycopg://), got {parsed.drivername}")
    return parsed


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (see "begin" below)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA temp_store = MEMORY")
        # 2 MiB page cache per connection (SQLite's own default): a backfill writes every page once,
        # so a larger cache only grows the process, by its size for every pooled connection (8 MiB
        # each: +4 MB peak RSS for a 20,000-deal backfill, bench_peers; 64 MiB: +16 MB), and writes
        # no faster (400,000 deals replayed, bench_write --pragma cache_size=-8192: 75-100 us CPU a
        # deal in 4 rounds, -2048: 85-88); pages past it are read back from the OS page cache
        cursor.execute("PRAGMA cache_size = -2048")
        # checkpoint the WAL every 10,000 pages (40 MiB), not 1,000: a backfill's random keys touch
        # index pages all over the B-trees, and each checkpoint writes every page touched since
        # the last one back to the database (400,000 deals replayed: with 16-page commits, 64
        # against 71 us CPU per deal, wall 27 s against 33 s; bench/bench_write.py)
        cursor.execute("PRAGMA wal_autocheckpoint = 10000")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    if conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def create_store_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create the engine for ``url`` with the dialect settings described in the module docstring."""
    parsed = normalize_url(url)
    options: dict[str, Any] = {
        "json_serializer": json_dumps,
        "json_deserializer": json_loads,
        # error messages never carry SQL parameters (record values) into logs or the run log
        "hide_parameters": True,
    }
    if parsed.get_backend_name() == "postgresql":
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("options", "-c timezone=UTC")
        options.update(connect_args=connect_args, pool_pre_ping=True)
    options.update(kwargs)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine
