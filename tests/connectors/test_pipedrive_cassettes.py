"""Recorded HTTP of the Pipedrive connector, replayed offline (vcrpy, record_mode "none").

The cassette was recorded from the simulator (``CRMSYNC_RECORD_CASSETTES=1`` re-records it) with
the api token filtered from headers and query. Replay pins the connector's request shapes: a
change in paths, parameters or call order fails here, because every request must match one
recorded request (ignoring only the value of the clock-dependent ``updated_since`` in the
idempotency look-up).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import vcr
import yaml

from crmsync.connectors.base import PushItem
from crmsync.connectors.pipedrive import PipedriveConnector
from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.pipedrive import DEFAULT_TOKEN, PipedriveSimulator
from crmsync.settings import ConnectionSettings

CASSETTE = Path(__file__).parents[1] / "cassettes" / "pipedrive" / "connector_cycle.yaml"
RECORD = os.environ.get("CRMSYNC_RECORD_CASSETTES") == "1"
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
VOLATILE = {"updated_since"}  # clock-dependent only in the idempotency look-up


def _query(uri: str) -> list[tuple[str, str]]:
    return [(k, "<t>" if k in VOLATILE else v) for k, v in parse_qsl(urlsplit(uri).query, keep_blank_values=True)]


def query_shape(r1: Any, r2: Any) -> None:
    assert _query(r1.uri) == _query(r2.uri)


def recorder(mode: str) -> vcr.VCR:
    v = vcr.VCR(record_mode=mode, match_on=["method", "path", "query_shape", "body"],
                filter_headers=["x-api-token", "authorization"], filter_query_parameters=["api_token"],
                decode_compressed_response=True)
    v.register_matcher("query_shape", query_shape)
    return v


def scenario(base_url: str, edit: Any = None) -> dict[str, Any]:
    """The connector cycle the cassette holds: reads, a conflict-checked update, an idempotent create."""
    conn = ConnectionSettings(name="pd", kind="pipedrive", base_url=base_url, credentials={"api_token": DEFAULT_TOKEN},
                              options={"max_attempts": 1})
    connector = PipedriveConnector(conn)
    owners = [r for p in connector.pull("owners", None) for r in p.records]
    stages = [r for p in connector.pull("stages", None) for r in p.records]
    pages = list(connector.pull("deals", None))
    deals = {r.source_id: r for p in pages for r in p.records}
    if edit is not None:
        edit()
    pushed = connector.push([
        PushItem("deals", "update", {"stage_id": "4", "champion": "CFO"}, source_id="3",
                 based_on_modified_at=deals["3"].modified_at, ref=1),
        PushItem("deals", "update", {"name": "late"}, source_id="4", based_on_modified_at=deals["4"].modified_at, ref=2),
        PushItem("tasks", "create", {"subject": "Handoff", "deal_id": "3"}, idempotency_key="handoff-3", ref=3),
    ])
    connector.close()
    return {"owners": len(owners), "stages": len(stages), "deals": len(deals), "cursor": pages[-1].cursor,
            "pushed": [(r.ok, r.conflict, r.created, r.source_id) for r in pushed]}


@pytest.mark.skipif(not RECORD, reason="set CRMSYNC_RECORD_CASSETTES=1 to re-record from the simulator")
def test_record_from_the_simulator() -> None:
    world = generate_world(seed=21, deals=30, now=NOW)
    sim = PipedriveSimulator(world, Knobs(burst_window_s=2.0, daily_limit=100_000))
    CASSETTE.parent.mkdir(parents=True, exist_ok=True)
    if CASSETTE.exists():
        CASSETTE.unlink()
    with SandboxServer(sim.build_app(), name="pd-record") as srv, recorder("all").use_cassette(str(CASSETTE), allow_playback_repeats=False):
        def edit() -> None:
            sim.advance(3)
            sim.edit("deals", "4", {"title": "changed in the UI"})
        scenario(srv.url, edit)


@pytest.mark.skipif(RECORD, reason="recording")
def test_replay_pins_request_shapes() -> None:
    with recorder("none").use_cassette(str(CASSETTE), allow_playback_repeats=False) as cassette:
        result = scenario("http://127.0.0.1:9")  # nothing listens there: every answer comes from the cassette
        assert cassette.all_played
    assert result["owners"] == 12 and result["stages"] == 7 and result["deals"] == 30
    assert result["pushed"][0][:3] == (True, False, False)
    assert result["pushed"][1][:2] == (False, True)  # changed after our read: conflict, not written
    assert result["pushed"][2][0] and result["pushed"][2][2]  # created once
    assert result["cursor"]["live"]["watermark"] is not None


def test_cassette_holds_no_token_and_the_expected_shapes() -> None:
    text = CASSETTE.read_text(encoding="utf-8")
    assert DEFAULT_TOKEN not in text
    data = yaml.safe_load(text)
    requests = [i["request"] for i in data["interactions"]]
    assert all("x-api-token" not in {k.lower() for k in r["headers"]} for r in requests)
    uris = [r["uri"] for r in requests]
    deal_pulls = [dict(parse_qsl(urlsplit(u).query)) for u in uris if urlsplit(u).path == "/api/v2/deals"]
    assert {"sort_by": "update_time", "sort_direction": "asc", "limit": "500"}.items() <= deal_pulls[0].items()
    assert any(q.get("status") == "deleted" for q in deal_pulls)  # the soft-delete pass
    assert any(q.get("ids") == "3,4" for q in deal_pulls)  # one batched fresh read before writing
    methods = [(r["method"], urlsplit(r["uri"]).path) for r in requests]
    assert ("PATCH", "/api/v2/deals/3") in methods and ("PATCH", "/api/v2/deals/4") not in methods
    assert ("GET", "/v1/users") in methods and ("POST", "/api/v2/activities") in methods
