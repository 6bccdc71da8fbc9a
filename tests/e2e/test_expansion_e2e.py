"""An expansion opportunity from billing usage to the CRM, once: Pipedrive and Meteroid sandboxes
over real HTTP. A won Pipedrive deal's Meteroid subscription (crmsync's marker as purchase order)
reaches 95% of its seats; usage is pulled, the rules queue one expansion deal, the outbox creates
it in Pipedrive with its crmsync key. Rules re-run, usage re-pulled, and the create pushed again
as after a drain killed before booking: still exactly one expansion deal in the CRM."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmsync.billing_keys import customer_alias, subscription_marker
from crmsync.connectors import build_connector
from crmsync.connectors.meteroid import MeteroidConnector
from crmsync.decide.runner import run_full
from crmsync.model import Deal, ObjectType
from crmsync.sandbox.pipedrive.fields import DEAL_KEY_BY_NAME
from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, SandboxHandle, start_sandbox
from crmsync.settings import Settings, load_settings
from crmsync.store import Store
from crmsync.sync.activity import sync_usage
from crmsync.sync.outbox import drain
from crmsync.sync.runner import open_engine

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "rules"
PD = CONNECTION_NAMES["pipedrive"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxHandle]:
    handle = start_sandbox(deals=200, seed=5, systems=("pipedrive", "meteroid"), state_dir=tmp_path)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def settings(sandbox: SandboxHandle, store: Store, tmp_path: Path) -> Settings:
    url = store.engine.url.render_as_string(hide_password=False)
    return load_settings(sandbox.write_config(tmp_path / "crmsync.yaml", store_url=url, rules_dir=str(RULES_DIR)))


def expansion_deals(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    key = DEAL_KEY_BY_NAME["crmsync_key"]
    return [r for r in sandbox.sims["pipedrive"].truth("deals")
            if str(r["custom_fields"].get(key) or "").startswith("expansion:")]


def cycle(settings: Settings, store: Store) -> int:
    billing = MeteroidConnector(settings.connection(CONNECTION_NAMES["meteroid"]))
    try:
        sync_usage(store, billing)
    finally:
        billing.close()
    enqueued = run_full(settings, store, PD).enqueued
    conn = settings.connection(PD)
    connector = build_connector(conn)
    try:
        drain(store, connector, conn)
    finally:
        connector.close()
    return enqueued


def test_expansion_deal_created_once_in_the_crm(sandbox: SandboxHandle, settings: Settings, store: Store) -> None:
    with open_engine(settings, store, PD) as engine:
        for object_name in CRM_OBJECTS["pipedrive"]:
            assert engine.backfill(object_name).status == "ok"
    today = dt.datetime.now(dt.UTC).date()
    won = next(d for d in store.iter_records(ObjectType.DEAL, connection=PD)
               if isinstance(d, Deal) and d.is_won and d.account_id and d.owner_id)
    meteroid: Any = sandbox.sims["meteroid"]
    alias = customer_alias(PD, str(won.account_id))
    meteroid.create("customers", {"name": "Acme", "alias": alias, "currency": "EUR", "invoicing_emails": [],
                                  "custom_taxes": []})
    plan = next(p for p in meteroid.truth("plans") if p["price_components"][0]["fee"]["type"] == "SLOT")
    sub_id = meteroid.create("subscriptions", {
        "customer_id_or_alias": alias, "plan_id": plan["id"], "start_date": (today - dt.timedelta(days=40)).isoformat(),
        "activation_condition": "ON_START", "purchase_order": subscription_marker(PD, won.source_id),
        "price_components": {"parameterized_components": [{"component_id": plan["price_components"][0]["id"],
                                                           "parameters": {"billing_period": "MONTHLY",
                                                                          "initial_slot_count": 20}}]}})
    meteroid.set_usage(sub_id, "active_seats", 12)  # 60%: no expansion
    cycle(settings, store)
    assert expansion_deals(sandbox) == []
    meteroid.set_usage(sub_id, "active_seats", 19)  # 95%
    assert cycle(settings, store) >= 1
    created = expansion_deals(sandbox)
    assert len(created) == 1
    assert created[0]["title"].startswith("Expansion: ") and str(created[0]["owner_id"]) == str(won.owner_id)
    # reruns: usage pulled again, rules again: nothing new queued, nothing new in the CRM
    for _ in range(2):
        cycle(settings, store)
    assert len([i for i in store.outbox_items(connection=PD) if i.idempotency_key.startswith("expansion:")]) == 1
    assert len(expansion_deals(sandbox)) == 1
    # the create pushed again, as after a drain killed before it booked the answer
    item = next(i for i in store.outbox_items(connection=PD) if i.idempotency_key.startswith("expansion:"))
    assert item.id is not None
    store.update_outbox(item.id, "pending", attempts=0)
    conn = settings.connection(PD)
    connector = build_connector(conn)
    try:
        drain(store, connector, conn)
    finally:
        connector.close()
    assert len(expansion_deals(sandbox)) == 1
