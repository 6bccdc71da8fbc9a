"""HubSpotConnector against the HubSpot simulator over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from crmsync.connectors.base import AuthError, Page, PushItem
from crmsync.connectors.hubspot import HubSpotConnector
from crmsync.model import Deal
from crmsync.sandbox.core import Knobs, SandboxServer
from crmsync.sandbox.hubspot import SANDBOX_TOKEN, HubSpotSimulator
from crmsync.sandbox.world import generate_world

FAST = 1000  # searches per second in tests (the 4/s default is for production)


@pytest.fixture()
def sim() -> HubSpotSimulator:
    return HubSpotSimulator(generate_world(21, 200), Knobs(search_per_second=FAST))


@pytest.fixture()
def server(sim: HubSpotSimulator) -> Iterator[SandboxServer]:
    with SandboxServer(sim.build_app(), name="hubspot") as srv:
        yield srv


def make(server: SandboxServer, **options: Any) -> HubSpotConnector:
    from crmsync.settings import ConnectionSettings

    conn = ConnectionSettings(name="hs", kind="hubspot", base_url=server.url,
                              credentials={"access_token": SecretStr(SANDBOX_TOKEN)},
                              options={"search_per_second": FAST, "limits_raised": True, "lookback_seconds": 0,
                                       **options})
    return HubSpotConnector(conn)


@pytest.fixture()
def hs(server: SandboxServer) -> HubSpotConnector:
    return make(server)


def drain(pages: Iterator[Page]) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    records: dict[str, Any] = {}
    deleted: list[str] = []
    cursor: dict[str, Any] = {}
    for page in pages:
        for record in page.records:
            records[record.source_id] = record
        deleted += page.deleted_ids
        cursor = page.cursor
        assert not page.quarantined, page.quarantined[:1]
    return records, deleted, cursor


def routes(sim: HubSpotSimulator) -> dict[str, int]:
    return dict(sim.log.snapshot()["by_route"])


def test_pull_equals_truth_with_5000_deals_sharing_one_timestamp(hs: HubSpotConnector,
                                                                  sim: HubSpotSimulator) -> None:
    # the import is stamped a few seconds back on the CRM's clock (never ahead of this machine's)
    sim.clock.freeze(sim.clock.time() - 5)
    ids = sim.bulk_import("deals", [{"dealname": f"Import {n}", "dealstage": "discovery", "amount": f"{n}.50"}
                                    for n in range(5000)])
    stamps = {t["properties"]["hs_lastmodifieddate"] for t in sim.truth("deals") if t["id"] in set(ids)}
    assert len(stamps) == 1
    # The import's stamp is settled before the pull reads it (read within the same second of the
    # CRM's Date it would rightly be read again on resume: test_settle_window_rereads_open_stamps).
    sim.clock.advance(1.1)
    sim.clock.run()
    # an interrupted backfill: stop after 4 pages, resume from the saved cursor
    pages = hs.pull("deals", None, backfill=True)
    first = [next(pages) for _ in range(4)]
    resumed, _, cursor = drain(hs.pull("deals", first[-1].cursor))
    pulled = {r.source_id: r for p in first for r in p.records} | resumed
    truth = {t["id"]: t for t in sim.truth("deals")}
    assert set(pulled) == set(truth)
    assert hs.count("deals") == len(truth)
    for source_id in ("1", "77", ids[0], ids[-1]):
        deal, want = pulled[source_id], truth[source_id]
        assert isinstance(deal, Deal)
        assert deal.amount == Decimal(want["properties"]["amount"])
        assert deal.stage_id == want["properties"]["dealstage"]
        assert deal.account_id == (want["associations"]["companies"] or [None])[0]
        assert deal.contact_ids == want["associations"]["contacts"]
    assert pulled["1"].extra.get("billing_period") in ("ANNUAL", "MONTHLY")
    assert routes(sim).get("POST /crm/v3/objects/deals/search", 0) < 5200 / 200 + 12

    # incremental: only what changed, including a second burst sharing one timestamp
    sim.edit("deals", "5", {"amount": "123.45"})
    more = sim.bulk_import("deals", [{"dealname": f"Late {n}", "dealstage": "demo"} for n in range(450)])
    changed, _, _ = drain(hs.pull("deals", cursor))
    assert set(changed) == {"5", *more}
    assert changed["5"].amount == Decimal("123.45")


def test_window_with_more_than_10000_changes(hs: HubSpotConnector, sim: HubSpotSimulator) -> None:
    _, _, cursor = drain(hs.pull("deals", None))
    sim.log.reset()
    ids = sim.bulk_import("deals", [{"dealname": f"Wave {n}", "dealstage": "demo"} for n in range(10_150)])
    changed, _, _ = drain(hs.pull("deals", cursor))
    assert set(changed) == set(ids)
    snapshot = sim.log.snapshot()
    assert "400" not in snapshot["by_status"]  # no query ever paged past the 10,000th result
    # one call per 200 records, plus the page that finds one timestamp filling it and the last one
    assert snapshot["by_route"]["POST /crm/v3/objects/deals/search"] <= 10_150 / 200 + 5


def test_search_lag_is_caught_up_not_skipped(hs: HubSpotConnector, sim: HubSpotSimulator) -> None:
    _, _, cursor = drain(hs.pull("deals", None))
    sim.knobs.update({"search_lag_s": 0.6})
    sim.edit("deals", "9", {"dealname": "renamed while search lags"})
    early, _, cursor = drain(hs.pull("deals", cursor))
    assert "9" not in early
    sim.clock.advance(0.7)  # the simulated clock passes the lag
    late, _, cursor = drain(hs.pull("deals", cursor))
    assert late["9"].name == "renamed while search lags"


def test_settle_window_rereads_open_stamps_then_stops(server: SandboxServer, sim: HubSpotSimulator) -> None:
    """settle_seconds (older name lookback_seconds) is how late a change may show up in search.
    While the stamps a pull read are inside it, the next pull reads them again (a record that
    shows up late with one of those stamps is caught); once they are settled, it reads nothing old."""
    hs = make(server, lookback_seconds=3600)
    ids = set(sim.bulk_import("deals", [{"dealname": f"Bulk {n}", "dealstage": "demo"} for n in range(450)]))
    _, _, cursor = drain(hs.pull("deals", None))
    assert cursor["open_ms"] <= cursor["ts"]  # the bulk import's stamp was open when read
    sim.edit("deals", "3", {"amount": "1"})
    sim.clock.advance(0.002)
    again, _, cursor = drain(hs.pull("deals", cursor))
    assert "3" in again and ids <= set(again)  # the open stamps are read again, the tie included
    sim.clock.advance(3601)  # the simulated hour passes: everything read is settled now
    drain(hs.pull("deals", cursor))  # this read sees them settled ...
    _, _, cursor = drain(hs.pull("deals", cursor))
    assert "open_ms" not in cursor
    sim.edit("deals", "4", {"amount": "2"})
    quiet, _, _ = drain(hs.pull("deals", cursor))
    assert set(quiet) == {"4"}  # ... so the next pull reads only what changed


def cursor_iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_archived_merged_and_hard_deletes(hs: HubSpotConnector, sim: HubSpotSimulator) -> None:
    _, _, cursor = drain(hs.pull("deals", None))
    sim.delete("deals", "11")
    sim.merge("deals", "12", "13")
    sim.delete("deals", "14", hard=True)
    changed, deleted, cursor = drain(hs.pull("deals", cursor))
    assert "11" in deleted and "13" in deleted
    assert "12" in changed and changed["12"].extra["hs_merged_object_ids"] == "13"
    swept = {i for chunk in hs.list_ids("deals") for i in chunk}
    assert "14" not in swept and "11" not in swept and "12" in swept
    assert swept == {t["id"] for t in sim.truth("deals")}
    _, deleted_again, _ = drain(hs.pull("deals", cursor))
    assert "11" not in deleted_again  # reported once


def test_associations_and_periodic_refresh(server: SandboxServer, sim: HubSpotSimulator) -> None:
    hs = make(server, association_refresh_hours=1)
    _, _, cursor = drain(hs.pull("deals", None))
    contact = sim.truth("contacts")[-1]["id"]
    sim.associate("deals", "20", "contacts", contact)
    quiet, _, cursor = drain(hs.pull("deals", cursor))
    assert "20" not in quiet  # association changes do not bump hs_lastmodifieddate
    cursor["assoc_refreshed_ms"] = 0  # an hour and more later
    refreshed, _, cursor = drain(hs.pull("deals", cursor))
    assert contact in refreshed["20"].contact_ids
    assert len(refreshed) == len(sim.truth("deals"))
    items, _, _ = drain(hs.pull("line_items", None))
    some = next(iter(items.values()))
    assert some.deal_id == str(int(some.source_id) // 10)


def test_owners_pipelines_stages_and_other_objects(hs: HubSpotConnector, sim: HubSpotSimulator) -> None:
    owners, _, _ = drain(hs.pull("owners", None))
    assert len(owners) == len(sim.truth("owners", include_deleted=True))
    assert any(not o.active for o in owners.values()) and any(o.extra["type"] == "QUEUE" for o in owners.values())
    stages, _, _ = drain(hs.pull("stages", None))
    assert stages["closedwon"].is_won and stages["closedwon"].probability == Decimal("1.0")
    assert not stages["demo"].is_closed
    pipelines, _, _ = drain(hs.pull("pipelines", None))
    assert list(pipelines) == ["default"]
    accounts, _, _ = drain(hs.pull("accounts", None))
    assert len(accounts) == len(sim.truth("companies")) == hs.count("accounts")
    products, _, _ = drain(hs.pull("products", None, backfill=True))
    assert {p.code for p in products.values()} >= {"PLAT-CORE", "ADDON-SSO"}


def test_backfill_by_list_carries_properties_and_associations_inline(server: SandboxServer,
                                                                     sim: HubSpotSimulator) -> None:
    hs = make(server, backfill_via="list")
    records, _, _ = drain(hs.pull("deals", None, backfill=True))
    truth = {t["id"]: t for t in sim.truth("deals")}
    assert set(records) == set(truth)
    for source_id, want in truth.items():
        assert records[source_id].account_id == (want["associations"]["companies"] or [None])[0]
        assert records[source_id].contact_ids == want["associations"]["contacts"]
    by_route = routes(sim)
    # one list call per 50 deals (stage history inline) + the archived list; no batch or association read
    assert by_route["GET /crm/v3/objects/deals"] == -(-len(truth) // 50) + 1
    assert not any("batch/read" in route for route in by_route)
    # the histories the list carried are what a batch read gives
    kept = hs.history.read([records[i] for i in truth])  # type: ignore[list-item]
    assert kept.api_calls == 0 and len(kept.histories) == len(truth)
    fresh = make(server).history.read([records[i] for i in truth])  # type: ignore[list-item]
    assert fresh.api_calls > 0 and fresh.histories == kept.histories and fresh.extra == kept.extra


def test_backfill_by_list_reads_by_post_when_the_url_would_be_too_long(server: SandboxServer,
                                                                       sim: HubSpotSimulator) -> None:
    many = [f"custom_property_with_a_long_name_{n}" for n in range(80)]
    hs = make(server, backfill_via="list", extra_properties={"deals": many})
    records, _, _ = drain(hs.pull("deals", None, backfill=True))
    truth = {t["id"]: t for t in sim.truth("deals")}
    assert set(records) == set(truth)
    assert all(records[i].account_id == (t["associations"]["companies"] or [None])[0] for i, t in truth.items())
    by_route = routes(sim)
    assert by_route["POST /crm/v3/objects/deals/batch/read"] == by_route["GET /crm/v3/objects/deals"] - 1


def test_push_batches_100_per_call(hs: HubSpotConnector, sim: HubSpotSimulator) -> None:
    sim.bulk_import("deals", [{"dealname": f"extra {n}", "dealstage": "demo"} for n in range(60)])
    items = [PushItem("deals", "update", {"amount": Decimal("10.00") + n}, source_id=str(n + 1), ref=n)
             for n in range(250)]
    sim.log.reset()
    results = hs.push(items)
    assert all(r.ok for r in results) and [r.ref for r in results] == list(range(250))
    assert routes(sim) == {"POST /crm/v3/objects/deals/batch/update": 3}
    truth = {t["id"]: t["properties"] for t in sim.truth("deals")}
    assert truth["250"]["amount"] == "259.00"


def test_push_207_partial_failure_per_item(hs: HubSpotConnector, sim: HubSpotSimulator) -> None:
    results = hs.push([
        PushItem("deals", "update", {"name": "ok"}, source_id="1", ref=1),
        PushItem("deals", "update", {"stage_id": "no-such-stage"}, source_id="2", ref=2),
        PushItem("deals", "update", {"amount": Decimal(1)}, source_id="999999", ref=3),
        PushItem("deals", "update", {"close_date": dt.date(2031, 1, 2)}, source_id="3", ref=4),
    ])
    by_ref = {r.ref: r for r in results}
    assert by_ref[1].ok and by_ref[4].ok
    assert not by_ref[2].ok and "VALIDATION_ERROR" in (by_ref[2].error or "")
    assert not by_ref[3].ok and "OBJECT_NOT_FOUND" in (by_ref[3].error or "")
    assert {t["id"]: t for t in sim.truth("deals")}["3"]["properties"]["closedate"].startswith("2031-01-02")


def test_push_conflict_when_changed_since_decision(hs: HubSpotConnector, sim: HubSpotSimulator) -> None:
    records, _, _ = drain(hs.pull("deals", None))
    seen_4, seen_6 = records["4"].modified_at, records["6"].modified_at
    sim.clock.advance(0.002)  # a later edit gets a later millisecond stamp
    sim.edit("deals", "4", {"dealname": "a human edited this"})
    sim.log.reset()
    results = hs.push([
        PushItem("deals", "update", {"extra.handoff_done": True}, source_id="4", based_on_modified_at=seen_4, ref=4),
        PushItem("deals", "update", {"extra.handoff_done": True}, source_id="6", based_on_modified_at=seen_6, ref=6),
    ])
    by_ref = {r.ref: r for r in results}
    assert by_ref[4].conflict and not by_ref[4].ok
    assert by_ref[6].ok and not by_ref[6].conflict
    truth = {t["id"]: t["properties"] for t in sim.truth("deals")}
    assert truth["4"]["handoff_done"] == records["4"].extra["handoff_done"]  # the conflicting write was held back
    assert truth["4"]["dealname"] == "a human edited this"
    assert truth["6"]["handoff_done"] == "true"
    assert routes(sim) == {"POST /crm/v3/objects/deals/batch/read": 1, "POST /crm/v3/objects/deals/batch/update": 1}


def test_idempotent_creates_by_crmsync_key(hs: HubSpotConnector, sim: HubSpotSimulator) -> None:
    task = PushItem("tasks", "create", {"hs_task_subject": "Call back", "hs_task_status": "NOT_STARTED",
                                        "hs_timestamp": dt.datetime(2030, 5, 1, 9, tzinfo=dt.UTC)},
                    idempotency_key="rule:followup:deal-7", ref=1)
    first = hs.push([task])[0]
    retried = hs.push([task])[0]  # the worker crashed before recording the first answer
    assert first.ok and first.created and retried.ok and not retried.created
    assert first.source_id == retried.source_id
    assert len(sim.truth("tasks")) == 1
    tasks, _, _ = drain(hs.pull("tasks", None))
    assert tasks[first.source_id].crmsync_key == "rule:followup:deal-7"


def test_retries_rate_limits_and_reads_usage(server: SandboxServer, sim: HubSpotSimulator) -> None:
    hs = make(server)
    sim.bulk_import("deals", [{"dealname": f"d{n}", "dealstage": "demo"} for n in range(1000)], same_timestamp=False)
    sim.knobs.update({"faults": [{"path": "/search$", "kind": "429", "probability": 0.3, "retry_after": 0.05}]})
    try:
        records, _, _ = drain(hs.pull("deals", None))
    finally:
        sim.knobs.update({"faults": []})
    assert len(records) == len(sim.truth("deals"))
    assert sim.log.snapshot()["by_status"].get("429", 0) >= 1
    assert hs.usage.limit == 500_000 and hs.usage.remaining is not None and hs.usage.burst_remaining is not None


def test_auth_error_is_fatal_and_token_free(server: SandboxServer) -> None:
    from crmsync.settings import ConnectionSettings

    conn = ConnectionSettings(name="hs", kind="hubspot", base_url=server.url,
                              credentials={"access_token": SecretStr("pat-na1-not-valid-123")})
    with pytest.raises(AuthError) as exc:
        list(HubSpotConnector(conn).pull("deals", None))
    assert "pat-na1" not in str(exc.value) and exc.value.status == 401


def test_search_per_second_limit_is_honoured() -> None:
    sim = HubSpotSimulator(generate_world(5, 50))  # HubSpot's default: 4 searches per second
    sim.bulk_import("deals", [{"dealname": f"s{n}", "dealstage": "demo"} for n in range(900)], same_timestamp=False)
    with SandboxServer(sim.build_app(), name="hubspot-4ps") as srv:
        from crmsync.settings import ConnectionSettings

        conn = ConnectionSettings(name="hs", kind="hubspot", base_url=srv.url,
                                  credentials={"access_token": SecretStr(SANDBOX_TOKEN)}, options={"max_attempts": 1})
        records, _, _ = drain(HubSpotConnector(conn).pull("deals", None))
    assert len(records) == 950
    assert sim.knobs.search_per_second == 4
    assert sim.log.snapshot()["by_route"]["POST /crm/v3/objects/deals/search"] >= 5
    assert "429" not in sim.log.snapshot()["by_status"]  # spaced, not retried


def test_push_canonical_task_fields_and_deal_link(hs: HubSpotConnector, sim: HubSpotSimulator) -> None:
    result = hs.push([PushItem("tasks", "create", {"subject": "Kick-off call", "owner_id": "4", "deal_id": "7",
                                                   "due_date": dt.date(2030, 2, 3), "done": False, "lead_id": None},
                               idempotency_key="handoff:7", ref=9)])[0]
    assert result.ok and result.created
    task = sim.truth("tasks")[0]
    assert task["properties"]["hs_task_subject"] == "Kick-off call"
    assert task["properties"]["hs_task_status"] == "NOT_STARTED"
    assert task["properties"]["hs_timestamp"].startswith("2030-02-03")
    assert task["properties"]["crmsync_key"] == "handoff:7"
    assert list(sim.associations.get("tasks", int(result.source_id), "deals")) == [7]
    refused = hs.push([PushItem("tasks", "create", {"subject": "x", "lead_id": "55"}, idempotency_key="k2", ref=1)])
    assert not refused[0].ok and "lead_id" in (refused[0].error or "")


def test_a_search_rate_above_the_documented_limit_is_capped(server: SandboxServer,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A ``search_per_second: 20`` typo cannot cause 429 storms: HubSpot documents 5 per second."""
    from crmsync.connectors.hubspot.limits import DOCUMENTED_SEARCH_PER_SECOND, search_rate
    from crmsync.settings import ConnectionSettings

    conn = ConnectionSettings(name="hs", kind="hubspot", base_url=server.url,
                              credentials={"access_token": SecretStr(SANDBOX_TOKEN)},
                              options={"search_per_second": 20})
    capped = HubSpotConnector(conn)
    assert capped.transport.search_interval == pytest.approx(1.07 / DOCUMENTED_SEARCH_PER_SECOND)
    said = capsys.readouterr()
    assert "settings.rate_capped" in said.out + said.err  # a warning names the option and the cap
    assert search_rate({"search_per_second": 3}, "hs") == 3  # under the limit: as configured
    assert search_rate({"search_per_second": 20, "limits_raised": True}, "hs") == 20  # said so explicitly
    with pytest.raises(ValueError, match="search_per_second"):
        search_rate({"search_per_second": "fast"}, "hs")
