"""PipedriveConnector against the Pipedrive simulator over real HTTP."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from crmsync.connectors.base import AuthError, BudgetExhausted, Page, PushItem
from crmsync.connectors.pipedrive import PipedriveConnector
from crmsync.connectors.pipedrive.http import PipedriveHttp
from crmsync.connectors.pipedrive.incremental import DEFAULT_RULE
from crmsync.model import Deal, LineItem
from crmsync.sandbox import FaultRule, Knobs, SandboxServer, generate_world
from crmsync.sandbox.pipedrive import DEFAULT_TOKEN, PipedriveSimulator
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
SETTLED = 1 + DEFAULT_RULE.settle_s + 1  # seconds after which a whole-second update_time is settled


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return generate_world(seed=5, deals=400, now=NOW)


@pytest.fixture
def sim(world) -> PipedriveSimulator:  # type: ignore[no-untyped-def]
    return PipedriveSimulator(world, Knobs(burst_window_s=2.0))


@pytest.fixture
def server(sim: PipedriveSimulator) -> Iterator[SandboxServer]:
    with SandboxServer(sim.build_app(), name="pd-connector") as srv:
        yield srv


def make(server: SandboxServer, token: str = DEFAULT_TOKEN, **options: Any) -> PipedriveConnector:
    conn = ConnectionSettings(name="pd", kind="pipedrive", base_url=server.url,
                              credentials={"api_token": token}, options={"max_wait_s": 5, **options})
    return PipedriveConnector(conn)


@pytest.fixture
def connector(server: SandboxServer) -> Iterator[PipedriveConnector]:
    c = make(server)
    yield c
    c.close()


def drain(pages: Iterator[Page]) -> tuple[list[Page], dict[str, Any]]:
    out = list(pages)
    return out, out[-1].cursor


def by_id(pages: list[Page]) -> dict[str, Any]:
    return {r.source_id: r for p in pages for r in p.records}


def test_pull_equals_truth_with_5000_deals_sharing_one_update_time(
        sim: PipedriveSimulator, connector: PipedriveConnector) -> None:
    ids = sim.bulk_import("deals", [{"title": f"Import {n}", "value": n} for n in range(5_000)])
    pages, cursor = drain(connector.pull("deals", None))
    got = by_id(pages)
    truth = {str(r["id"]): r for r in sim.truth("deals")}
    assert set(got) == set(truth) and set(ids) <= set(got)
    assert sum(len(p.records) for p in pages) == len(truth)  # nothing emitted twice
    assert pages[-1].done and not any(p.done for p in pages[:-1])
    deal = got[ids[17]]
    assert isinstance(deal, Deal) and deal.amount == Decimal(17) and deal.name == "Import 17"
    # update_time has whole seconds: versions read while their second was still running are read
    # once more after it (an edit later in that second would keep the same update_time)...
    sim.advance(SETTLED)  # the simulated clock moves on: their second is settled now
    drain(connector.pull("deals", cursor))
    _, cursor = drain(connector.pull("deals", cursor))
    # ...then a cycle re-reads the boundary block (closed lower bound) but emits nothing old...
    again, cursor = drain(connector.pull("deals", cursor))
    assert sum(len(p.records) for p in again) == 0
    # ...and a change at the very same second is still picked up.
    sim.edit("deals", ids[42], {"title": "changed"})
    third, _ = drain(connector.pull("deals", cursor))
    assert [r.source_id for p in third for r in p.records] == [ids[42]]


def test_records_map_custom_fields_by_name(world, connector: PipedriveConnector) -> None:  # type: ignore[no-untyped-def]
    pages, _ = drain(connector.pull("deals", None))
    deals = by_id(pages)
    source = next(d for d in world.deals if d.contract_start is not None)
    deal = deals[str(source.id)]
    assert deal.contract_start == source.contract_start and deal.contract_end == source.contract_end
    assert deal.lead_source == source.lead_source and deal.deal_type == source.deal_type
    assert deal.extra["billing_period"] == source.custom_fields()["billing_period"]
    assert deal.extra["handoff_done"] == ("true" if source.handoff_done else "false")
    assert deal.is_won and deal.is_closed and deal.amount == source.amount
    assert deal.modified_at.tzinfo is dt.UTC and deal.account_id == str(source.account_id)
    assert not any(len(k) == 40 for k in deal.extra)  # no raw hashes left


def test_edits_during_a_paged_sync_are_not_lost(sim: PipedriveSimulator, server: SandboxServer) -> None:
    connector = make(server, page_limit=50)
    stream = connector.pull("deals", None)
    first = next(stream)
    later_id = max(int(i["id"]) for i in sim.truth("deals"))
    sim.edit("deals", str(first.records[0].source_id), {"title": "edited after read"})
    sim.edit("deals", str(later_id), {"title": "edited ahead"})
    rest = list(stream)
    pages = [first, *rest]
    emitted = [r.source_id for p in pages for r in p.records]
    assert set(emitted) == {str(r["id"]) for r in sim.truth("deals")}
    # The edit to an already-read record is emitted again, in this pass or the next one.
    second, _ = drain(connector.pull("deals", pages[-1].cursor))
    latest = {**by_id(pages), **by_id(second)}
    assert latest[first.records[0].source_id].name == "edited after read"
    assert latest[str(later_id)].name == "edited ahead"


def test_resume_from_a_mid_pass_page_cursor(sim: PipedriveSimulator, server: SandboxServer) -> None:
    connector = make(server, page_limit=100)
    stream = connector.pull("deals", None)
    first, second = next(stream), next(stream)
    stream.close()  # the run dies here; the engine saved second.cursor
    resumed, _ = drain(connector.pull("deals", second.cursor))
    ids = [r.source_id for p in (first, second, *resumed) for r in p.records]
    assert len(ids) == len(set(ids)) == len(sim.truth("deals"))


def test_soft_deletes_arrive_each_cycle(sim: PipedriveSimulator, connector: PipedriveConnector) -> None:
    _, cursor = drain(connector.pull("deals", None))
    sim.delete("deals", "11")
    sim.delete("deals", "12")
    pages, cursor = drain(connector.pull("deals", cursor))
    deleted = sorted(i for p in pages for i in p.deleted_ids)
    assert deleted == ["11", "12"]
    assert all(r.deleted for p in pages for r in p.records if r.source_id in ("11", "12"))
    sim.advance(SETTLED)  # past the deletions' second: their versions are settled on the next read
    _, cursor = drain(connector.pull("deals", cursor))
    pages, _ = drain(connector.pull("deals", cursor))
    assert not [i for p in pages for i in p.deleted_ids]  # not re-emitted
    swept = {i for chunk in connector.list_ids("deals") for i in chunk}
    assert "11" not in swept and len(swept) == len(sim.truth("deals"))


def test_other_objects(world, sim: PipedriveSimulator, connector: PipedriveConnector) -> None:  # type: ignore[no-untyped-def]
    owners = by_id(list(connector.pull("owners", None)))
    assert len(owners) == len(world.owners) and owners["1"].email == world.owners[0].email
    assert owners["1"].modified_at.tzinfo is dt.UTC
    stages = by_id(list(connector.pull("stages", None)))
    assert stages["3"].name == "Demo Scheduled" and stages["3"].probability == Decimal("0.4")
    assert len(by_id(list(connector.pull("pipelines", None)))) == 1
    accounts = by_id(list(connector.pull("accounts", None)))
    assert len(accounts) == len(world.accounts) and accounts["1"].domain == world.accounts[0].domain
    contacts = by_id(list(connector.pull("contacts", None)))
    assert contacts[str(world.contacts[0].id)].email == world.contacts[0].email
    products = by_id(list(connector.pull("products", None)))
    assert products["1"].code == "PLAT-CORE" and products["1"].unit_price == Decimal("49")
    items = by_id(list(connector.pull("line_items", None)))
    expected = [li for d in world.deals for li in world.line_items(d)]
    assert len(items) == len(expected)
    one = items[str(expected[0].id)]
    assert isinstance(one, LineItem) and one.total == expected[0].total and one.quantity == expected[0].quantity
    assert connector.count("deals") == len(sim.truth("deals"))
    assert connector.count("accounts") == len(world.accounts)
    assert connector.count("line_items") == len(expected)  # the completeness check of a line-item backfill


def test_token_budget_is_read_and_honoured(sim: PipedriveSimulator, server: SandboxServer) -> None:
    sim.knobs.update({"daily_limit": 2_000})
    conn = ConnectionSettings(name="pd", kind="pipedrive", base_url=server.url,
                              credentials={"api_token": DEFAULT_TOKEN},
                              budget={"daily_share": 0.5, "reserve_for_push": 100})
    connector = PipedriveConnector(conn)
    with pytest.raises(BudgetExhausted):
        for _ in connector.pull("deals", None):  # 1 page of 400 deals... then repeated cycles
            pass
        for _ in range(200):
            list(connector.pull("deals", None, backfill=True))
    usage = connector.usage
    assert usage.limit == 2_000 and usage.remaining is not None
    # Stopped before eating the share that is not ours plus the push reserve: 1000 + 100 tokens left.
    assert usage.remaining >= 1_100
    assert sim.limiter.daily_used <= 900
    # Pushes may still use the reserve.
    result = connector.push([PushItem("deals", "update", {"name": "reserved"}, source_id="3")])
    assert result[0].ok


def _answer(remaining: int, limit: int = 2_000) -> httpx.Response:
    return httpx.Response(200, headers={"x-daily-ratelimit-token-limit": str(limit),
                                        "x-daily-ratelimit-token-remaining": str(remaining)})


def test_an_answer_arriving_late_does_not_give_back_spent_tokens() -> None:
    """Windowed chains' answers come back in any order: the count of one sent before the known
    count arrived must not raise what is left; one sent after it (a reset) or a new limit does."""
    http = PipedriveHttp("https://127.0.0.1:9", "token", pace=False)
    try:
        before = time.monotonic()
        http._observe(_answer(1_190), sent_at=before)
        http._observe(_answer(1_200), sent_at=before)  # in flight beside the first, arrived after it
        assert http.usage.remaining == 1_190 and http.usage.used == 810
        http._observe(_answer(1_180), sent_at=before)
        assert http.usage.remaining == 1_180
        http._observe(_answer(5_000, limit=6_000), sent_at=before)  # a raised limit
        assert http.usage.remaining == 5_000 and http.usage.limit == 6_000
        http._observe(_answer(5_990, limit=6_000), sent_at=time.monotonic())  # the budget was reset
        assert http.usage.remaining == 5_990 and http.usage.used == 10
    finally:
        http.close()


def test_retries_on_burst_429_and_5xx(sim: PipedriveSimulator, server: SandboxServer) -> None:
    sim.knobs.update({"faults": [{"path": r"/api/v2/stages$", "kind": "503", "probability": 1.0}]})
    connector = make(server, max_attempts=3)
    with pytest.raises(Exception) as failure:
        list(connector.pull("stages", None))
    assert "503" in str(failure.value) and DEFAULT_TOKEN not in str(failure.value)
    deadline = time.monotonic() + 2  # the server logs a request just after answering it
    while sim.log.by_route["GET /api/v2/stages"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.log.by_route["GET /api/v2/stages"] == 3  # max_attempts, then the error surfaces
    sim.knobs.update({"faults": [FaultRule(r"/api/v2/pipelines$", "429", probability=0.5, retry_after=0.0)]})
    assert len(by_id(list(connector.pull("pipelines", None)))) == 1
    sim.knobs.update({"faults": [], "burst_limit": 4})
    pages, _ = drain(make(server, page_limit=20).pull("deals", None))  # 20 pages, throttled by x-ratelimit
    assert sum(len(p.records) for p in pages) == len(sim.truth("deals"))


def test_bad_token_is_auth_error_without_the_token(server: SandboxServer) -> None:
    connector = make(server, token="not-the-token-123")
    with pytest.raises(AuthError) as failure:
        list(connector.pull("owners", None))
    assert "not-the-token-123" not in str(failure.value)


def test_push_with_conflict(sim: PipedriveSimulator, connector: PipedriveConnector) -> None:
    pages, _ = drain(connector.pull("deals", None))
    deals = by_id(pages)
    a, b = deals["20"], deals["21"]
    sim.advance(5)
    sim.edit("deals", "21", {"title": "someone else changed it"})  # after our read
    results = connector.push([
        PushItem("deals", "update", {"name": "Renamed by rule", "amount": Decimal("99.5"), "champion": "VP"},
                 source_id="20", based_on_modified_at=a.modified_at, ref=1),
        PushItem("deals", "update", {"name": "should not land"}, source_id="21",
                 based_on_modified_at=b.modified_at, ref=2),
        PushItem("deals", "update", {"bogus": 1}, source_id="22", ref=3),
    ])
    assert [r.ok for r in results] == [True, False, False]
    assert results[1].conflict and not results[2].conflict and "bogus" in (results[2].error or "")
    truth = {str(r["id"]): r for r in sim.truth("deals")}
    assert truth["20"]["title"] == "Renamed by rule" and truth["20"]["value"] == 99.5
    assert truth["21"]["title"] == "someone else changed it"
    reads = sim.log.by_route["GET /api/v2/deals"]
    assert reads >= 1  # one batched ?ids= read served both conflict checks


def test_idempotent_activity_and_deal_create(sim: PipedriveSimulator, connector: PipedriveConnector) -> None:
    item = PushItem("tasks", "create", {"subject": "Kickoff call", "deal_id": "30", "due_date": "2026-03-09"},
                    idempotency_key="handoff-30", ref=7)
    first = connector.push([item])[0]
    again = connector.push([item])[0]  # the outbox retries after a lost answer
    assert first.ok and first.created and again.ok and not again.created
    assert again.source_id == first.source_id
    tasks = [t for t in sim.truth("activities") if t["deal_id"] == 30]
    assert len(tasks) == 1
    pulled = by_id(list(connector.pull("tasks", None)))
    assert pulled[first.source_id].crmsync_key == "handoff-30"
    deal_item = PushItem("deals", "create", {"name": "Renewal 2027", "owner_id": "2"}, idempotency_key="renew-9")
    d1, d2 = connector.push([deal_item]), connector.push([deal_item])
    assert d1[0].created and not d2[0].created and d1[0].source_id == d2[0].source_id
    assert sum(1 for d in sim.truth("deals") if d["title"] == "Renewal 2027") == 1


def test_writable_fields_are_enforced(server: SandboxServer) -> None:
    conn = ConnectionSettings(name="pd", kind="pipedrive", base_url=server.url,
                              credentials={"api_token": DEFAULT_TOKEN}, writable_fields={"deals": ["stage_id"]})
    result = PipedriveConnector(conn).push([PushItem("deals", "update", {"name": "x"}, source_id="5")])
    assert not result[0].ok and "not writable" in (result[0].error or "")



def test_a_version_read_inside_its_own_second_is_read_again() -> None:
    """Pitfall 1 with whole-second timestamps: an edit later in the same second keeps the same
    update_time, so a version read before its second ended must not be remembered as seen."""
    from crmsync.connectors.pipedrive.incremental import Checkpoint

    cp = Checkpoint()
    settle = DEFAULT_RULE.settle_s
    assert cp.accept(1, 100, read_at=100.4)  # read during second 100
    assert cp.accept(1, 100, read_at=100.9)  # maybe edited again in second 100: emitted again
    assert cp.accept(1, 100, read_at=101.3 + settle)  # read after second 100 settled: emitted, remembered
    assert not cp.accept(1, 100, read_at=105.0 + settle)  # settled: a closed lower bound does not re-emit it
    assert cp.accept(1, 101, read_at=105.0 + settle)  # a newer version always passes
    assert cp.to_dict()["seen"] == {"1": 101}


def _requests_of(sim: PipedriveSimulator, route: str, at_least: int, deadline_s: float = 10.0) -> int:
    """The simulator's count for ``route`` once it reaches ``at_least`` (it logs a request just after
    answering it), or whatever it is when the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while sim.log.by_route[route] < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
    return int(sim.log.by_route[route])


def test_pages_are_requested_ahead_up_to_prefetch_pages_and_read_in_order(
        sim: PipedriveSimulator, server: SandboxServer) -> None:
    list_route = "GET /api/v2/deals"
    plain = make(server, page_limit=40, prefetch=False, backfill_windows=1)
    expected, expected_cursor = drain(plain.pull("deals", None, backfill=True))
    plain.close()
    assert len(expected) == 400 // 40 + 1  # ten live pages, then the deleted pass
    sim.log.reset()
    ahead = make(server, page_limit=40, prefetch_pages=3, backfill_windows=1)
    pages = ahead.pull("deals", None, backfill=True)
    first = next(pages)
    # while the first page is held, the next three answers wait in the queue and the worker holds
    # the fourth: five list requests, and no more however long the caller takes
    assert _requests_of(sim, list_route, 5) == 5
    assert sim.log.by_route[list_route] == 5
    rest = list(pages)
    ahead.close()
    got = [first, *rest]
    assert [[r.source_id for r in p.records] for p in got] == [[r.source_id for r in p.records] for p in expected]
    assert [p.done for p in got] == [p.done for p in expected]
    assert got[-1].cursor == expected_cursor
    assert sim.log.snapshot()["by_status"].get("429", 0) == 0


def test_a_pass_closed_early_stops_its_requests(sim: PipedriveSimulator, server: SandboxServer) -> None:
    list_route = "GET /api/v2/deals"
    sim.log.reset()
    connector = make(server, page_limit=20, prefetch_pages=2, backfill_windows=1)
    pages = connector.pull("deals", None, backfill=True)
    next(pages)
    held = _requests_of(sim, list_route, 4)
    pages.close()  # e.g. a stop requested: the worker finishes the request in hand, then ends
    connector.close()
    assert held == 4 and sim.log.by_route[list_route] <= held + 1
    assert sim.log.by_route[list_route] < 400 // 20


def _burst_answer(remaining: int, limit: int = 40) -> httpx.Response:
    return httpx.Response(200, headers={"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining),
                                        "x-ratelimit-reset": "1"})


@pytest.mark.parametrize(("ours", "waits"), [(40, False), (3, True)])
def test_a_spent_burst_window_waits_for_its_reset_only_when_others_spent_it(ours: int, waits: bool) -> None:
    """Our limiter holds every request of this process in the server's window: when it holds as
    many as the server counts, it already waits exactly (the header's whole-second reset would
    stall every chain up to a second more); when the server counts more, another client shares
    the token and the reset is kept."""
    http = PipedriveHttp("https://127.0.0.1:9", f"token-burst-{ours}", pace=True)
    try:
        assert http.burst is not None
        http.burst.update(40)
        for _ in range(ours):
            http.burst.acquire()
            http.burst.release()
        http._observe(_burst_answer(0), sent_at=time.monotonic())
        assert (http._burst_reset_at is not None) is waits
    finally:
        http.close()
