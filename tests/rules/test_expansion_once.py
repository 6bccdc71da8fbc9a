"""The expansion opportunity through the runner and a real store: usage over the configured share
of the plan limit queues one deal create, once, across reruns and a run killed mid-transaction."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from crmsync.activity import InvoiceFact, MeterReading
from crmsync.billing_keys import subscription_marker
from crmsync.decide.runner import run_full
from crmsync.model import Deal, Owner
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.store.activity import upsert_invoices, upsert_readings
from crmsync.store.repository import Transaction

RULES = Path(__file__).resolve().parents[2] / "config" / "rules"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
TODAY = NOW.date()


def settings() -> Settings:
    return Settings.model_validate({
        "rules_dir": str(RULES), "billing": {"connection": "billing"},
        "connections": [{"name": "crm", "kind": "pipedrive", "base_url": "http://127.0.0.1:9",
                         "credentials": {"api_token": "x"}},
                        {"name": "billing", "kind": "meteroid", "base_url": "http://127.0.0.1:9",
                         "credentials": {"api_key": "x"}}]})


def seed(store: Store, used: int) -> None:
    won = Deal(connection="crm", source_object="deal", source_id="77", modified_at=NOW, name="Acme",
               amount=Decimal(12000), currency="EUR", is_closed=True, is_won=True, owner_id="5", account_id="a1",
               close_date=TODAY - dt.timedelta(days=200), contract_start=TODAY - dt.timedelta(days=190),
               contract_end=TODAY + dt.timedelta(days=400))
    rep = Owner(connection="crm", source_object="user", source_id="5", modified_at=NOW, name="Ann", email="a@x.io")
    store.upsert([won, rep])
    with store.transaction() as tx:
        upsert_readings(tx, [MeterReading("billing", "sub_1", "cus_1", "bm_1", "active_seats", "Active seats",
                                          TODAY.replace(day=1), TODAY, Decimal(used), Decimal(100),
                                          subscription_marker("crm", "77"))])
        upsert_invoices(tx, [InvoiceFact("billing", "inv_1", "cus_1", "sub_1", "FINALIZED", "PAID", TODAY, TODAY,
                                         NOW, 100, 0, "EUR")])


def expansions(store: Store) -> list:
    return [i for i in store.outbox_items(connection="crm") if i.idempotency_key.startswith("expansion:")]


def test_expansion_queued_once_across_reruns_and_a_killed_run(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(store, used=60)
    run_full(settings(), store, "crm")
    assert expansions(store) == []  # 60% is below the 90% share
    seed(store, used=93)

    def killed(self: Transaction, decisions: object) -> int:  # the process dies before the commit
        raise KeyboardInterrupt

    monkeypatch.setattr(Transaction, "log_decisions", killed)
    with pytest.raises(KeyboardInterrupt):
        run_full(settings(), store, "crm")
    assert expansions(store) == []  # nothing half-written
    monkeypatch.undo()
    run_full(settings(), store, "crm")
    run_full(settings(), store, "crm")
    seed(store, used=99)
    run_full(settings(), store, "crm")
    items = expansions(store)
    assert len(items) == 1
    item = items[0]
    assert item.object_name == "deals" and item.operation == "create"
    assert item.fields["owner_id"] == "5" and item.fields["name"] == "Expansion: Acme"
    assert item.fields["crmsync_key"] == item.idempotency_key
    health = [d for d in store.decisions(limit=200) if d.rule_kind == "health" and d.action == "finding"]
    assert health and "usage" in (health[0].reason or "")
