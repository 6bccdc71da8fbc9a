"""Meteroid usage and invoices: the simulator's metrics and subscription usage endpoints, the
connector's readings against the plan's seats, invoices paid and overdue, pulled into the store
(idempotent on re-run), and a 429/500 storm on the usage endpoint."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import pytest

from crmsync.connectors.meteroid import MeteroidConnector
from crmsync.sandbox import SandboxServer, generate_world
from crmsync.sandbox.core import FaultRule
from crmsync.sandbox.meteroid import DEFAULT_API_KEY, MeteroidSimulator
from crmsync.settings import ConnectionSettings
from crmsync.store import Store
from crmsync.store.activity import load_invoices, load_readings
from crmsync.sync.activity import sync_usage


@pytest.fixture(scope="module")
def sim() -> MeteroidSimulator:
    return MeteroidSimulator(generate_world(17, 400))


@pytest.fixture(scope="module")
def server(sim: MeteroidSimulator):
    with SandboxServer(sim.build_app(), name="meteroid") as srv:
        yield srv


@pytest.fixture()
def conn(server: SandboxServer, sim: MeteroidSimulator):
    sim.knobs.update({"faults": []})
    connector = MeteroidConnector(ConnectionSettings(name="billing", kind="meteroid", base_url=server.url,
                                                     credentials={"api_key": DEFAULT_API_KEY},
                                                     options={"max_retries": 4}))
    yield connector
    connector.close()
    sim.knobs.update({"faults": []})


def active(sim: MeteroidSimulator) -> list[dict]:
    return [s for s in sim.truth("subscriptions") if s["status"] == "ACTIVE"]


def test_usage_endpoint_follows_the_spec_shape(server: SandboxServer, sim: MeteroidSimulator) -> None:
    sub = active(sim)[0]
    headers = {"authorization": f"Bearer {DEFAULT_API_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        body = client.get(f"/api/v1/usage/subscription/{sub['id']}").json()
        assert set(body) == {"period_start", "period_end", "usage"}
        assert body["period_start"] == sub["current_period_start"]
        assert {u["metric_code"] for u in body["usage"]} <= {"active_seats", "api_calls"}
        assert all(isinstance(u["total_value"], str) for u in body["usage"])
        assert client.get("/api/v1/usage/subscription/sub_0000000000000000000000").status_code == 404
        bad = client.get(f"/api/v1/usage/subscription/{sub['id']}", params={"start_date": "soon"})
        assert bad.status_code == 400 and bad.json()["code"] == "BAD_REQUEST"
        metrics = client.get("/api/v1/metrics").json()
        assert {m["code"] for m in metrics["data"]} == {"active_seats", "api_calls"}


def test_readings_compare_seats_used_with_seats_bought(conn: MeteroidConnector, sim: MeteroidSimulator) -> None:
    sub = next(s for s in active(sim) if sim.seats_of(sim._sub_number(s["id"]) or 0))
    sim.set_usage(sub["id"], "active_seats", 17)
    readings = {r.metric_code: r for r in conn.meter_readings({"id": sub["id"]})}
    seats = readings["active_seats"]
    assert seats.value == Decimal(17) and seats.included == Decimal(sim.seats_of(sim._sub_number(sub["id"]) or 0))
    assert readings["api_calls"].included is None  # no capacity limit on the plan
    assert seats.purchase_order == sub["purchase_order"]


def test_usage_and_invoices_pulled_into_the_store(conn: MeteroidConnector, sim: MeteroidSimulator,
                                                  store: Store) -> None:
    first = sync_usage(store, conn)
    subs = active(sim)
    readings = load_readings(store, "billing")
    assert {r.subscription_id for r in readings} == {s["id"] for s in subs if sim.usage_of(sim._sub_number(s["id"]) or 0)}
    invoices = load_invoices(store, "billing")
    assert len(invoices) == len(sim.truth("subscriptions")) == first.invoices
    today = sim.today
    overdue = [i for i in invoices if i.overdue(today)]
    paid = [i for i in invoices if i.payment_status == "PAID"]
    assert paid and all(i.paid_at is not None and i.amount_due_cents == 0 for i in paid)
    # one made overdue by a user: unpaid and due yesterday
    target = subs[0]["id"]
    sim.set_invoice(target, payment_status="UNPAID", paid_at=None,
                    due_date=(today - dt.timedelta(days=1)).isoformat())
    second = sync_usage(store, conn)
    again = load_invoices(store, "billing")
    assert len(again) == len(invoices)  # upserted, not duplicated
    assert any(i.subscription_id == target and i.overdue(today) for i in again)
    assert len([i for i in again if i.overdue(today)]) >= len(overdue)
    assert second.records == first.records


def test_usage_pull_survives_429_and_500(conn: MeteroidConnector, sim: MeteroidSimulator, store: Store) -> None:
    sim.knobs.update({"faults": [{"path": "^/api/v1/usage/", "kind": "429", "probability": 0.3, "retry_after": 0},
                                 {"path": "^/api/v1/usage/", "kind": "500", "probability": 0.2}]})
    sim.log.reset()
    result = sync_usage(store, conn)
    assert result.records == len(load_readings(store, "billing")) > 0
    assert sim.log.by_status.get(429, 0) + sim.log.by_status.get(500, 0) > 0
    assert isinstance(sim.knobs.faults[0], FaultRule)
