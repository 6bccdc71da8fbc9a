from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
import vcr

from crmsync.connectors.base import AuthError, RetriableError
from crmsync.connectors.meteroid import (
    AlreadyExists,
    AmbiguousCreate,
    MeteroidConnector,
    customer_alias,
    subscription_marker,
)
from crmsync.sandbox import SandboxServer, generate_world
from crmsync.sandbox.meteroid import DEFAULT_API_KEY, MeteroidSimulator
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
CASSETTES = Path(__file__).resolve().parents[1] / "cassettes" / "meteroid"
RECORD = os.environ.get("CRMSYNC_RECORD_CASSETTES") == "1"


def settings(url: str, key: str = DEFAULT_API_KEY, **options: object) -> ConnectionSettings:
    return ConnectionSettings(name="billing", kind="meteroid", base_url=url, credentials={"api_key": key},
                              options=dict(options))


@pytest.fixture(scope="module")
def sim() -> MeteroidSimulator:
    return MeteroidSimulator(generate_world(13, 400, now=NOW))


@pytest.fixture(scope="module")
def server(sim: MeteroidSimulator):
    with SandboxServer(sim.build_app(), name="meteroid") as srv:
        yield srv


@pytest.fixture()
def conn(server: SandboxServer):
    connector = MeteroidConnector(settings(server.url))
    yield connector
    connector.close()


def test_alias_and_marker() -> None:
    assert customer_alias("sf-prod", "001XX000003DHP0") == "sf-prod:001XX000003DHP0"
    assert customer_alias("cus", "1") == "cus:1"
    assert customer_alias("cus_x", "1") == "crm-cus_x:1"
    assert customer_alias("hs", "a b/c") == "hs:a-b-c"
    assert subscription_marker("pd", "77") == "crmsync:pd:77"


def test_pages_through_everything(conn: MeteroidConnector, sim: MeteroidSimulator) -> None:
    customers = conn.list_all("customers")
    assert len(customers) == len(sim.truth("customers")) > 0
    assert len({c["id"] for c in customers}) == len(customers)
    subs = conn.list_all("subscriptions")
    assert {s["id"] for s in subs} == {s["id"] for s in sim.truth("subscriptions")}
    assert conn.count("customers") == len(customers)


def test_catalog_pull(conn: MeteroidConnector, sim: MeteroidSimulator) -> None:
    pages = list(conn.pull("products", None))
    products = [r for p in pages for r in p.records]
    assert pages[-1].done
    by_code = {p.code: p for p in products}
    assert by_code["ADDON-SSO"].unit_price == sim.catalog.products_by_code["ADDON-SSO"].monthly_price
    plan = conn.list_all("plans")[0]
    versions = conn.plan_versions(plan["id"])
    assert [v["version"] for v in versions] == [1, 2]
    assert conn.get_plan(plan["id"], 1)["version"] == 1
    assert len(conn.list_all("coupons")) == 6


def test_errors_are_classified(server: SandboxServer, conn: MeteroidConnector) -> None:
    bad = MeteroidConnector(settings(server.url, key="wrong"))
    with pytest.raises(AuthError):
        bad.list_all("plans")
    body = {"name": "A", "alias": "billing:dup", "currency": "EUR", "invoicing_emails": [], "custom_taxes": []}
    conn.create_customer(body)
    with pytest.raises(AlreadyExists):
        conn.create_customer(body)
    assert conn.get_customer("billing:nope") is None
    assert "wrong" not in str(bad.usage)


def test_creates_are_not_retried(server: SandboxServer, sim: MeteroidSimulator) -> None:
    connector = MeteroidConnector(settings(server.url, max_retries=3))
    sim.knobs.update({"fail_after_store": "500", "fail_after_store_times": 1})
    before = sim.log.by_route["POST /api/v1/customers"]
    with pytest.raises(AmbiguousCreate):
        connector.create_customer({"name": "B", "alias": "billing:once", "currency": "EUR",
                                   "invoicing_emails": [], "custom_taxes": []})
    assert sim.log.by_route["POST /api/v1/customers"] == before + 1  # one attempt only
    assert connector.get_customer("billing:once") is not None  # it was stored: look up, do not re-create
    sim.knobs.update({"faults": [{"path": "^/api/v1/plans$", "kind": "503", "probability": 1.0}]})
    try:
        with pytest.raises(RetriableError):
            MeteroidConnector(settings(server.url, max_retries=0)).list_all("plans")
    finally:
        sim.knobs.update({"faults": []})


def _cassette(name: str) -> vcr.VCR:
    return vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="once" if RECORD else "none",
                   match_on=["method", "path", "query", "body"], filter_headers=["authorization"],
                   decode_compressed_response=True)


def test_request_shapes_replay_from_cassette(tmp_path: Path) -> None:
    """The connector's request shapes, replayed offline (record with CRMSYNC_RECORD_CASSETTES=1)."""
    if RECORD:
        sim = MeteroidSimulator(generate_world(13, 60, now=NOW))
        srv = SandboxServer(sim.build_app(), name="meteroid-rec").start()
        url = srv.url
    else:
        url, srv = "http://127.0.0.1:9", None  # nothing listens there: every answer must come from the cassette
    try:
        with _cassette("shapes").use_cassette("connector_shapes.yaml"):
            connector = MeteroidConnector(settings(url, key="mtr_sandbox_0123456789abcdef"))
            plans = connector.list_all("plans")
            plan = next(p for p in plans if p["name"] == "Platform Core")
            customer = connector.create_customer({"name": "Acme", "alias": "sf:001A", "currency": "EUR",
                                                  "invoicing_emails": ["ap@acme.example"], "custom_taxes": []})
            sub = connector.create_subscription({
                "customer_id_or_alias": "sf:001A", "plan_id": plan["id"], "start_date": "2026-07-01",
                "end_date": "2027-06-30", "activation_condition": "ON_START", "purchase_order": "crmsync:sf:9",
                "price_components": {"parameterized_components": [{"component_id": plan["price_components"][0]["id"],
                                                                   "parameters": {"billing_period": "ANNUAL",
                                                                                  "initial_slot_count": 10}}]}})
            found = connector.find_subscriptions("sf:001A", plan_id=plan["id"])
            assert found[0]["id"] == sub["id"] and sub["customer_id"] == customer["id"]
            assert sub["components"][0]["fee"]["initial_slots"] == 10
    finally:
        if srv is not None:
            srv.stop()
    text = (CASSETTES / "connector_shapes.yaml").read_text()
    assert DEFAULT_API_KEY not in text and "Bearer" not in text
    assert '"max_retries"' not in text
