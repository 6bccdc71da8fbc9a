"""Recorded HTTP of the HubSpot connector, replayed offline (vcrpy, record_mode "none").

Recorded from the simulator (``CRMSYNC_RECORD_CASSETTES=1`` re-records) with the Authorization
header filtered. Replay pins the connector's request shapes: every request must match a recorded
one on method, path, query and JSON body - ignoring only the clock-dependent upper bound of the
incremental search (``hs_lastmodifieddate LTE now``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import vcr
import yaml
from pydantic import SecretStr

from crmsync.connectors.base import PushItem
from crmsync.connectors.hubspot import HubSpotConnector
from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.hubspot import SANDBOX_TOKEN, HubSpotSimulator
from crmsync.settings import ConnectionSettings

CASSETTE = Path(__file__).parents[1] / "cassettes" / "hubspot" / "connector_cycle.yaml"
RECORD = os.environ.get("CRMSYNC_RECORD_CASSETTES") == "1"
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
MODIFIED = {"hs_lastmodifieddate", "lastmodifieddate"}


def _body(raw: Any) -> Any:
    if not raw:
        return None
    data = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    if isinstance(data, dict):
        for group in data.get("filterGroups") or []:
            for flt in group.get("filters") or []:
                if flt.get("propertyName") in MODIFIED and flt.get("operator") == "LTE":
                    flt["value"] = "<now>"
    return data


def json_body(r1: Any, r2: Any) -> None:
    assert _body(r1.body) == _body(r2.body)


def query_list(r1: Any, r2: Any) -> None:
    assert parse_qsl(urlsplit(r1.uri).query) == parse_qsl(urlsplit(r2.uri).query)


def recorder(mode: str) -> vcr.VCR:
    v = vcr.VCR(record_mode=mode, match_on=["method", "path", "query_list", "json_body"],
                filter_headers=["authorization"], decode_compressed_response=True)
    v.register_matcher("query_list", query_list)
    v.register_matcher("json_body", json_body)
    return v


def scenario(base_url: str, edit: Any = None) -> dict[str, Any]:
    """Owners, stages, a deals pass (search + associations + archived), then three kinds of push."""
    conn = ConnectionSettings(name="hs", kind="hubspot", base_url=base_url,
                              credentials={"access_token": SecretStr(SANDBOX_TOKEN)},
                              # prefetch off: one request at a time, so the recording is complete and
                              # ordered (vcrpy does not record concurrent requests reliably)
                              options={"max_attempts": 1, "search_per_second": 1000, "limits_raised": True, "lookback_seconds": 0,
                                       "prefetch": False})
    connector = HubSpotConnector(conn)
    owners = [r for p in connector.pull("owners", None) for r in p.records]
    stages = [r for p in connector.pull("stages", None) for r in p.records]
    pages = list(connector.pull("deals", None))
    deals = {r.source_id: r for p in pages for r in p.records}
    if edit is not None:
        edit()
    pushed = connector.push([
        PushItem("deals", "update", {"stage_id": "proposal", "extra.meddic_champion": "CFO"}, source_id="3",
                 based_on_modified_at=deals["3"].modified_at, ref=1),
        PushItem("deals", "update", {"name": "late"}, source_id="4", based_on_modified_at=deals["4"].modified_at,
                 ref=2),
        PushItem("tasks", "create", {"subject": "Handoff", "done": False, "deal_id": "3",
                                     "due_date": dt.date(2026, 3, 9)}, idempotency_key="handoff-3", ref=3),
    ])
    connector.close()
    return {"owners": len(owners), "stages": len(stages), "deals": len(deals), "cursor": pages[-1].cursor,
            "pushed": [(r.ok, r.conflict, r.created, r.source_id) for r in pushed]}


@pytest.mark.skipif(not RECORD, reason="set CRMSYNC_RECORD_CASSETTES=1 to re-record from the simulator")
def test_record_from_the_simulator() -> None:
    sim = HubSpotSimulator(generate_world(seed=21, deals=30, now=NOW), Knobs(search_per_second=1000))
    CASSETTE.parent.mkdir(parents=True, exist_ok=True)
    if CASSETTE.exists():
        CASSETTE.unlink()
    with SandboxServer(sim.build_app(), name="hs-record") as srv, \
            recorder("all").use_cassette(str(CASSETTE), allow_playback_repeats=False):
        scenario(srv.url, lambda: sim.edit("deals", "4", {"dealname": "changed in the UI"}))


@pytest.mark.skipif(RECORD, reason="recording")
def test_replay_pins_request_shapes() -> None:
    with recorder("none").use_cassette(str(CASSETTE), allow_playback_repeats=False) as cassette:
        result = scenario("http://127.0.0.1:9")  # nothing listens there: every answer comes from the cassette
        assert cassette.all_played
    assert result["stages"] == 7 and result["deals"] == 30 and result["owners"] >= 12
    assert result["pushed"][0][:3] == (True, False, False)
    assert result["pushed"][1][:2] == (False, True)  # changed after our read: conflict, not written
    assert result["pushed"][2][0] and result["pushed"][2][2]  # created (upsert said new)
    assert result["cursor"]["ts"] is not None and result["cursor"]["assoc_refreshed_ms"]


def test_cassette_holds_no_token_and_the_expected_shapes() -> None:
    text = CASSETTE.read_text(encoding="utf-8")
    assert SANDBOX_TOKEN not in text
    data = yaml.safe_load(text)
    requests = [i["request"] for i in data["interactions"]]
    assert all("authorization" not in {k.lower() for k in r["headers"]} for r in requests)
    calls = [(r["method"], urlsplit(r["uri"]).path) for r in requests]
    searches = [json.loads(r["body"]) for r in requests if urlsplit(r["uri"]).path.endswith("/deals/search")]
    assert searches[0]["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert searches[0]["limit"] == 200 and searches[0]["after"] == "0"
    assert "meddic_metrics" in searches[0]["properties"]
    assert ("POST", "/crm/v4/associations/deals/companies/batch/read") in calls
    assert ("GET", "/crm/v3/owners/") in calls
    archived = [dict(parse_qsl(urlsplit(r["uri"]).query)) for r in requests
                if urlsplit(r["uri"]).path == "/crm/v3/objects/deals"]
    assert archived and archived[0]["archived"] == "true"  # as the spec spells booleans (not Python's "True")
    update = next(json.loads(r["body"]) for r in requests if r["uri"].endswith("/deals/batch/update"))
    assert [i["id"] for i in update["inputs"]] == ["3"]  # the conflicting deal 4 was never sent
    assert update["inputs"][0]["properties"] == {"dealstage": "proposal", "meddic_champion": "CFO"}
    upsert = next(json.loads(r["body"]) for r in requests if r["uri"].endswith("/tasks/batch/upsert"))
    assert upsert["inputs"][0]["idProperty"] == "crmsync_key" and upsert["inputs"][0]["id"] == "handoff-3"
    assert upsert["inputs"][0]["properties"] == {"hs_task_subject": "Handoff", "hs_task_status": "NOT_STARTED",
                                                 "hs_timestamp": "2026-03-09", "crmsync_key": "handoff-3"}
    link = next(json.loads(r["body"]) for r in requests if r["uri"].endswith("/associations/tasks/deals/batch/create"))
    assert link["inputs"][0]["to"] == {"id": "3"} and link["inputs"][0]["types"][0]["associationTypeId"] == 216
