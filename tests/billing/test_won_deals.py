from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from crmsync.billing.catalog import load_catalog
from crmsync.billing.checks import blocking, run_checks
from crmsync.billing.mapping import build_mapping
from crmsync.billing.won_deals import provision, record_result
from crmsync.connectors.meteroid import MeteroidConnector, customer_alias, subscription_marker
from crmsync.sandbox import SandboxServer, generate_world
from crmsync.sandbox.meteroid import DEFAULT_API_KEY, MeteroidSimulator
from crmsync.sandbox.records import deal_record, line_records
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
SEED, DEALS = 23, 600


@pytest.fixture(scope="module")
def world():
    return generate_world(SEED, DEALS, now=NOW)


@pytest.fixture()
def sim(world) -> MeteroidSimulator:
    return MeteroidSimulator(world, alias_for=lambda a: customer_alias("sf", str(a)))


@pytest.fixture()
def server(sim):
    with SandboxServer(sim.build_app(), name="meteroid") as srv:
        yield srv


@pytest.fixture()
def conn(server):
    c = MeteroidConnector(ConnectionSettings(name="billing", kind="meteroid", base_url=server.url,
                                             credentials={"api_key": DEFAULT_API_KEY}))
    yield c
    c.close()


@pytest.fixture()
def ctx(world, conn):
    catalog = load_catalog(conn)
    return catalog, build_mapping([p.code for p in world.products], catalog)


def clean_won(world, ctx, *, lines: int | None = None, new_account: bool = True):
    """A won, not yet handed-off deal whose checks pass (optionally with n lines, on an account
    without a seeded customer)."""
    catalog, mapping = ctx
    seeded = {d.account_id for d in world.deals if d.stage == 5 and d.handoff_done}
    for d in world.deals:
        if d.stage != 5 or d.handoff_done or (new_account and d.account_id in seeded):
            continue
        ls = line_records(world, d, "sf")
        if lines is not None and len(ls) != lines:
            continue
        if not blocking(run_checks(deal_record(world, d, "sf"), ls, catalog, mapping)):
            return d
    raise AssertionError("no clean won deal in the world")


def run(world, d, conn, ctx):
    catalog, mapping = ctx
    return provision(deal_record(world, d, "sf"), line_records(world, d, "sf"), connector=conn, catalog=catalog,
                     mapping=mapping)


def owned(sim, d):
    alias = customer_alias("sf", str(d.account_id))
    marker = subscription_marker("sf", str(d.id))
    customers = [c for c in sim.truth("customers") if c["alias"] == alias]
    subs = [s for s in sim.truth("subscriptions") if (s["purchase_order"] or "").startswith(marker)]
    return customers, subs


def test_won_deal_creates_customer_and_subscription_and_reads_back(world, sim, conn, ctx) -> None:
    d = clean_won(world, ctx, lines=1)
    result = run(world, d, conn, ctx)
    assert result.status == "provisioned", result.error
    assert result.created_customer and result.created_subscriptions == 1
    customers, subs = owned(sim, d)
    assert len(customers) == 1 and len(subs) == 1
    line = line_records(world, d, "sf")[0]
    sub = subs[0]
    assert sub["start_date"] == d.contract_start.isoformat() and sub["period"] == line.billing_period
    months = {"MONTHLY": 1, "ANNUAL": 12}[line.billing_period]
    assert abs(Decimal(sub["mrr_cents"]) / 100 - line.total / months) <= Decimal("0.01")
    again = run(world, d, conn, ctx)  # the same event delivered twice
    assert again.status == "provisioned" and not again.created_customer and again.created_subscriptions == 0
    assert again.subscription_ids == result.subscription_ids
    assert tuple(map(len, owned(sim, d))) == (1, 1)


def test_multi_line_deal_and_existing_customer(world, sim, conn, ctx) -> None:
    d = clean_won(world, ctx, lines=3, new_account=False)
    result = run(world, d, conn, ctx)
    assert result.status == "provisioned", result.error
    customers, subs = owned(sim, d)
    assert len(customers) == 1 and len(subs) == len(result.subscription_ids) >= 1


def test_blocked_deal_is_not_provisioned(world, sim, conn, ctx) -> None:
    catalog, mapping = ctx
    d = next(x for x in world.deals if x.stage == 5 and not x.handoff_done
             and blocking(run_checks(deal_record(world, x, "sf"), line_records(world, x, "sf"), catalog, mapping)))
    result = run(world, d, conn, ctx)
    assert result.status == "blocked" and result.error and result.findings
    assert owned(sim, d) == ([], []) or owned(sim, d)[1] == []


@pytest.mark.parametrize(("path", "fault"), [("customers", "500"), ("customers", "drop"),
                                             ("subscriptions", "500"), ("subscriptions", "drop")])
def test_idempotent_under_retry_after_a_stored_create(world, sim, conn, ctx, path, fault) -> None:
    d = clean_won(world, ctx, lines=1)
    sim.knobs.update({"fail_after_store": fault, "fail_after_store_path": f"^/api/v1/{path}$",
                      "fail_after_store_times": 1})
    result = run(world, d, conn, ctx)
    assert sim.knobs.fail_after_store_times == 0  # the fault fired
    assert result.status == "provisioned", result.error
    assert tuple(map(len, owned(sim, d))) == (1, 1)


@pytest.mark.parametrize("path", ["customers", "subscriptions"])
def test_idempotent_under_sigkill(world, sim, server, conn, ctx, path) -> None:
    d = clean_won(world, ctx, lines=1)
    sim.knobs.update({"fail_after_store": "hang", "fail_after_store_path": f"^/api/v1/{path}$",
                      "fail_after_store_times": 1, "hang_s": 30.0})
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("provision_child.py")), server.url,
                              DEFAULT_API_KEY, str(SEED), str(DEALS), NOW.isoformat(), str(d.id)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        index = 0 if path == "customers" else 1
        while not owned(sim, d)[index]:  # the create reached the sandbox and was stored
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never reached the create"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    sim.knobs.update({"fail_after_store": None, "hang_s": 0.0})
    result = run(world, d, conn, ctx)  # the restarted worker
    assert result.status == "provisioned", result.error
    assert tuple(map(len, owned(sim, d))) == (1, 1)


def test_failure_becomes_task_and_outbox_error(world, sim, conn, ctx, store) -> None:
    d = clean_won(world, ctx, lines=1)
    sim.knobs.update({"faults": [{"path": "^/api/v1/subscriptions$", "kind": "503", "method": "POST"}]})
    deal = deal_record(world, d, "sf")
    result = run(world, d, conn, ctx)
    sim.knobs.update({"faults": []})
    assert result.status == "failed" and "503" in (result.error or "")
    record_result(store, deal, result, billing_connection="billing", today=NOW.date())
    record_result(store, deal, result, billing_connection="billing", today=NOW.date())  # no duplicates
    from sqlalchemy import text

    with store.engine.connect() as c:
        rows = c.execute(text("select connection, object_name, status, last_error from outbox order by id")).all()
    tasks = [r for r in rows if r.object_name == "tasks"]
    errors = [r for r in rows if r.object_name == "subscriptions"]
    assert len(tasks) == 1 and len(errors) == 1 and errors[0].status == "failed" and "503" in errors[0].last_error
