"""A poison record never blocks a sync: it is quarantined with its connection, object, id, field
and reason, the rest of its page and the cursor are stored in the same transaction, and the next
cycle goes on. Against each CRM's simulator and the real store (SQLite, or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from faults_harness import Crm, stored_deals

from crmsync.connectors import build_connector
from crmsync.model import ObjectType, Stage
from crmsync.store import Store, Transaction
from crmsync.sync.engine import SyncEngine
from crmsync.sync.poison import write_isolating

# (role, value, how it is planted, expected field per CRM: None = the role's native field)
POISONS: list[tuple[str, Any, str, dict[str, str] | None]] = [
    ("currency", "ZZZZ", "handle", {"salesforce": "currency", "hubspot": "currency", "pipedrive": "currency"}),
    ("modified", "irure", "wire", None),
    ("amount", "12,50 EUR", "wire", None),
    ("close_date", "2026-13-45", "wire", None),
]


def _sync(store: Store, crm: Crm) -> list[Any]:
    conn = crm.connection()
    connector = build_connector(conn)
    try:
        return SyncEngine(store, connector, conn).sync(["deals"])
    finally:
        connector.close()


@pytest.mark.parametrize(("role", "value", "how", "fields"), POISONS, ids=[p[0] for p in POISONS])
def test_poison_record_is_quarantined_and_the_rest_of_the_page_is_stored(
        store: Store, crm: Crm, role: str, value: Any, how: str, fields: dict[str, str] | None) -> None:
    ids = crm.deal_ids()
    poison = ids[13]
    if how == "handle":
        crm.edit(poison, role, value)
    else:
        crm.serve_malformed(poison, role, value)
    conn = crm.connection()

    [result] = _sync(store, crm)

    assert result.status == "ok", result.error
    assert result.quarantined == 1
    stored = stored_deals(store, conn.name)
    assert set(stored) == set(ids) - {poison}  # every other deal, including the poison's page-mates
    [entry] = store.quarantined(conn.name)
    expected_field = fields[crm.kind] if fields else crm.field(role)
    assert (entry.connection, entry.object_name, entry.source_id, entry.field) == (
        conn.name, "deals", poison, expected_field)
    assert expected_field in entry.reason
    assert str(value) not in entry.reason  # the value is in the payload, never in the reason
    assert store.load_cursor(conn.name, "deals") is not None

    # The next cycle goes on; once the CRM serves a good value and the record changes, it arrives
    # and its quarantine entry is resolved.
    crm.serve_clean()
    if how == "handle":
        crm.edit(poison, role, "EUR")
    crm.rename(poison, "fixed by a person")
    [second] = _sync(store, crm)
    assert second.status == "ok", second.error
    assert stored_deals(store, conn.name)[poison].name == "fixed by a person"
    assert store.quarantine_count(conn.name) == 0
    assert store.quarantine_count(conn.name, include_resolved=True) == 1


def test_poison_quarantined_again_keeps_one_open_entry(store: Store, crm: Crm) -> None:
    poison = crm.deal_ids()[5]
    crm.serve_malformed(poison, "amount", "not a number")
    _sync(store, crm)
    crm.rename(poison, "still poisoned")  # re-read next cycle, still malformed
    [again] = _sync(store, crm)
    assert again.status == "ok" and again.quarantined == 1
    assert store.quarantine_count(crm.connection().name) == 1


def test_a_value_the_database_refuses_is_quarantined_with_the_rest_of_the_page_kept(store: Store) -> None:
    """Past every check before it, a value the database itself refuses (here a stage without the
    name its NOT NULL column needs, on SQLite and PostgreSQL alike) is isolated by savepoints."""
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    good = [Stage(connection="db", source_object="stages", source_id=f"s{n}", modified_at=at, name=f"stage {n}")
            for n in range(5)]
    bad = Stage(connection="db", source_object="stages", source_id="s-bad", modified_at=at, name="x")
    bad.name = None  # type: ignore[assignment]

    def write(tx: Transaction, records: Any) -> None:
        tx.upsert(records)

    with store.transaction() as tx:
        refused = write_isolating(tx, [*good[:2], bad, *good[2:]], write)
        tx.save_cursor("db", "stages", {"after": "page"})
    assert [r.record.source_id for r in refused] == ["s-bad"]
    assert refused[0].field in (None, "name")
    assert "IntegrityError" in refused[0].reason and "[SQL" not in refused[0].reason
    assert store.count(ObjectType.STAGE, "db") == 5
    assert store.load_cursor("db", "stages") == {"after": "page"}
