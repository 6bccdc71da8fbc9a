"""Billing checks on line items as each CRM serves them, pulled through the real connectors.

The same seeded world is served by the Salesforce, HubSpot and Pipedrive simulators; after a
backfill, the billing side read from the store must find the planted problems in every CRM (the
two drifted list prices, amounts that do not add up, discounts without approval), and a clean won
deal from each CRM must become exactly one Meteroid customer and its subscriptions, also when
provisioned twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmsync.billing.catalog import BillingCatalog, load_catalog
from crmsync.billing.checks import blocking, run_checks
from crmsync.billing.crm_side import load_crm_side
from crmsync.billing.mapping import build_mapping
from crmsync.billing.reports import deal_drift, price_book_drift
from crmsync.billing.won_deals import provision
from crmsync.connectors.meteroid import MeteroidConnector
from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, SandboxHandle, start_sandbox
from crmsync.sandbox.world import CRM_LIST_PRICE_DRIFT
from crmsync.settings import Settings, load_settings
from crmsync.store import Store
from crmsync.sync.runner import open_engine

PULLED = ("products", "price_book_entries", "accounts", "deals", "line_items")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(deals=200, seed=5, state_dir=tmp_path_factory.mktemp("billing-crm"))
    yield handle
    handle.stop()


@pytest.fixture
def synced(sandbox: SandboxHandle, store: Store, tmp_path: Path) -> tuple[Settings, Store]:
    url = store.engine.url.render_as_string(hide_password=False)
    settings = load_settings(sandbox.write_config(tmp_path / "crmsync.yaml", store_url=url))
    for system in ("salesforce", "hubspot", "pipedrive"):
        with open_engine(settings, store, CONNECTION_NAMES[system]) as engine:
            for object_name in PULLED:
                if object_name in CRM_OBJECTS[system]:
                    assert engine.backfill(object_name).status == "ok"
    return settings, store


@pytest.fixture
def catalog(synced: tuple[Settings, Store]) -> Iterator[tuple[BillingCatalog, MeteroidConnector]]:
    settings, _ = synced
    connector = MeteroidConnector(settings.connection("sandbox-billing"))
    yield load_catalog(connector), connector
    connector.close()


@pytest.mark.parametrize("system", ["salesforce", "hubspot", "pipedrive"])
def test_checks_find_the_planted_problems_in_every_crm(system: str, synced: tuple[Settings, Store],
                                                      catalog: tuple[BillingCatalog, MeteroidConnector]) -> None:
    _, store = synced
    billing, _ = catalog
    side = load_crm_side(store, CONNECTION_NAMES[system])
    assert side.deals and side.lines
    assert all(li.product_code for lines in side.lines.values() for li in lines), "a line without a product code"
    mapping = build_mapping(side.codes(), billing, {})
    assert mapping.report.unmatched_crm == []
    drifted = {row.subject.split(" ")[0] for row in price_book_drift(side.products, side.entries, mapping)}
    assert drifted == set(CRM_LIST_PRICE_DRIFT)
    kinds = Counter(row.kind for row in deal_drift(side.deals_with_lines(), billing, mapping))
    assert kinds["amount_vs_lines"] > 0 and kinds["discount_unapproved"] > 0, kinds


@pytest.mark.parametrize("system", ["salesforce", "hubspot", "pipedrive"])
def test_a_clean_won_deal_from_each_crm_becomes_one_subscription_set(
        system: str, sandbox: SandboxHandle, synced: tuple[Settings, Store],
        catalog: tuple[BillingCatalog, MeteroidConnector]) -> None:
    _, store = synced
    billing, connector = catalog
    side = load_crm_side(store, CONNECTION_NAMES[system])
    mapping = build_mapping(side.codes(), billing, {})
    clean = [d for d in side.deals if d.is_won and d.account_id and d.contract_start and side.lines.get(d.source_id)
             and not blocking(run_checks(d, side.lines[d.source_id], billing, mapping))]
    assert clean, "the world has no clean won deal"
    deal = clean[0]
    first = provision(deal, side.lines[deal.source_id], connector=connector, catalog=billing, mapping=mapping)
    assert first.status == "provisioned", first.error
    again = provision(deal, side.lines[deal.source_id], connector=connector, catalog=billing, mapping=mapping)
    assert again.created_customer is False and again.created_subscriptions == 0
    assert again.subscription_ids == first.subscription_ids
    customers = [c for c in sandbox.sims["meteroid"].truth("customers") if c.get("id") == first.customer_id]
    assert len(customers) == 1
