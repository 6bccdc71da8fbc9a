"""Shared fixtures: a fresh, upgraded ``Store`` per test.

By default the store is a SQLite file in the test's ``tmp_path``. When ``CRMSYNC_TEST_STORE_URL``
points at a PostgreSQL server (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``),
a throwaway database with a random suffix is created on that server once per session, upgraded,
truncated between tests and dropped at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from crmsync.store import Store
from crmsync.store.engine import normalize_url
from crmsync.store.tables import ALL_TABLES

STORE_URL_ENV = "CRMSYNC_TEST_STORE_URL"


def _server_url() -> URL | None:
    raw = os.environ.get(STORE_URL_ENV)
    if not raw:
        return None
    url = normalize_url(raw)
    if url.get_backend_name() != "postgresql":
        raise pytest.UsageError(f"{STORE_URL_ENV} must be a PostgreSQL URL, got {url.get_backend_name()}")
    return url


class PgDatabases:
    """Creates throwaway databases on the server of ``admin_url`` and drops them on ``close``."""

    def __init__(self, admin_url: URL) -> None:
        self.admin_url = admin_url
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create(self, prefix: str = "crmsync_test") -> str:
        name = f"{prefix}_{secrets.token_hex(5)}"
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        with self.engine.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.clear()
        self.engine.dispose()


#: Variables an operator's shell may carry that would change what a test reads (the config file and
#: every ``CRMSYNC__*`` override); the suite's own knobs (``CRMSYNC_TEST_*``, ``CRMSYNC_TRUTH_*``) stay.
_OPERATOR_ENV = ("CRMSYNC_CONFIG",)


@pytest.fixture(autouse=True)
def _isolated_from_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees no ``CRMSYNC__*`` or ``CRMSYNC_CONFIG`` from the shell (children inherit this)."""
    for name in list(os.environ):
        if name.startswith("CRMSYNC__") or name in _OPERATOR_ENV:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases | None]:
    url = _server_url()
    if url is None:
        yield None
        return
    databases = PgDatabases(url)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(scope="session")
def _session_pg_store(pg_databases: PgDatabases | None) -> Iterator[Store | None]:
    if pg_databases is None:
        yield None
        return
    store = Store.open(pg_databases.create())
    store.upgrade()
    try:
        yield store
    finally:
        store.close()


def _truncate_all(store: Store) -> None:
    names = ", ".join(f'"{table.name}"' for table in ALL_TABLES)
    with store.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def store(tmp_path: Path, _session_pg_store: Store | None) -> Iterator[Store]:
    """A fresh, upgraded store (SQLite file, or the session's PostgreSQL database truncated)."""
    if _session_pg_store is not None:
        _truncate_all(_session_pg_store)
        yield _session_pg_store
        return
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def empty_store_url(tmp_path: Path, pg_databases: PgDatabases | None) -> Iterator[Callable[[], str]]:
    """Factory of URLs of brand-new empty databases on the configured backend (no schema)."""
    made: list[str] = []

    def make() -> str:
        if pg_databases is None:
            url = f"sqlite:///{tmp_path / f'empty-{len(made)}.db'}"
        else:
            url = pg_databases.create("crmsync_empty")
        made.append(url)
        return url

    yield make
    if pg_databases is not None:
        for url in made:
            pg_databases.drop(url)


# --- one headless Chromium per test session (Debian's package; Playwright drives it) ---------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """The session's browser: Playwright's sync API allows one driver per process, so every
    browser test (console pages, report pages) shares this one."""
    import shutil

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
