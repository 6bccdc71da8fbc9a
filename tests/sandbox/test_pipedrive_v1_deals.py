"""``GET /v1/deals`` of the Pipedrive simulator over real HTTP: offset paging, statuses, filters, refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.pipedrive import DEFAULT_TOKEN, PipedriveSimulator

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return generate_world(seed=11, deals=400, now=NOW)


@pytest.fixture
def sim(world) -> PipedriveSimulator:  # type: ignore[no-untyped-def]
    return PipedriveSimulator(world, Knobs(burst_window_s=2.0))


@pytest.fixture
def client(sim: PipedriveSimulator) -> Iterator[httpx.Client]:
    with SandboxServer(sim.build_app(), name="pipedrive-v1-deals") as srv, \
            httpx.Client(base_url=srv.url, params={"api_token": DEFAULT_TOKEN}) as c:
        yield c


def pages(client: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every deal by ``start``/``next_start`` paging, and the number of pages."""
    out: list[dict[str, Any]] = []
    start, count = 0, 0
    while True:
        body = client.get("/v1/deals", params={**params, "start": start}).json()
        assert body["success"] is True, body
        count += 1
        out += body["data"]
        pagination = body["additional_data"]["pagination"]
        assert pagination["start"] == start
        if not pagination["more_items_in_collection"]:
            assert "next_start" not in pagination
            return out, count
        assert pagination["next_start"] == start + pagination["limit"]
        start = pagination["next_start"]


def test_pages_cover_every_live_deal_once_by_id_in_v1_shape(client: httpx.Client, sim: PipedriveSimulator) -> None:
    client.delete("/api/v2/deals/5").raise_for_status()
    live = [i for i in sim.deals.all_ids() if i not in sim.deals.deleted
            and not (sim.deal(i) or {}).get("is_archived")]
    deals, count = pages(client, limit=70)
    assert [d["id"] for d in deals] == live and 5 not in live
    assert count == -(-len(live) // 70)
    first = deals[0]
    row = sim.deal(first["id"])
    assert row is not None
    assert first["user_id"] == row["owner_id"] and first["deleted"] is False and "custom_fields" not in first
    assert len(first["update_time"]) == 19 and first["update_time"][10] == " "  # YYYY-MM-DD HH:MM:SS
    default = client.get("/v1/deals").json()
    assert len(default["data"]) == 100 and default["additional_data"]["pagination"]["limit"] == 100


def test_statuses_filters_and_a_start_never_served_before(client: httpx.Client, sim: PipedriveSimulator) -> None:
    client.delete("/api/v2/deals/9").raise_for_status()
    every, _ = pages(client, status="open,won,lost,deleted", limit=500)  # Singer's tap-pipedrive sends this
    assert 9 in {d["id"] for d in every} and next(d for d in every if d["id"] == 9)["status"] == "deleted"
    deleted, _ = pages(client, status="deleted")
    assert [d["id"] for d in deleted] == sorted(sim.deals.deleted)
    won, _ = pages(client, status="won", limit=50)
    assert won and {d["status"] for d in won} == {"won"}
    stage = every[0]["stage_id"]
    in_stage, _ = pages(client, stage_id=stage, status="all_not_deleted")
    assert in_stage and {d["stage_id"] for d in in_stage} == {stage}
    # a start no earlier page ended at walks there: the same rows as paging to it
    walked = client.get("/v1/deals", params={"start": 37, "limit": 20}).json()["data"]
    live, _ = pages(client, limit=100)
    assert [d["id"] for d in walked] == [d["id"] for d in live[37:57]]


@pytest.mark.parametrize(("params", "fragment"), [
    ({"limit": 501}, "limit between 1 and 500"),
    ({"start": -1}, "start must be >= 0"),
    ({"status": "gone"}, "status must be one of"),
    ({"sort": "update_time DESC"}, "does not serve sort"),
    ({"limit": "many"}, "limit must be an integer"),
])
def test_bad_input_is_refused(client: httpx.Client, params: dict[str, Any], fragment: str) -> None:
    response = client.get("/v1/deals", params=params)
    assert response.status_code == 400 and fragment in response.text
