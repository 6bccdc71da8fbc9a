"""The HubSpot simulator driven by hubspot-api-client, unmodified, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import hubspot
import pytest
from hubspot.crm.associations.v4 import AssociationSpec
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.deals.exceptions import ApiException, NotFoundException, UnauthorizedException

from crmsync.sandbox.core import Knobs, SandboxServer
from crmsync.sandbox.hubspot import SANDBOX_TOKEN, HubSpotSimulator
from crmsync.sandbox.world import generate_world
from waiting import wait_until


@pytest.fixture(scope="module")
def sim() -> HubSpotSimulator:
    return HubSpotSimulator(generate_world(11, 300), Knobs(search_per_second=1000))


@pytest.fixture(scope="module")
def server(sim: HubSpotSimulator) -> Iterator[SandboxServer]:
    with SandboxServer(sim.build_app(), name="hubspot") as srv:
        yield srv


@pytest.fixture()
def client(server: SandboxServer) -> hubspot.Client:
    return hubspot.Client.create(access_token=SANDBOX_TOKEN, host=server.url)


def test_basic_list_get_create_update_archive(client: hubspot.Client, sim: HubSpotSimulator) -> None:
    page = client.crm.deals.basic_api.get_page(limit=7, properties=["dealname", "meddic_metrics"],
                                                associations=["companies"])
    assert len(page.results) == 7 and page.paging.next.after
    first = page.results[0]
    assert set(first.properties) >= {"dealname", "meddic_metrics", "hs_object_id", "hs_lastmodifieddate"}
    assert first.associations["companies"].results[0].type == "deal_to_company"
    nxt = client.crm.deals.basic_api.get_page(limit=7, after=page.paging.next.after)
    assert {d.id for d in nxt.results}.isdisjoint({d.id for d in page.results})

    deal = client.crm.deals.basic_api.get_by_id("3", properties=["amount", "contract_end"])
    assert deal.properties["hs_object_id"] == "3"
    created = client.crm.deals.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"dealname": "SDK deal", "dealstage": "demo", "amount": "1200.50", "closedate": "2030-01-31"}))
    assert created.properties["closedate"] == "2030-01-31T00:00:00.000Z"
    before = created.properties["hs_lastmodifieddate"]
    updated = client.crm.deals.basic_api.update(created.id, SimplePublicObjectInput(properties={"amount": "99"}))
    assert updated.properties["amount"] == "99"
    assert updated.properties["hs_lastmodifieddate"] >= before
    client.crm.deals.basic_api.archive(created.id)
    with pytest.raises(NotFoundException):
        client.crm.deals.basic_api.get_by_id(created.id)
    archived = client.crm.deals.basic_api.get_page(archived=True, limit=100)
    found = [d for d in archived.results if d.id == created.id]
    assert found and found[0].archived and found[0].archived_at is not None
    assert created.id not in {str(t["id"]) for t in sim.truth("deals")}


def test_validation_errors(client: hubspot.Client) -> None:
    with pytest.raises(ApiException) as bad:
        client.crm.deals.basic_api.create(SimplePublicObjectInputForCreate(
            properties={"dealname": "x", "dealstage": "demo", "amount": "lots"}))
    assert bad.value.status == 400 and "VALIDATION_ERROR" in str(bad.value.body)
    with pytest.raises(ApiException) as unknown:
        client.crm.deals.basic_api.update("1", SimplePublicObjectInput(properties={"no_such_prop": "1"}))
    assert "PROPERTY_DOESNT_EXIST" in str(unknown.value.body)


def test_batch_read_create_update_upsert_with_207(client: hubspot.Client) -> None:
    batch = client.crm.deals.batch_api
    read = batch.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": "1"}, {"id": "2"}, {"id": "987654"}], properties=["amount"], properties_with_history=[]))
    assert {r.id for r in read.results} == {"1", "2"}
    assert read.errors and read.errors[0].category == "OBJECT_NOT_FOUND"
    assert read.errors[0].context["ids"] == ["987654"]

    created = batch.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        {"properties": {"dealname": f"batch {n}", "dealstage": "proposal"}, "associations": []} for n in range(3)]))
    assert len(created.results) == 3
    ids = [r.id for r in created.results]

    partial = batch.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": ids[0], "properties": {"amount": "10"}},
        {"id": ids[1], "properties": {"dealstage": "not-a-stage"}},
        {"id": "876543", "properties": {"amount": "1"}},
    ]))
    assert [r.id for r in partial.results] == [ids[0]]
    categories = sorted(e.category for e in partial.errors)
    assert categories == ["OBJECT_NOT_FOUND", "VALIDATION_ERROR"]

    upsert = batch.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"id": "key-1", "idProperty": "crmsync_key", "properties": {"dealname": "up", "dealstage": "demo"}}]))
    again = batch.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"id": "key-1", "idProperty": "crmsync_key", "properties": {"amount": "5"}}]))
    assert upsert.results[0].new is True and again.results[0].new is False
    assert upsert.results[0].id == again.results[0].id

    with pytest.raises(ApiException) as too_many:
        batch.read(BatchReadInputSimplePublicObjectId(inputs=[{"id": str(i)} for i in range(101)],
                                                      properties=[], properties_with_history=[]))
    assert too_many.value.status == 400


def test_search_filters_sorts_paging(client: hubspot.Client, sim: HubSpotSimulator) -> None:
    truth = {t["id"]: t["properties"] for t in sim.truth("deals")}
    big = {i for i, p in truth.items() if p["amount"] and float(p["amount"]) > 20000 and p["dealstage"] != "closedlost"}
    seen: list[str] = []
    after = None
    total = None
    while True:
        page = client.crm.deals.search_api.do_search(PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "amount", "operator": "GT", "value": "20000"},
                                        {"propertyName": "dealstage", "operator": "NEQ", "value": "closedlost"}]}],
            sorts=[{"propertyName": "amount", "direction": "DESCENDING"}], limit=25, after=after,
            properties=["amount"]))
        total = page.total
        seen += [r.id for r in page.results]
        amounts = [float(r.properties["amount"]) for r in page.results]
        assert amounts == sorted(amounts, reverse=True)
        if not page.paging:
            break
        after = page.paging.next.after
    assert total == len(big) and set(seen) == big

    operators = {
        "IN": ({"propertyName": "dealstage", "operator": "IN", "values": ["demo", "proposal"]},
               lambda p: p["dealstage"] in ("demo", "proposal")),
        "NOT_HAS_PROPERTY": ({"propertyName": "contract_end", "operator": "NOT_HAS_PROPERTY"},
                             lambda p: not p["contract_end"]),
        "CONTAINS_TOKEN": ({"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "renewal"},
                           lambda p: "renewal" in p["dealname"].lower().split()),
        "BETWEEN": ({"propertyName": "closedate", "operator": "BETWEEN", "value": "0", "highValue": "4102444800000"},
                    lambda p: bool(p["closedate"])),
    }
    for flt, expected in operators.values():
        result = client.crm.deals.search_api.do_search(PublicObjectSearchRequest(
            filter_groups=[{"filters": [flt]}], limit=1, properties=["dealname"]))
        assert result.total == sum(1 for p in truth.values() if expected(p)), flt


def test_search_limits(client: hubspot.Client) -> None:
    search = client.crm.deals.search_api
    with pytest.raises(ApiException) as past:
        search.do_search(PublicObjectSearchRequest(limit=200, after="9900"))
    assert past.value.status == 400 and "10000" in str(past.value.body)
    with pytest.raises(ApiException):
        search.do_search(PublicObjectSearchRequest(limit=201))
    groups = [{"filters": [{"propertyName": "amount", "operator": "GT", "value": str(i)}]} for i in range(6)]
    with pytest.raises(ApiException):
        search.do_search(PublicObjectSearchRequest(filter_groups=groups, limit=1))


def test_search_cap_at_10000_results(server: SandboxServer) -> None:
    """A cheap world would never reach 10k; the cap is on the requested window, so page to it."""
    sim = HubSpotSimulator(generate_world(3, 50), Knobs(search_per_second=1000))
    sim.bulk_import("deals", [{"dealname": f"imp {n}", "dealstage": "demo"} for n in range(10_100)])
    with SandboxServer(sim.build_app(), name="hubspot-10k") as srv:
        client = hubspot.Client.create(access_token=SANDBOX_TOKEN, host=srv.url)
        body = {"filterGroups": [], "limit": 200, "after": "9800", "properties": ["dealname"],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]}
        last = client.crm.deals.search_api.do_search(body)
        assert last.total == 10_150 and len(last.results) == 200
        with pytest.raises(ApiException) as capped:
            client.crm.deals.search_api.do_search({**body, "after": "10000"})
        assert capped.value.status == 400


def test_pipelines_owners_associations(client: hubspot.Client, sim: HubSpotSimulator) -> None:
    pipelines = client.crm.pipelines.pipelines_api.get_all("deals").results
    stages = client.crm.pipelines.pipeline_stages_api.get_all("deals", pipelines[0].id).results
    won = next(s for s in stages if s.id == "closedwon")
    assert won.metadata == {"isClosed": "true", "probability": "1.0"}

    owners = []
    after = None
    while True:
        page = client.crm.owners.owners_api.get_page(limit=5, after=after)
        owners += page.results
        if not page.paging:
            break
        after = page.paging.next.after
    assert {o.type for o in owners} == {"PERSON", "QUEUE"}
    assert all(o.teams for o in owners if o.type == "PERSON")
    inactive = client.crm.owners.owners_api.get_page(archived=True).results
    assert len(owners) + len(inactive) == len(sim.truth("owners", include_deleted=True))

    deal = sim.truth("deals")[0]
    assoc = client.crm.associations.v4.basic_api
    companies = assoc.get_page("deals", deal["id"], "companies").results
    assert [c.to_object_id for c in companies] == deal["associations"]["companies"]
    before = sim.truth("deals")[0]["properties"]["hs_lastmodifieddate"]
    contact = sim.truth("contacts")[-1]["id"]
    assoc.create("deals", deal["id"], "contacts", contact,
                 [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=3)])
    assoc.create_default("deals", deal["id"], "line_items", sim.truth("line_items")[-1]["id"])
    after_write = sim.truth("deals")[0]
    assert contact in after_write["associations"]["contacts"]
    assert after_write["properties"]["hs_lastmodifieddate"] == before  # association changes bump nothing
    batch = client.crm.associations.v4.batch_api.get_page(
        "deals", "contacts", {"inputs": [{"id": deal["id"]}, {"id": "999999"}]})
    assert contact in [t.to_object_id for t in batch.results[0].to]
    assert batch.errors


def test_rate_limit_headers_and_429_body(server: SandboxServer, sim: HubSpotSimulator) -> None:
    headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        ok = http.get("/crm/v3/objects/deals", params={"limit": 1})
        for name in ("Daily", "Daily-Remaining", "Interval-Milliseconds", "Max", "Remaining", "Secondly",
                     "Secondly-Remaining"):
            assert ok.headers[f"X-HubSpot-RateLimit-{name}"].isdigit()
        sim.knobs.update({"burst_limit": 3, "burst_window_s": 10.0})
        sim.limiter.reset()
        try:
            answers = [http.get("/crm/v3/objects/deals", params={"limit": 1}) for _ in range(4)]
        finally:
            sim.knobs.update({"burst_limit": None})
        limited = answers[-1]
        assert limited.status_code == 429 and limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        body = limited.json()
        assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert {"status", "message", "correlationId", "requestId"} <= set(body)
        sim.knobs.update({"search_per_second": 2})
        try:
            searches = [http.post("/crm/v3/objects/deals/search", json={"limit": 1}) for _ in range(3)]
        finally:
            sim.knobs.update({"search_per_second": 1000})
        assert searches[-1].status_code == 429 and searches[-1].json()["policyName"] == "SECONDLY"


def test_auth_errors(server: SandboxServer) -> None:
    bad = hubspot.Client.create(access_token="pat-na1-wrong", host=server.url)
    with pytest.raises(UnauthorizedException) as exc:
        bad.crm.deals.basic_api.get_page()
    assert '"category":"INVALID_AUTHENTICATION"' in str(exc.value.body)
    assert "pat-na1-wrong" not in str(exc.value.body)


def test_object_type_ids_and_merge(server: SandboxServer, sim: HubSpotSimulator) -> None:
    headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        by_name = http.get("/crm/v3/objects/deals/4").json()
        by_type = http.get("/crm/v3/objects/0-3/4").json()
        assert by_name["id"] == by_type["id"] == "4"
        assert http.get("/crm/v3/objects/0-8", params={"limit": 2}).json()["results"]
        merged = http.post("/crm/v3/objects/deals/merge", json={"primaryObjectId": "8", "objectIdToMerge": "9"})
        assert merged.status_code == 200
        assert merged.json()["id"] == "8"
        assert http.get("/crm/v3/objects/deals/9").json()["id"] == "8"  # the merged id answers with the winner
        assert "9" not in {t["id"] for t in sim.truth("deals", include_deleted=True)}


def test_search_lag_shows_the_previous_version() -> None:

    sim = HubSpotSimulator(generate_world(4, 40), Knobs(search_per_second=1000, search_lag_s=0.4))
    with SandboxServer(sim.build_app(), name="hubspot-lag") as srv:
        client = hubspot.Client.create(access_token=SANDBOX_TOKEN, host=srv.url)

        def find(deal_id: str) -> list[str]:
            page = client.crm.deals.search_api.do_search(PublicObjectSearchRequest(
                filter_groups=[{"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": deal_id}]}],
                properties=["dealname"], limit=10))
            return [r.properties["dealname"] for r in page.results]

        old = find("2")
        sim.edit("deals", "2", {"dealname": "fresh name"})
        sim.delete("deals", "3")
        new_id = sim.create("deals", {"dealname": "brand new", "dealstage": "demo"})
        sim.delete("deals", "4", hard=True)
        assert find("2") == old and find("3") and find(new_id) == []  # search still shows the old world
        assert find("4") == []  # a hard delete leaves the index at once
        assert client.crm.deals.basic_api.get_by_id("2").properties["dealname"] == "fresh name"  # reads do not lag
        wait_until(lambda: find("2") == ["fresh name"], 10, "the search index to catch up", interval=0.05)
        assert find("3") == [] and find(new_id) == ["brand new"]
