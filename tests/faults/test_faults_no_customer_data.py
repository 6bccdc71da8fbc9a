"""No customer data in errors or logs: run-log errors and log lines never embed record payloads
or SQL parameters, and error texts are bounded. Against each CRM's simulator and a real store."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest
from faults_harness import Crm
from sqlalchemy import text

from crmsync.connectors import build_connector
from crmsync.errors import MAX_ERROR_CHARS
from crmsync.logging import configure_logging
from crmsync.store import Store
from crmsync.sync.engine import SyncEngine

SECRET = "Customer-Confidential-7f3a"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("json", stream=buffer)
    try:
        yield buffer
    finally:
        configure_logging("json")


def _sync(store: Store, crm: Crm) -> list[object]:
    conn = crm.connection()
    connector = build_connector(conn)
    try:
        return list(SyncEngine(store, connector, conn).sync(["deals"]))
    finally:
        connector.close()


def test_poison_values_stay_in_the_quarantine_payload_only(store: Store, crm: Crm, log_lines: io.StringIO) -> None:
    ids = crm.deal_ids()
    crm.serve_malformed(ids[1], "amount", SECRET)              # refused by the mapping
    crm.serve_malformed(ids[2], "close_date", SECRET)
    crm.edit(ids[3], "currency", "ZZZZ")                       # refused by the store's checks
    crm.rename(ids[3], SECRET)
    _sync(store, crm)

    entries = store.quarantined(crm.connection().name)
    assert len(entries) == 3
    assert all(SECRET not in e.reason for e in entries)
    assert any(SECRET in str(e.payload) for e in entries)  # kept for a person to look at
    assert SECRET not in log_lines.getvalue()
    assert all(SECRET not in (run.error or "") for run in store.last_runs())


def test_a_failing_store_leaves_no_sql_parameters_in_the_run_log_or_logs(
        crm: Crm, empty_store_url: Callable[[], str], log_lines: io.StringIO) -> None:
    store = Store.open(empty_store_url())
    try:
        store.upgrade()
        with store.engine.begin() as conn:  # the deals table refuses every write: not a record's fault
            conn.execute(text("ALTER TABLE deals RENAME TO deals_moved"))
            conn.execute(text("CREATE TABLE deals (connection TEXT, source_id TEXT)"))
        crm.rename(crm.deal_ids()[0], SECRET)
        with pytest.raises(Exception):  # noqa: B017,PT011 - whatever the driver raises, it propagates
            _sync(store, crm)
        [run] = store.last_runs(1)
        assert run.status == "failed" and run.error
        assert len(run.error) <= MAX_ERROR_CHARS
        for where in (run.error, log_lines.getvalue()):
            assert SECRET not in where
            assert "[parameters" not in where
    finally:
        store.close()
