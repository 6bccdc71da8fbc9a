"""SalesforceConnector against the Salesforce simulator over real HTTPS (generated CA)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from crmsync.connectors.base import AuthError, BudgetExhausted, FatalError, Page, PushItem, RetriableError
from crmsync.connectors.salesforce import SalesforceConnector, SoqlBuildError, literal, quote, soql
from crmsync.model import Deal
from crmsync.sandbox import FaultRule, Knobs, LocalCA, SandboxServer, generate_world
from crmsync.sandbox.salesforce import SalesforceSimulator, parse
from crmsync.sandbox.salesforce.evaluate import compile_condition
from crmsync.sandbox.salesforce.schema import SOBJECTS
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
COMPOSITE = "PATCH /services/data/v59.0/composite/sobjects"
UPSERT = "PATCH /services/data/v59.0/composite/sobjects/Task/Crmsync_Key__c"


class Org:
    def __init__(self, sim: SalesforceSimulator, server: SandboxServer, ca: LocalCA) -> None:
        self.sim, self.server, self.ca = sim, server, ca
        self.opened: list[SalesforceConnector] = []

    def settings(self, **options: Any) -> ConnectionSettings:
        creds = self.sim.credentials
        field_mappings = options.pop("field_mappings", {})
        password = options.pop("password", creds.password)
        return ConnectionSettings(
            name="sf", kind="salesforce", base_url=self.server.url, ca_bundle=self.ca.ca_path,
            credentials={"client_id": creds.client_id, "client_secret": creds.client_secret,
                         "username": creds.username, "password": password},
            field_mappings=field_mappings,
            options={"bulk_poll_seconds": 0.01, "max_wait_seconds": 0.2, **options})

    def connector(self, **options: Any) -> SalesforceConnector:
        connector = SalesforceConnector(self.settings(**options))
        self.opened.append(connector)
        return connector

    def live_ids(self, sobject: str) -> set[str]:
        return {r["Id"] for r in self.sim.truth(sobject)}

    def calls(self, route: str) -> int:
        self.settle()
        return self.sim.log.snapshot()["by_route"].get(route, 0)

    def total(self) -> int:
        self.settle()
        return self.sim.log.total

    def settle(self) -> None:
        """The sandbox logs a request just after answering it; wait until the log stops moving."""
        last, deadline = -1, time.monotonic() + 2.0
        while time.monotonic() < deadline:
            now = self.sim.log.total
            if now == last:
                return
            last = now
            time.sleep(0.02)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture()
def org_factory(ca: LocalCA) -> Iterator[Callable[..., Org]]:
    orgs: list[Org] = []

    def make(deals: int = 1000, knobs: Knobs | None = None) -> Org:
        sim = SalesforceSimulator(generate_world(7, deals, now=NOW), knobs)
        server = SandboxServer(sim.build_app(), tls=ca, name="salesforce").start()
        orgs.append(Org(sim, server, ca))
        return orgs[-1]

    yield make
    for made in orgs:
        for connector in made.opened:
            connector.close()
        stop_now(made.server)


@pytest.fixture()
def org(org_factory: Callable[..., Org]) -> Org:
    return org_factory()


def stop_now(server: SandboxServer) -> None:
    """Stop without uvicorn's graceful wait: a TLS socket still referenced by a kept exception or
    response would otherwise hold the shutdown for the thread-join timeout (10 s)."""
    server._server.force_exit = True
    server.stop()


def apply(store: dict[str, Any], pages: Iterable[Page], seen: list[str] | None = None) -> dict[str, Any]:
    """What the sync engine does with pages; returns the last cursor."""
    cursor: dict[str, Any] = {}
    for page in pages:
        for record in page.records:
            if seen is not None:
                seen.append(record.source_id)
            if record.deleted:
                store.pop(record.source_id, None)
            else:
                store[record.source_id] = record
        for source_id in page.deleted_ids:
            store.pop(source_id, None)
        cursor = page.cursor
    return cursor


def stamp_minutes_ago(minutes: int) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


# --- SOQL builder ------------------------------------------------------------------------------
HOSTILE = [
    "O'Brien", "back\\slash", 'double "quotes"', "new\nline\r\ttab\b\f", "' OR Name != '",
    "\\' OR Id != null OR Name = \\'", "50%_off", "unicodé ✓", "", "trailing\\",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_soql_strings_round_trip_through_a_real_parser(value: str) -> None:
    query = soql("SELECT Id FROM Account WHERE Name = {} AND Industry != {}", value, value)
    where = parse(query).where
    assert [item.value.value for item in where.items] == [value, value]  # one comparison each, exact value
    like = parse(soql("SELECT Id FROM Account WHERE Name LIKE {:like}", value)).where
    matches = compile_condition(SOBJECTS["Account"], like)
    assert matches({"Name": value}) and not matches({"Name": value + "x"})
    if "%" in value:
        assert not matches({"Name": value.replace("%", "ANY")})


def test_soql_literals() -> None:
    assert quote("a'b\\c\"d\n") == "'a\\'b\\\\c\\\"d\\n'"
    assert quote("5%_", like=True) == "'5\\%\\_'"
    assert literal(dt.datetime(2024, 1, 1, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == "2024-01-01T00:30:00+00:00"
    assert literal(dt.datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC)) == "2024-01-01T00:00:00.123+00:00"
    assert literal(dt.date(2024, 2, 29)) == "2024-02-29"
    assert literal(Decimal("10.50")) == "10.50" and literal(True) == "true" and literal(None) == "null"
    assert literal(["a", "b'"]) == "('a','b\\'')"
    for bad in (dt.datetime(2024, 1, 1), 1.5, [], object()):
        with pytest.raises(SoqlBuildError):
            literal(bad)
    for name in ("Name; DELETE", "Name FROM User", "1abc", "Na'me"):
        with pytest.raises(SoqlBuildError):
            soql("SELECT {:ident} FROM Account", name)
    with pytest.raises(SoqlBuildError):
        soql("SELECT Id FROM Account WHERE Name = {!r}", "x")


def test_escaped_values_find_exactly_one_record(org: Org) -> None:
    hostile = "Ann's \"50%\" \\ deal' OR Name != '"
    target = org.sim.create("Account", {"Name": hostile})
    org.sim.create("Account", {"Name": "Ann's 50 deal"})
    sf = org.connector()
    rows = sf.query(soql("SELECT Id, Name FROM Account WHERE Name = {}", hostile), include_deleted=False)
    assert [r["Id"] for r in rows] == [target] and rows[0]["Name"] == hostile
    like = sf.query(soql("SELECT Id FROM Account WHERE Name LIKE {:like}", "Ann's \"50%\" %"), include_deleted=False)
    assert like == [] or [r["Id"] for r in like] == [target]


# --- pull ---------------------------------------------------------------------------------------
def test_pull_equals_truth_with_5000_records_sharing_one_systemmodstamp(org: Org) -> None:
    imported = org.sim.bulk_import("Opportunity", [
        {"Name": f"Imported {i}", "StageName": "Qualification", "CloseDate": "2026-12-31", "Amount": "100.10"}
        for i in range(5000)])
    stamps = {r["SystemModstamp"] for r in org.sim.truth("Opportunity") if r["Id"] in set(imported)}
    assert len(stamps) == 1
    sf = org.connector(page_size=700)
    store: dict[str, Any] = {}
    seen: list[str] = []
    pages = list(sf.pull("deals", None))
    cursor = apply(store, pages, seen)
    assert len(seen) == len(set(seen)) == 6000  # no duplicate, no loss within a cycle
    assert set(store) == org.live_ids("Opportunity")
    assert len(pages) >= 9 and pages[-1].done and all(not p.done for p in pages[:-1])
    assert all(p.api_calls == 1 for p in pages)
    deal = store[imported[0]]
    assert isinstance(deal, Deal) and deal.amount == Decimal("100.10") and deal.modified_at.tzinfo == dt.UTC

    # Cycle 2: human edits, soft deletes and a hard delete.
    edited, soft, hard = imported[10:13], imported[20:22], imported[30]
    for record_id in edited:
        org.sim.edit("Opportunity", record_id, {"Name": "Edited by a human"})
    for record_id in soft:
        org.sim.delete("Opportunity", record_id)
    with org.sim.lock:
        org.sim.data.delete("Opportunity", hard, hard=True, stamp=stamp_minutes_ago(2))
    cursor["deleted_ts"] = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    pages = list(sf.pull("deals", cursor))
    deleted_flags = {r.source_id for p in pages for r in p.records if r.deleted}
    apply(store, pages)
    assert deleted_flags == set(soft) and hard in pages[-1].deleted_ids
    assert set(store) == org.live_ids("Opportunity")
    assert {store[i].name for i in edited} == {"Edited by a human"}


def test_pull_resumes_mid_tie_without_loss_or_duplicates(org: Org) -> None:
    org.sim.bulk_import("Lead", [{"LastName": f"L{i}", "Company": "Same Second Inc"} for i in range(2500)])
    # The import's second is over before the pull reads it (read while open, the resumed pull
    # would rightly read the whole second again: see test_same_second.py).
    org.sim.clock.advance(2)
    sf = org.connector(page_size=400, lookback_seconds=0)
    store: dict[str, Any] = {}
    seen: list[str] = []
    pages = sf.pull("leads", None)
    taken = [next(pages) for _ in range(6)]  # the process dies inside the 2,500-record tie
    cursor = apply(store, taken, seen)
    pages.close()
    apply(store, org.connector(page_size=400, lookback_seconds=0).pull("leads", cursor), seen)
    assert len(seen) == len(set(seen)) and set(store) == org.live_ids("Lead")
    # With the default lookback a new cycle re-reads the last 5 minutes: repeats, never gaps.
    again: list[str] = []
    apply(store, org.connector(page_size=400).pull("leads", cursor), again)
    assert len(again) >= 2500 and set(store) == org.live_ids("Lead")


def test_bulk_backfill_resumes_the_same_job_from_its_locator(org: Org) -> None:
    org.sim.bulk.result_page_rows = 300  # the pages resultPages lists (the server sizes them)
    sf = org.connector(bulk_threshold=500, bulk_page_size=300)
    store: dict[str, Any] = {}
    pages = sf.pull("deals", None, backfill=True)
    first = [next(pages) for _ in range(3)]
    assert first[0].records == [] and first[0].cursor["mode"] == "bulk" and first[0].api_calls == 2  # count + job
    cursor = apply(store, first)
    assert cursor["mode"] == "bulk" and cursor["locator"] and len(store) == 600
    pages.close()  # abandoned mid-job: a new process continues from the saved locator
    final = apply(store, org.connector(bulk_threshold=500, bulk_page_size=300).pull("deals", cursor))
    assert set(store) == org.live_ids("Opportunity")
    assert org.calls("POST /services/data/v59.0/jobs/query") == 1
    assert "mode" not in final and final["id"] == ""

    # An expired job falls back to REST keyset and is still complete.
    store2: dict[str, Any] = {}
    pages = org.connector(bulk_threshold=500, bulk_page_size=300).pull("deals", None, backfill=True)
    cursor = apply(store2, [next(pages), next(pages)])
    pages.close()
    org.sim.expire_bulk_jobs()
    apply(store2, org.connector(bulk_threshold=500).pull("deals", cursor))
    assert set(store2) == org.live_ids("Opportunity")


def test_every_object_maps_and_field_mappings_apply(org: Org) -> None:
    sf = org.connector(field_mappings={"deals": {"NextStep": "extra.next_step", "Description": "extra.notes"}},
                       extra_fields={"accounts": ["Type"]})
    counts = {}
    for name in sf.objects():
        pages = list(sf.pull(name, None))
        assert not any(p.quarantined for p in pages), name
        counts[name] = sum(len(p.records) for p in pages)
    assert counts["pipelines"] == 1 and counts["stages"] == 7 and counts["deals"] == 1000
    assert counts["line_items"] == len(org.sim.truth("OpportunityLineItem"))
    deal = next(iter(sf.pull("deals", None))).records[0]
    assert "next_step" in deal.extra and "Metrics__c" in deal.extra and "NextStep" not in deal.extra
    assert deal.pipeline_id == "default" and deal.stage_id in {s["ApiName"] for s in org.sim.truth("OpportunityStage")}
    account = next(iter(sf.pull("accounts", None))).records[0]
    assert account.extra["Type"] == "Customer"


def test_count_and_list_ids(org: Org) -> None:
    sf = org.connector()
    org.sim.delete("Opportunity", org.sim.truth("Opportunity")[0]["Id"])
    assert sf.count("deals") == len(org.live_ids("Opportunity")) == 999
    org.sim.bulk_import("OpportunityLineItem", [{"OpportunityId": org.sim.truth("Opportunity")[1]["Id"],
                                                 "Quantity": 1, "UnitPrice": 5} for _ in range(1500)])
    chunks = list(sf.list_ids("line_items"))
    assert [len(c) for c in chunks[:-1]] == [2000] * (len(chunks) - 1) and len(chunks) >= 2
    flat = [i for c in chunks for i in c]
    assert len(flat) == len(set(flat)) and set(flat) == org.live_ids("OpportunityLineItem")


# --- HTTP edge ----------------------------------------------------------------------------------
def test_usage_read_from_sforce_limit_info(org: Org) -> None:
    sf = org.connector()
    list(sf.pull("owners", None))
    assert sf.usage.used == org.sim.limiter.daily_used and sf.usage.limit == 100_000
    assert sf.usage.remaining == 100_000 - sf.usage.used and sf.usage.observed_at is not None


def test_truncated_json_bodies_are_retried_then_classified(org_factory: Callable[..., Org]) -> None:
    """Found by the randomized truth suite: a 200 whose JSON body is cut short escaped as a bare
    JSONDecodeError (simple-salesforce parses after the session's retries) and crashed the cycle."""
    org = org_factory(deals=300, knobs=Knobs(seed=5, faults=[FaultRule(path=r"/queryAll/$", kind="truncate",
                                                                       probability=0.4)]))
    store: dict[str, Any] = {}
    apply(store, org.connector(page_size=50, max_attempts=12).pull("deals", None))
    assert set(store) == org.live_ids("Opportunity")
    org.sim.knobs.faults = [FaultRule(path=r"/queryAll/$", kind="truncate", probability=1.0)]
    with pytest.raises(RetriableError, match="truncated or invalid JSON body"):
        list(org.connector(page_size=50, max_attempts=2).pull("deals", None))


def test_retries_429_and_5xx_then_classifies(org_factory: Callable[..., Org]) -> None:
    org = org_factory(knobs=Knobs(seed=3, faults=[FaultRule(path=r"/queryAll/$", kind="500", probability=0.4),
                                                  FaultRule(path=r"/queryAll/$", kind="429", probability=0.3,
                                                            retry_after=1)]))
    sf = org.connector(page_size=300, max_attempts=10)
    store: dict[str, Any] = {}
    apply(store, sf.pull("deals", None))
    org.settle()
    statuses = org.sim.log.snapshot()["by_status"]
    assert statuses.get("500", 0) >= 1 and statuses.get("429", 0) >= 1
    assert set(store) == org.live_ids("Opportunity")
    org.sim.knobs.faults = []

    with pytest.raises(FatalError) as bad_field:
        list(org.connector(field_mappings={"deals": {"Nope__c": "extra.nope"}}).pull("deals", None))
    assert "INVALID_FIELD" in str(bad_field.value) and bad_field.value.status == 400

    org.sim.knobs.daily_limit = org.sim.limiter.daily_used + 2  # the login is free; one query left
    try:
        with pytest.raises(BudgetExhausted):
            list(org.connector(page_size=100).pull("deals", None))
    finally:
        org.sim.knobs.daily_limit = None

    with pytest.raises(AuthError) as denied:
        org.connector(password="not-the-password")
    assert "invalid_grant" in str(denied.value) and "not-the-password" not in str(denied.value)


def test_relogin_when_the_session_expires(org: Org) -> None:
    sf = org.connector(page_size=300)
    pages = sf.pull("deals", None)
    store: dict[str, Any] = {}
    apply(store, [next(pages)])
    org.sim.expire_sessions()
    apply(store, pages)
    assert sf.session.logins == 2 and set(store) == org.live_ids("Opportunity")


# --- push ---------------------------------------------------------------------------------------
def test_push_batches_of_200_and_idempotent_creates(org: Org) -> None:
    sf = org.connector()
    deals = [r["Id"] for r in org.sim.truth("Opportunity")][:450]
    org.settle()
    org.sim.log.reset()
    results = sf.push([PushItem("deals", "update", {"extra.Handoff_Done__c": True, "NextStep": "Kickoff"},
                                source_id=i, ref=n) for n, i in enumerate(deals)])
    assert all(r.ok for r in results) and [r.ref for r in results] == list(range(450))
    assert org.calls(COMPOSITE) == 3 and org.total() == 3
    truth = {r["Id"]: r for r in org.sim.truth("Opportunity")}
    assert all(truth[i]["Handoff_Done__c"] is True and truth[i]["NextStep"] == "Kickoff" for i in deals)

    tasks = [PushItem("tasks", "create", {"subject": f"Follow up {n}", "deal_id": i, "due_date": dt.date(2026, 7, 1)},
                      idempotency_key=f"handoff:{i}", ref=n) for n, i in enumerate(deals[:250])]
    first = sf.push(tasks)
    assert all(r.ok and r.created for r in first) and org.calls(UPSERT) == 2
    retried = sf.push(tasks)  # e.g. the worker crashed before recording the results
    assert all(r.ok and not r.created for r in retried) and [r.source_id for r in retried] == [r.source_id for r in first]
    keyed = [t for t in org.sim.truth("Task") if (t["Crmsync_Key__c"] or "").startswith("handoff:")]
    assert len(keyed) == 250 and keyed[0]["ActivityDate"] == "2026-07-01"

    bad = sf.push([PushItem("deals", "update", {"StageName": "Not a stage"}, source_id=deals[0], ref=1),
                   PushItem("deals", "update", {"amount": Decimal("1234567890123456.78")}, source_id=deals[1], ref=2)])
    assert not bad[0].ok and "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in (bad[0].error or "") and bad[1].ok
    # Money goes out digit for digit (a float would have rounded this amount).
    assert next(r for r in org.sim.truth("Opportunity") if r["Id"] == deals[1])["Amount"] == Decimal("1234567890123456.78")
    removed = sf.push([PushItem("deals", "delete", {}, source_id=deals[2], ref=9)])
    assert removed[0].ok and deals[2] not in org.live_ids("Opportunity")
    assert org.calls("DELETE /services/data/v59.0/composite/sobjects") == 1


def test_a_human_edit_after_the_decision_is_not_overwritten(org: Org) -> None:
    sf = org.connector()
    records = {r.source_id: r for r in next(iter(sf.pull("deals", None))).records[:3]}
    human, untouched, gone = list(records)
    org.sim.edit("Opportunity", human, {"NextStep": "Human says wait"})
    org.sim.delete("Opportunity", gone)
    org.settle()
    org.sim.log.reset()
    results = sf.push([PushItem("deals", "update", {"NextStep": "Bot says go"}, source_id=sid,
                                based_on_modified_at=records[sid].modified_at, ref=n)
                       for n, sid in enumerate((human, untouched, gone))])
    assert results[0].conflict and not results[0].ok
    assert results[1].ok and not results[1].conflict
    assert not results[2].ok and not results[2].conflict
    truth = {r["Id"]: r for r in org.sim.truth("Opportunity")}
    assert truth[human]["NextStep"] == "Human says wait" and truth[untouched]["NextStep"] == "Bot says go"
    assert org.total() == 2  # one LastModifiedDate read + one composite update for the batch


def test_session_id_login_and_no_relogin_without_credentials(org: Org) -> None:
    token = org.sim.issue_session()
    settings = ConnectionSettings(name="sf", kind="salesforce", ca_bundle=org.ca.ca_path,
                                  credentials={"session_id": token,  # type: ignore[dict-item]
                                               "instance_url": org.server.url},
                                  options={"track_deletes": False})
    sf = SalesforceConnector(settings)
    org.opened.append(sf)
    assert sum(len(p.records) for p in sf.pull("owners", None)) == len(org.sim.truth("User"))
    org.sim.expire_sessions()
    with pytest.raises(AuthError) as info:
        list(sf.pull("owners", None))
    assert str(info.value) == "GET /services/data/v59.0/query/: 401 INVALID_SESSION_ID" and token not in str(info.value)


def test_stops_at_the_connections_share_of_the_daily_quota(org: Org) -> None:
    org.sim.knobs.daily_limit = 1000
    settings = org.settings(page_size=200)
    settings.budget.daily_share, settings.budget.reserve_for_push = 0.5, 100
    sf = SalesforceConnector(settings)
    org.opened.append(sf)
    org.sim.limiter.daily_used = 396  # the login is free; the pages see 397..400 of 1000, then it stops
    store: dict[str, Any] = {}
    pages = sf.pull("deals", None)
    with pytest.raises(BudgetExhausted) as info:
        for page in pages:
            apply(store, [page])
    assert len(store) == 800 and "read budget is 400" in str(info.value)
    assert sf.push([PushItem("deals", "update", {"NextStep": "x"}, source_id=next(iter(store)))])[0].ok
