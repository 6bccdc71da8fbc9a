"""ApolloConnector against the Apollo simulator over real HTTP (x-api-key, page-numbered searches)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crmsync.connectors.apollo import ApolloConnector
from crmsync.connectors.apollo.connector import ApolloHttp
from crmsync.connectors.base import AuthError, PushItem
from crmsync.connectors.engagement import EngagementPage
from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.apollo import ApolloSimulator
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
SETTLED = 4


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return generate_world(seed=12, deals=120, now=NOW)


@pytest.fixture
def sim(world) -> ApolloSimulator:  # type: ignore[no-untyped-def]
    s = ApolloSimulator(world, Knobs(seed=4), contacts=45)
    s.clock.advance(SETTLED)
    return s


@pytest.fixture
def server(sim: ApolloSimulator) -> Iterator[SandboxServer]:
    with SandboxServer(sim.build_app(), name="apollo-connector") as srv:
        yield srv


def make(server: SandboxServer, sim: ApolloSimulator, key: str | None = None, **options: Any) -> ApolloConnector:
    conn = ConnectionSettings(name="ap", kind="apollo", base_url=server.url,
                              credentials={"api_key": key or sim.api_key}, options=options)
    http = ApolloHttp(server.url, key or sim.api_key, max_attempts=8, max_wait_s=5, sleep=lambda s: None)
    return ApolloConnector(conn, http=http)


def pull_all(c: ApolloConnector, name: str, cursor: dict[str, Any] | None = None
             ) -> tuple[list[EngagementPage], dict[str, Any]]:
    pages = list(c.pull(name, cursor))
    return pages, pages[-1].cursor


def ids(pages: list[EngagementPage]) -> list[str]:
    return [r.source_id for p in pages for r in p.records]


def test_paged_pull_of_contacts(server: SandboxServer, sim: ApolloSimulator) -> None:
    c = make(server, sim, per_page=10)
    pages, cursor = pull_all(c, "prospects")
    assert sorted(ids(pages)) == [r["id"] for r in sim.truth("contacts")] and len(pages) == 5
    assert pages[0].records[0].data["emails"] and cursor["in_pass"] is False
    assert sim.log.snapshot()["by_route"]["POST /api/v1/contacts/search"] == 5
    assert c.usage.limit == 100_000 and c.usage.burst_remaining is not None
    mailboxes, _ = pull_all(c, "mailboxes")
    sequences, _ = pull_all(c, "sequences")
    assert {r.data["email"] for p in mailboxes for r in p.records} == {a["email"] for a in sim.truth("email_accounts")}
    assert len(ids(sequences)) == 4
    c.close()


def test_incremental_after_edits(server: SandboxServer, sim: ApolloSimulator) -> None:
    c = make(server, sim, per_page=10)
    _, cursor = pull_all(c, "prospects")
    sim.clock.advance(5)
    a, b = (r["id"] for r in sim.truth("contacts")[10:12])
    sim.edit("contacts", a, {"title": "VP"})
    sim.edit("contacts", b, {"title": "CRO"})
    sim.clock.advance(SETTLED)
    sim.log.reset()
    pages, cursor = pull_all(c, "prospects", cursor)
    assert sorted(ids(pages)) == sorted([a, b])
    pages, cursor = pull_all(c, "prospects", cursor)
    assert ids(pages) == []
    sim.clock.advance(5)
    sim.edit("contacts", a, {"title": "CEO"})
    sim.clock.advance(SETTLED)
    sim.log.reset()
    pages, _ = pull_all(c, "prospects", cursor)
    assert ids(pages) == [a]
    # newest first down to the floor (the previous edits' second): one page, not the whole list
    assert sim.log.snapshot()["by_route"]["POST /api/v1/contacts/search"] == 1
    c.close()


@pytest.mark.parametrize("kind", ["500", "429"])
def test_storms_lose_nothing(server: SandboxServer, sim: ApolloSimulator, kind: str) -> None:
    c = make(server, sim, per_page=7)
    sim.knobs.update({"faults": [{"path": "contacts/search", "kind": kind, "probability": 0.4, "retry_after": 0}]})
    pages, _ = pull_all(c, "prospects")
    assert sorted(ids(pages)) == [r["id"] for r in sim.truth("contacts")]
    assert sim.log.snapshot()["by_status"].get(kind, 0) > 0
    c.close()


def test_bad_key_is_an_auth_error(server: SandboxServer, sim: ApolloSimulator) -> None:
    c = make(server, sim, key="wrong")
    with pytest.raises(AuthError):
        list(c.pull("prospects", None))
    c.close()


def test_enrolment_is_idempotent_and_finishes(server: SandboxServer, sim: ApolloSimulator) -> None:
    c = make(server, sim)
    campaign = sim.truth("emailer_campaigns")[0]["id"]
    account = sim.truth("email_accounts")[0]["id"]
    item = PushItem("sequence_states", "create", {"email": "ann@new.example", "first_name": "Ann",
                                                  "sequence_id": campaign, "mailbox_id": account}, ref=1)
    first, again = c.push([item])[0], c.push([item])[0]
    assert first.ok and first.created and again.ok and not again.created and first.source_id == again.source_id
    (contact,) = [r for r in sim.truth("contacts") if r["email"] == "ann@new.example"]
    (status,) = contact["contact_campaign_statuses"]
    assert status["status"] == "active" and status["send_email_from_email_account_id"] == account
    states, _ = pull_all(c, "sequence_states")
    assert [r.data["state"] for p in states for r in p.records if r.source_id == first.source_id] == ["active"]
    done = c.push([PushItem("sequence_states", "update", {"action": "finish"}, source_id=first.source_id, ref=2)])
    assert done[0].ok
    (contact,) = [r for r in sim.truth("contacts") if r["email"] == "ann@new.example"]
    assert contact["contact_campaign_statuses"][0]["status"] == "finished"
    assert c.push([item])[0].created is False  # once per person and sequence, even after it finished
    c.close()


def test_simulator_refuses_bad_requests(server: SandboxServer, sim: ApolloSimulator) -> None:
    with httpx.Client(base_url=server.url, headers={"x-api-key": sim.api_key}) as client:
        assert client.post("/api/v1/contacts/search", json={"per_page": 101}).status_code == 422
        assert client.post("/api/v1/contacts/search", json={"sort_by_field": "nope"}).status_code == 422
        campaign = sim.truth("emailer_campaigns")[0]["id"]
        bad = client.post(f"/api/v1/emailer_campaigns/{campaign}/add_contact_ids",
                          params={"contact_ids[]": "x", "send_email_from_email_account_id": "nope"})
        assert bad.status_code == 422
        ok = client.get("/api/v1/email_accounts")
        assert "x-minute-requests-left" in ok.headers and "x-daily-requests-left" in ok.headers
