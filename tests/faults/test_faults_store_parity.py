"""Same data on SQLite and PostgreSQL: values PostgreSQL refuses or that are out of range are
cleaned with a note, or quarantined, identically on both stores; never a failed page.

The values are served on the wire (the ``corrupt`` knob) as a CRM or a broken integration could
send them; the run uses whichever store the suite runs on, and the expectations are the same."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from faults_harness import Crm, stored_deals

from crmsync.connectors import build_connector
from crmsync.sandbox.core import CorruptValue
from crmsync.store import Store
from crmsync.store.clean import CLEANED_KEY, MAX_TEXT_CHARS
from crmsync.sync.engine import SyncEngine


def test_hostile_values_are_cleaned_with_a_note_or_quarantined(store: Store, crm: Crm) -> None:
    ids = crm.deal_ids()
    nul, huge, unnamed, big_amount, year0, year99999, custom_nul = ids[3:10]
    crm.serve_malformed(nul, "name", "Acme\x00 renewal\x00")
    crm.serve_malformed(huge, "name", "x" * 1_048_576)
    crm.serve_malformed(unnamed, "name", None)
    crm.serve_malformed(big_amount, "amount", "1e300" if crm.kind == "hubspot" else 1e300)
    crm.serve_malformed(year0, "close_date", "0000-01-01")
    crm.serve_malformed(year99999, "close_date", "99999-12-31")
    # a custom field with NUL in its name and value; Salesforce answers only the fields a query
    # selects and its API names cannot hold NUL, so there it is a selected custom field's value
    custom_key, cleaned_key = (("Metrics__c", "Metrics__c") if crm.kind == "salesforce"
                               else ("crm_note\x00key", "crm_notekey"))
    crm.sim.knobs.corrupt.append(CorruptValue(custom_nul, custom_key, "a\x00b"))
    conn = crm.connection()
    connector = build_connector(conn)
    try:
        [result] = SyncEngine(store, connector, conn).sync(["deals"])
    finally:
        connector.close()

    assert result.status == "ok", result.error
    stored = stored_deals(store, conn.name)
    assert set(stored) == set(ids) - {year0, year99999}
    assert stored[nul].name == "Acme renewal"
    assert stored[nul].extra[CLEANED_KEY] == ["name: removed 2 NUL character(s)"]
    assert stored[huge].name == "x" * MAX_TEXT_CHARS
    assert stored[huge].extra[CLEANED_KEY] == [f"name: cut from 1,048,576 to {MAX_TEXT_CHARS:,} characters"]
    assert stored[unnamed].name is None
    assert stored[unnamed].extra[CLEANED_KEY] == ["name: missing in the source"]
    assert stored[big_amount].amount == Decimal("1e300")
    cleaned_extra: Any = stored[custom_nul].extra
    assert cleaned_extra.get(cleaned_key) == "ab" or cleaned_extra.get("properties", {}).get(cleaned_key) == "ab"
    assert any("NUL" in note for note in cleaned_extra[CLEANED_KEY])
    quarantined = {q.source_id: q for q in store.quarantined(conn.name)}
    assert set(quarantined) == {year0, year99999}
    assert {q.field for q in quarantined.values()} == {crm.field("close_date")}
    # the payload is kept for a person to look at, as both stores take it
    assert quarantined[year0].payload


def test_lone_surrogates_are_replaced_with_a_note_on_both_stores(store: Store) -> None:
    """No simulator can serve a lone surrogate (their JSON encoders refuse it), but a connector's
    decoder can produce one from ``"\\ud800"``: the store takes such a record the same way."""
    import datetime as dt

    from crmsync.model import Deal, ObjectType
    from crmsync.store.clean import clean_record

    deal = Deal(connection="raw", source_object="deals", source_id="1", modified_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                name="Acme \ud800 deal", extra={"note": "x\udfffy", "nested": [{"k": "\x00"}]})
    clean_record(deal)
    store.upsert([deal])
    stored = store.get(ObjectType.DEAL, "raw", "1")
    assert stored is not None and isinstance(stored, Deal)
    assert stored.name == "Acme \ufffd deal" and stored.extra["note"] == "x\ufffdy"
    assert stored.extra["nested"] == [{"k": ""}]
    assert any("surrogates" in n for n in stored.extra[CLEANED_KEY])
