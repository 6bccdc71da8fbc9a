"""The simulators' schema for what crmsync's example rules write: score/grade custom fields on
deals (and Salesforce leads, with the lifecycle stage), Salesforce's classic ``Note`` and
Pipedrive's v1 notes, each validated the way the real CRM validates it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.hubspot.schema import PropertyError, normalise
from crmsync.sandbox.pipedrive import DEFAULT_TOKEN, PipedriveSimulator
from crmsync.sandbox.pipedrive.fields import DEAL_KEY_BY_NAME
from crmsync.sandbox.salesforce import SalesforceSimulator
from crmsync.sandbox.world import World

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=3, deals=40, now=NOW)


def test_salesforce_score_grade_and_lifecycle_fields(world: World) -> None:
    sim = SalesforceSimulator(world)
    deal = sim.truth("Opportunity")[0]["Id"]
    sim.edit("Opportunity", deal, {"Crmsync_Score__c": 57, "Crmsync_Grade__c": "B"})
    row = next(r for r in sim.truth("Opportunity") if r["Id"] == deal)
    assert row["Crmsync_Score__c"] == 57 and row["Crmsync_Grade__c"] == "B"
    with pytest.raises(ValueError, match="INVALID_TYPE_ON_FIELD_IN_RECORD"):
        sim.edit("Opportunity", deal, {"Crmsync_Score__c": "high"})
    lead = sim.truth("Lead")[0]["Id"]
    sim.edit("Lead", lead, {"Lifecycle_Stage__c": "mql"})
    assert next(r for r in sim.truth("Lead") if r["Id"] == lead)["Lifecycle_Stage__c"] == "mql"


def test_salesforce_note_is_validated_like_the_classic_note(world: World) -> None:
    sim = SalesforceSimulator(world)
    deal = sim.truth("Opportunity")[0]["Id"]
    note = sim.create("Note", {"ParentId": deal, "Title": "Handoff [crmsync:k]", "Body": "x" * 1000})
    assert note.startswith("002") and sim.truth("Note")[0]["ParentId"] == deal
    with pytest.raises(ValueError, match="REQUIRED_FIELD_MISSING"):
        sim.create("Note", {"Title": "no parent"})
    with pytest.raises(ValueError, match="STRING_TOO_LONG"):
        sim.create("Note", {"ParentId": deal, "Title": "t" * 81})
    with pytest.raises(ValueError, match="INVALID_FIELD"):  # notes take no custom fields
        sim.create("Note", {"ParentId": deal, "Title": "t", "Crmsync_Key__c": "k"})


def test_hubspot_score_properties() -> None:
    assert normalise("deals", "crmsync_score", "57") == "57"
    assert normalise("deals", "crmsync_grade", "B") == "B"
    with pytest.raises(PropertyError):
        normalise("deals", "crmsync_score", "high")
    with pytest.raises(PropertyError):  # still only on deals
        normalise("companies", "crmsync_score", "1")


@pytest.fixture
def pd_client(world: World) -> Iterator[tuple[PipedriveSimulator, httpx.Client]]:
    sim = PipedriveSimulator(world, Knobs(burst_window_s=2.0))
    with SandboxServer(sim.build_app(), name="pd-notes") as server, \
            httpx.Client(base_url=server.url, headers={"x-api-token": DEFAULT_TOKEN}) as client:
        yield sim, client


def test_pipedrive_score_fields_are_custom_fields(pd_client: tuple[PipedriveSimulator, httpx.Client]) -> None:
    _, client = pd_client
    fields = {f["name"]: f for f in client.get("/v1/dealFields").json()["data"]}
    assert fields["crmsync_score"]["field_type"] == "double" and fields["crmsync_score"]["edit_flag"]
    assert fields["crmsync_score"]["key"] == DEAL_KEY_BY_NAME["crmsync_score"] and len(fields["crmsync_grade"]["key"]) == 40
    patched = client.patch("/api/v2/deals/3", json={"custom_fields": {DEAL_KEY_BY_NAME["crmsync_score"]: 57}})
    assert patched.json()["data"]["custom_fields"][DEAL_KEY_BY_NAME["crmsync_score"]] == 57


def test_pipedrive_v1_notes(pd_client: tuple[PipedriveSimulator, httpx.Client]) -> None:
    sim, client = pd_client
    assert client.post("/v1/notes", json={"deal_id": 2}).status_code == 400  # content is required
    assert client.post("/v1/notes", json={"content": "floating"}).status_code == 400  # needs something to attach to
    assert client.post("/v1/notes", json={"content": "x", "deal_id": 99999}).status_code == 400
    assert client.post("/v1/notes", json={"content": "x", "deal_id": 2, "colour": "red"}).status_code == 400
    ids = [client.post("/v1/notes", json={"content": f"note {n}", "deal_id": 2 if n < 3 else 5}).json()["data"]["id"]
           for n in range(4)]
    first = client.get("/v1/notes", params={"deal_id": 2, "limit": 2}).json()
    assert [n["id"] for n in first["data"]] == ids[:2]
    assert first["additional_data"]["pagination"] == {"start": 0, "limit": 2, "more_items_in_collection": True,
                                                      "next_start": 2}
    rest = client.get("/v1/notes", params={"deal_id": 2, "start": 2, "limit": 2}).json()
    assert [n["id"] for n in rest["data"]] == [ids[2]] and not rest["additional_data"]["pagination"]["more_items_in_collection"]
    one = client.get(f"/v1/notes/{ids[0]}").json()["data"]
    assert one["deal"]["title"] and len(one["add_time"]) == 19 and one["add_time"][10] == " "  # v1 time format
    assert client.put(f"/v1/notes/{ids[0]}", json={"content": "edited"}).json()["data"]["content"] == "edited"
    assert client.delete(f"/v1/notes/{ids[1]}").json() == {"success": True, "data": True}
    assert client.get(f"/v1/notes/{ids[1]}").status_code == 404
    assert sorted(n["id"] for n in sim.truth("notes")) == [ids[0], ids[2], ids[3]]
