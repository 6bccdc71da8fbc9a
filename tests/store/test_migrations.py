"""Alembic migrations create exactly the SQLModel schema, from empty, idempotently."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from crmsync.store import Store, metadata
from crmsync.store.repository import MIGRATIONS_DIR
from crmsync.store.tables import ALL_TABLES


def schema_diffs(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, metadata))


def head_revision() -> str:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_upgrade_from_empty_creates_the_schema(empty_store_url: Callable[[], str]) -> None:
    store = Store.open(empty_store_url())
    try:
        assert store.current_revision() is None
        assert inspect(store.engine).get_table_names() == []
        store.upgrade()
        assert store.current_revision() == head_revision() == "0008"
        tables = set(inspect(store.engine).get_table_names())
        assert {t.name for t in ALL_TABLES} | {"alembic_version"} == tables
        assert schema_diffs(store) == []
        store.upgrade()  # a second run is a no-op
        assert store.current_revision() == head_revision()
        assert schema_diffs(store) == []
    finally:
        store.close()


def test_comparison_is_not_vacuous(empty_store_url: Callable[[], str]) -> None:
    """The diff check above would notice a schema that drifted from the models."""
    store = Store.open(empty_store_url())
    try:
        store.upgrade()
        with store.engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_deals_connection_modified_at"))
            conn.execute(text("ALTER TABLE kv_state ADD COLUMN surprise INTEGER"))
        diffs = [d[0] if isinstance(d, tuple) else d for d in schema_diffs(store)]
        assert "remove_index" not in diffs  # the index is in the models, so it is *missing*
        assert "add_index" in diffs
        assert "remove_column" in diffs
    finally:
        store.close()


def test_migrated_store_matches_metadata(store: Store) -> None:
    assert store.current_revision() == head_revision()
    assert schema_diffs(store) == []


def test_sqlite_pragmas(store: Store) -> None:
    if store.dialect != "sqlite":
        pytest.skip("SQLite only")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_postgres_session_runs_in_utc(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW timezone").scalar() == "UTC"


def test_url_forms() -> None:
    from crmsync.store import StoreError
    from crmsync.store.engine import normalize_url

    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(StoreError):
        normalize_url("mysql://u@h/db")


def test_a_store_at_the_head_is_not_migrated_again_and_alembic_stays_unloaded(tmp_path: Path) -> None:
    from crmsync.store.repository import shipped_head

    assert shipped_head() == head_revision()  # the text scan finds the head alembic finds
    url = f"sqlite:///{tmp_path / 'store.db'}"
    fresh = Store.open(url)
    fresh.upgrade()  # a new store: alembic migrates it
    assert fresh.current_revision() == head_revision()
    fresh.close()
    probe = ("import sys\nfrom crmsync.store import Store\ns = Store.open(sys.argv[1])\ns.upgrade()\n"
             "print(any(m == 'alembic' or m.startswith('alembic.') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
