"""Backfills at the speed the CRM allows: the plan, the HubSpot list backfill and its hand-over to
the search keyset, and one limiter per portal shared by every backfill running at once. All over
real HTTP against the simulators with their rate limits on; 429s and request times are read from
the simulator's own counters."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from crmsync.connectors import ratelimit
from crmsync.connectors.hubspot import HubSpotConnector
from crmsync.connectors.plan import Option, fastest
from crmsync.connectors.ratelimit import RollingLimiter
from crmsync.model import ObjectType
from crmsync.sandbox.core import Knobs, SandboxServer
from crmsync.sandbox.hubspot import SANDBOX_TOKEN, HubSpotSimulator
from crmsync.sandbox.world import generate_world
from crmsync.settings import ConnectionSettings, Settings
from crmsync.store import Store
from crmsync.sync.engine import SyncEngine
from crmsync.sync.runner import plan_backfills, run_backfills
from request_rates import most_in_any_window

LIST = "GET /crm/v3/objects/deals"


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    ratelimit.forget()
    yield
    ratelimit.forget()


def hubspot_conn(url: str, name: str = "hs", **options: Any) -> ConnectionSettings:
    return ConnectionSettings(name=name, kind="hubspot", base_url=url,
                              credentials={"access_token": SecretStr(SANDBOX_TOKEN)},
                              objects=["deals", "accounts", "contacts"],
                              options={"search_per_second": 5, "limits_raised": False, "settle_seconds": 0,
                                       **options})


def store_at(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    return store


def limited(deals: int, *, burst: int, window: float) -> HubSpotSimulator:
    return HubSpotSimulator(generate_world(31, deals), Knobs(burst_limit=burst, burst_window_s=window,
                                                            search_per_second=50))



# --- the limiter itself -------------------------------------------------------------------------------
def test_rolling_limiter_holds_a_slot_from_send_until_a_window_after_the_answer() -> None:
    now = [0.0]
    limiter = RollingLimiter(3, 1.0, clock=lambda: now[0])
    for _ in range(3):
        limiter.acquire()
    box: dict[str, float] = {}
    waiter = threading.Thread(target=lambda: box.setdefault("waited", limiter.acquire()))
    waiter.start()
    waiter.join(timeout=0.2)
    assert waiter.is_alive()  # three in flight: the fourth waits, however long they take
    now[0] = 0.5
    limiter.release()  # one answered at 0.5: its slot is free again at 1.5, not before
    waiter.join(timeout=0.2)
    assert waiter.is_alive()
    now[0] = 1.5
    limiter.update(3)  # any wake-up re-checks the window
    waiter.join(timeout=5)
    assert not waiter.is_alive() and box["waited"] == pytest.approx(1.5)
    limiter.update(10, 2.0)  # the CRM's headers said otherwise
    assert limiter.limit == 10 and limiter.window_s == 2.0 and limiter.rate == 5.0


def test_shared_returns_one_limiter_per_key() -> None:
    a = ratelimit.shared(("hubspot", "u", "t", "ten_secondly"), 100, 10.0)
    b = ratelimit.shared(("hubspot", "u", "t", "ten_secondly"), 5, 1.0)
    c = ratelimit.shared(("hubspot", "u", "other", "ten_secondly"), 100, 10.0)
    assert a is b and a is not c and a.limit == 100


# --- the plan -----------------------------------------------------------------------------------------
def test_fastest_option_wins_and_unbounded_ones_go_by_calls() -> None:
    assert fastest([Option("search", 500, 125.0, 500), Option("list", 1000, 52.6, 1000)]).strategy == "list"
    assert fastest([Option("rest", 50, None, 50), Option("bulk", 5, None, 5)]).strategy == "bulk"


def test_hubspot_plan_follows_the_limits_the_portal_reports() -> None:
    sim = limited(400, burst=190, window=10.0)
    with SandboxServer(sim.build_app(), name="hubspot") as server:
        hs = HubSpotConnector(hubspot_conn(server.url, search_per_second=4))
        plan = hs.plan_backfill("deals")
        assert plan.records == 400
        assert plan.limits["ten_secondly"] == "190 per 10s"  # read from X-HubSpot-RateLimit-Max
        # list: 50 a call with histories at ~19/s; search: 2 searches at 4/s, but its stage-history
        # batch reads (50 a call) run under the same ten-second limit as the list
        assert plan.chosen.strategy == "list" and plan.chosen.calls == 400 // 50 + 1
        search = next(o for o in plan.options if o.strategy == "search")
        assert search.calls > plan.chosen.calls
        assert plan.chosen.seconds is not None and search.seconds is not None
        assert plan.chosen.seconds <= search.seconds
        assert plan.quota_share is not None and 0 < plan.quota_share < 0.001
        assert hs.backfill_strategy("deals") == "list"
        # without stage histories the list reads 100 a call
        bare = HubSpotConnector(hubspot_conn(server.url, stage_history=False)).plan_backfill("deals")
        assert bare.chosen.strategy == "list" and bare.chosen.calls == 400 // 100 + 1
        # a window can only be read by search (the list API has no date filter)
        import datetime as dt

        windowed = hs.plan_backfill("deals", since=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        assert windowed.chosen.strategy == "search"


def test_dry_run_plans_every_object_without_pulling(tmp_path: Path) -> None:
    sim = limited(300, burst=190, window=10.0)
    with SandboxServer(sim.build_app(), name="hubspot") as server:
        settings = Settings(connections=[hubspot_conn(server.url)])
        sim.log.reset()
        plans = plan_backfills(settings, [("hs", "deals"), ("hs", "accounts"), ("hs", "owners")])
        assert [(c, o) for c, o, _ in plans] == [("hs", "deals"), ("hs", "accounts"), ("hs", "owners")]
        assert all(not isinstance(p, str) for _, _, p in plans)
        by_route = sim.log.snapshot()["by_route"]
        assert LIST not in by_route  # counts only: nothing was listed
        assert sum(by_route.values()) <= 6


# --- the list backfill and its hand-over --------------------------------------------------------------
def test_list_backfill_hands_over_without_losing_edits_made_while_it_ran(tmp_path: Path) -> None:
    sim = limited(600, burst=12, window=2.0)  # 12 requests per 2 s: the limiter has to pace the list
    with SandboxServer(sim.build_app(), name="hubspot") as server:
        conn = hubspot_conn(server.url)
        store = store_at(tmp_path)
        engine = SyncEngine(store, HubSpotConnector(conn), conn)
        edited: dict[str, str] = {}

        def edit_behind_the_list() -> None:  # while page 3 is answered: deals of page 1 change
            for deal_id in ("1", "7", "40"):
                edited[deal_id] = f"edited during backfill {deal_id}"
                sim.edit("deals", deal_id, {"dealname": edited[deal_id]})
            edited["new"] = sim.create("deals", {"dealname": "created during backfill", "dealstage": "demo"})

        sim.script.after(r"^GET /crm/v3/objects/deals$", 3, edit_behind_the_list)
        result = engine.backfill("deals")
        assert result.status == "ok" and result.complete, result
        assert len(edited) == 4
        by_route = sim.log.snapshot()["by_route"]
        assert by_route.get("POST /crm/v3/objects/deals/search", 0) <= 2  # counts, not the backfill
        assert by_route[LIST] >= 600 // 50
        # the first incremental pass starts where the backfill started (minus settle): the edits arrive
        engine.run("deals", mode="sync")
        stored = {r.source_id: r for r in store.iter_records(ObjectType.DEAL, connection="hs")}
        for deal_id in ("1", "7", "40"):
            assert stored[deal_id].name == edited[deal_id]  # type: ignore[attr-defined]
        assert edited["new"] in stored
        truth = {t["id"] for t in sim.truth("deals")}
        assert set(stored) == truth
        assert sim.log.snapshot()["by_status"].get("429", 0) == 0
        store.close()


def test_interrupted_list_backfill_resumes_on_the_list(tmp_path: Path) -> None:
    sim = limited(400, burst=190, window=10.0)
    with SandboxServer(sim.build_app(), name="hubspot") as server:
        conn = hubspot_conn(server.url)
        store = store_at(tmp_path)
        stop = threading.Event()
        engine = SyncEngine(store, HubSpotConnector(conn), conn, stop_event=stop)
        seen = {"pages": 0}

        def progress(_result: Any, _page: Any) -> None:
            seen["pages"] += 1
            if seen["pages"] == 3:
                stop.set()

        first = engine.backfill("deals", progress=progress)
        assert first.status == "stopped"
        sim.log.reset()
        again = SyncEngine(store, HubSpotConnector(conn), conn).backfill("deals")
        assert again.status == "ok" and again.complete
        by_route = sim.log.snapshot()["by_route"]
        assert by_route.get("POST /crm/v3/objects/deals/search", 0) <= 1  # the completeness count only
        assert by_route[LIST] < 400 // 50 + 1  # resumed where it stopped, not from the start
        store.close()


# --- several backfills at once, one limit -------------------------------------------------------------
def test_concurrent_backfills_of_one_portal_never_exceed_its_limit(tmp_path: Path) -> None:
    sim = limited(500, burst=10, window=2.0)
    with SandboxServer(sim.build_app(), name="hubspot") as server:
        # two connections to the same portal (same token), three objects each, all at once
        conns = [hubspot_conn(server.url, name="hs-a"), hubspot_conn(server.url, name="hs-b")]
        settings = Settings(connections=conns)
        store = store_at(tmp_path)
        sim.log.reset()
        jobs = [(c.name, o) for c in conns for o in ("deals", "accounts", "contacts")]
        results = run_backfills(settings, store, jobs)
        assert all(r.status == "ok" and r.complete for r in results), [(r.object_name, r.error) for r in results]
        snapshot = sim.log.snapshot()
        assert snapshot["by_status"].get("429", 0) == 0
        counted = [r.at for r in sim.log.recent if not r.path.endswith("/search")]
        assert len(counted) > 2 * 10  # enough requests that the limit had to hold them back
        # the simulator's limiter, which refuses any request over the limit, refused none (above);
        # its log stamps answers, which trail arrivals, so a window of them may hold one more
        assert most_in_any_window(counted, 2.0) <= 10 + len(jobs)
        store.close()


def test_without_the_shared_limiter_the_same_backfills_hit_the_limit(tmp_path: Path) -> None:
    """The control: the counters above can fail. With the client limiter off the simulator refuses."""
    sim = limited(300, burst=6, window=2.0)
    with SandboxServer(sim.build_app(), name="hubspot") as server:
        conns = [hubspot_conn(server.url, name=f"hs-{n}", limits_raised=True, max_wait_s=1) for n in "ab"]
        store = store_at(tmp_path)
        run_backfills(Settings(connections=conns), store, [(c.name, o) for c in conns for o in ("deals", "contacts")])
        assert sim.log.snapshot()["by_status"].get("429", 0) > 0
        store.close()


# --- Pipedrive: the token's burst limit, shared -------------------------------------------------------
def test_pipedrive_backfills_at_the_burst_limit_without_a_429(tmp_path: Path) -> None:
    from crmsync.sandbox.pipedrive import PipedriveSimulator

    sim = PipedriveSimulator(generate_world(33, 1500), Knobs(burst_limit=6, burst_window_s=2.0, daily_limit=100_000))
    with SandboxServer(sim.build_app(), name="pipedrive") as server:
        conns = [ConnectionSettings(name=f"pd-{n}", kind="pipedrive", base_url=server.url,
                                    credentials={"api_token": SecretStr(sorted(sim.api_tokens)[0])},
                                    objects=["deals", "accounts"],
                                    options={"page_limit": 200, "stage_history": False, "settle_seconds": 0,
                                             "backfill_windows": "auto"})
                 for n in "ab"]
        store = store_at(tmp_path)
        plan = plan_backfills(Settings(connections=conns[:1]), [("pd-a", "deals")])[0][2]
        assert not isinstance(plan, str) and plan.records == 1500
        # windows read side by side (at most the burst limit of them), each window's end one page more
        fewest = 1500 // 200 + 1 + 1
        assert plan.chosen.strategy == "windowed cursor list" and "windows at once" in plan.chosen.note
        assert fewest < plan.chosen.calls <= fewest + 6 - 1 and plan.chosen.quota_calls == plan.chosen.calls * 10
        sim.log.reset()
        results = run_backfills(Settings(connections=conns), store, [(c.name, o) for c in conns
                                                                     for o in ("deals", "accounts")])
        assert all(r.status == "ok" and r.complete for r in results), [(r.object_name, r.error) for r in results]
        assert sim.log.snapshot()["by_status"].get("429", 0) == 0
        times = [r.at for r in sim.log.recent]
        assert len(times) > 3 * 6
        assert most_in_any_window(times, 2.0) <= 6 + 4  # answer stamps trail arrivals (see above)
        store.close()
