"""SalesloftConnector against the SalesLoft simulator over real HTTP (cursor poller on updated_at)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crmsync.connectors.base import AuthError, PushItem
from crmsync.connectors.engagement import EngagementPage
from crmsync.connectors.salesloft import SalesloftConnector
from crmsync.connectors.salesloft.connector import SalesloftHttp
from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.salesloft import SalesloftSimulator
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
SETTLED = 4


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return generate_world(seed=13, deals=120, now=NOW)


@pytest.fixture
def sim(world) -> SalesloftSimulator:  # type: ignore[no-untyped-def]
    s = SalesloftSimulator(world, Knobs(seed=5), people=45)
    s.clock.advance(SETTLED)
    return s


@pytest.fixture
def server(sim: SalesloftSimulator) -> Iterator[SandboxServer]:
    with SandboxServer(sim.build_app(), name="salesloft-connector") as srv:
        yield srv


def make(server: SandboxServer, sim: SalesloftSimulator, token: str | None = None, **options: Any) -> SalesloftConnector:
    conn = ConnectionSettings(name="sl", kind="salesloft", base_url=server.url,
                              credentials={"access_token": token or sim.token}, options=options)
    http = SalesloftHttp(server.url, token or sim.token, max_attempts=8, max_wait_s=5, sleep=lambda s: None)
    return SalesloftConnector(conn, http=http)


def pull_all(c: SalesloftConnector, name: str, cursor: dict[str, Any] | None = None
             ) -> tuple[list[EngagementPage], dict[str, Any]]:
    pages = list(c.pull(name, cursor))
    return pages, pages[-1].cursor


def ids(pages: list[EngagementPage]) -> list[str]:
    return [r.source_id for p in pages for r in p.records]


def test_paged_pull_of_people_in_one_second(server: SandboxServer, sim: SalesloftSimulator) -> None:
    c = make(server, sim, per_page=10)
    pages, cursor = pull_all(c, "prospects")  # 45 people share one updated_at: pages of that second
    assert sorted(ids(pages), key=int) == [str(r["id"]) for r in sim.truth("people")] and len(pages) == 5
    assert pages[0].records[0].data["emails"] and cursor["in_pass"] is False
    assert c.usage.burst_remaining is not None
    users, _ = pull_all(c, "mailboxes")
    assert {r.data["email"] for p in users for r in p.records} == {u["email"] for u in sim.truth("users")}
    c.close()


def test_incremental_after_edits_reads_the_changes_from_page_one(server: SandboxServer, sim: SalesloftSimulator) -> None:
    c = make(server, sim, per_page=10)
    _, cursor = pull_all(c, "prospects")
    sim.clock.advance(5)
    a, b = (str(r["id"]) for r in sim.truth("people")[20:22])
    sim.edit("people", a, {"title": "VP"})
    sim.clock.advance(2)
    sim.edit("people", b, {"title": "CRO"})
    sim.clock.advance(SETTLED)
    sim.log.reset()
    pages, cursor = pull_all(c, "prospects", cursor)
    assert a in ids(pages) and b in ids(pages)
    pages, cursor = pull_all(c, "prospects", cursor)
    assert ids(pages) == []  # both edits were settled when read: nothing again
    routes = sim.log.snapshot()["by_route"]
    assert routes["GET /v2/people"] <= 6  # the people of the old second are not read again page by page
    c.close()


@pytest.mark.parametrize("kind", ["500", "429"])
def test_storms_lose_nothing(server: SandboxServer, sim: SalesloftSimulator, kind: str) -> None:
    c = make(server, sim, per_page=7)
    sim.knobs.update({"faults": [{"path": "^/v2/people$", "kind": kind, "probability": 0.4, "retry_after": 0}]})
    pages, _ = pull_all(c, "prospects")
    assert sorted(ids(pages), key=int) == [str(r["id"]) for r in sim.truth("people")]
    assert sim.log.snapshot()["by_status"].get(kind, 0) > 0
    c.close()


def test_bad_token_is_an_auth_error(server: SandboxServer, sim: SalesloftSimulator) -> None:
    c = make(server, sim, token="wrong")
    with pytest.raises(AuthError):
        list(c.pull("prospects", None))
    c.close()


def test_enrolment_is_idempotent_and_finishes(server: SandboxServer, sim: SalesloftSimulator) -> None:
    c = make(server, sim)
    cadence = str(sim.truth("cadences")[0]["id"])
    user = str(sim.truth("users")[0]["id"])
    item = PushItem("sequence_states", "create", {"email": "ann@new.example", "first_name": "Ann",
                                                  "sequence_id": cadence, "mailbox_id": user}, ref=1)
    first, again = c.push([item])[0], c.push([item])[0]
    assert first.ok and first.created and again.ok and not again.created and first.source_id == again.source_id
    (membership,) = sim.truth("cadence_memberships")
    assert membership["currently_on_cadence"] and str(membership["user"]["id"]) == user
    assert len([p for p in sim.truth("people") if p["email_address"] == "ann@new.example"]) == 1
    states, _ = pull_all(c, "sequence_states")
    assert [r.data["state"] for p in states for r in p.records] == ["active"]
    assert c.push([PushItem("sequence_states", "update", {"action": "finish"}, source_id=first.source_id,
                            ref=2)])[0].ok
    (membership,) = sim.truth("cadence_memberships")
    assert membership["currently_on_cadence"] is False
    assert c.push([item])[0].created is False  # one membership per person and cadence, ever
    c.close()


def test_deep_pages_cost_more(server: SandboxServer, sim: SalesloftSimulator) -> None:
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {sim.token}"}) as client:
        shallow = client.get("/v2/people", params={"page": 1, "per_page": 1})
        deep = client.get("/v2/people", params={"page": 151, "per_page": 1})
        assert shallow.headers["x-ratelimit-endpoint-cost"] == "1" and deep.headers["x-ratelimit-endpoint-cost"] == "8"
        left = int(shallow.headers["x-ratelimit-remaining-minute"]) - int(deep.headers["x-ratelimit-remaining-minute"])
        assert left == 8
        assert client.get("/v2/people", params={"per_page": 101}).status_code == 422
        assert client.post("/v2/people", json={"email_address": sim.truth("people")[0]["email_address"]}).status_code == 422
