"""OutreachConnector against the Outreach simulator over real HTTP (JSON:API, OAuth2, cursor paging)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crmsync.connectors.base import PushItem
from crmsync.connectors.engagement import EngagementPage
from crmsync.connectors.outreach import OutreachConnector
from crmsync.connectors.outreach.http import OutreachHttp
from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.outreach import OutreachSimulator
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
SETTLED = 1 + 2 + 1  # a whole-second stamp plus the 2 s settle, plus one


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return generate_world(seed=11, deals=120, now=NOW)


@pytest.fixture
def sim(world) -> OutreachSimulator:  # type: ignore[no-untyped-def]
    s = OutreachSimulator(world, Knobs(seed=3), prospects=60)
    s.clock.advance(SETTLED)  # the seeded stamps are settled before the first read
    return s


@pytest.fixture
def server(sim: OutreachSimulator) -> Iterator[SandboxServer]:
    with SandboxServer(sim.build_app(), name="outreach-connector") as srv:
        yield srv


def make(server: SandboxServer, sim: OutreachSimulator, **options: Any) -> OutreachConnector:
    conn = ConnectionSettings(name="or", kind="outreach", base_url=server.url,
                              credentials={"client_id": sim.client_id, "client_secret": sim.client_secret,
                                           "refresh_token": sim.refresh_token},
                              options={"max_wait_s": 5, **options})
    http = OutreachHttp(server.url, client_id=sim.client_id, client_secret=sim.client_secret,
                        refresh_token=sim.refresh_token, max_attempts=8, max_wait_s=5,
                        sleep=lambda s: None)  # retries without waiting: the storms below are injected
    return OutreachConnector(conn, http=http)


def pull_all(connector: OutreachConnector, name: str, cursor: dict[str, Any] | None = None
             ) -> tuple[list[EngagementPage], dict[str, Any]]:
    pages = list(connector.pull(name, cursor))
    return pages, pages[-1].cursor


def ids(pages: list[EngagementPage]) -> list[str]:
    return [r.source_id for p in pages for r in p.records]


def test_paged_pull_follows_links_next(server: SandboxServer, sim: OutreachSimulator) -> None:
    connector = make(server, sim, page_size=7)
    sim.log.reset()
    pages, cursor = pull_all(connector, "prospects")
    truth = [str(r["id"]) for r in sim.truth("prospects")]
    assert sorted(ids(pages), key=int) == truth and len(truth) == 60
    assert len(pages) == math.ceil(60 / 7) and pages[-1].done
    by_route = sim.log.snapshot()["by_route"]
    assert by_route["GET /api/v2/prospects"] == len(pages)
    assert by_route["POST /oauth/token"] == 1  # one token for the whole pull
    record = pages[0].records[0]
    assert record.data["emails"] and "accountId" in record.data and record.modified_at.tzinfo is not None
    assert connector.usage.limit == 10_000 and connector.usage.remaining is not None
    assert cursor["in_pass"] is False and cursor["watermark"] is not None
    connector.close()


def test_incremental_after_edits_reads_only_the_changes(server: SandboxServer, sim: OutreachSimulator) -> None:
    connector = make(server, sim, page_size=25)
    _, cursor = pull_all(connector, "prospects")
    sim.clock.advance(5)
    first, second = (str(r["id"]) for r in sim.truth("prospects")[:2])
    sim.edit("prospects", first, {"title": "VP Sales"})
    sim.edit("prospects", second, {"title": "CRO"})
    sim.clock.advance(SETTLED)
    pages, cursor = pull_all(connector, "prospects", cursor)
    assert sorted(ids(pages)) == sorted([first, second])
    assert {r.data["title"] for p in pages for r in p.records} == {"VP Sales", "CRO"}
    pages, _ = pull_all(connector, "prospects", cursor)
    assert ids(pages) == []  # nothing changed since: an empty pass
    connector.close()


def test_edit_inside_an_open_second_is_read_again(server: SandboxServer, sim: OutreachSimulator) -> None:
    connector = make(server, sim)
    _, cursor = pull_all(connector, "prospects")
    sim.clock.freeze()
    target = str(sim.truth("prospects")[5]["id"])
    sim.edit("prospects", target, {"title": "first"})
    pages, cursor = pull_all(connector, "prospects", cursor)  # read while its second is open
    assert ids(pages) == [target]
    sim.edit("prospects", target, {"title": "second"})  # same second: same updatedAt
    sim.clock.advance(SETTLED)
    pages, _ = pull_all(connector, "prospects", cursor)
    assert [r.data["title"] for p in pages for r in p.records if r.source_id == target] == ["second"]
    connector.close()


@pytest.mark.parametrize("kind", ["500", "429"])
def test_storms_of_errors_lose_nothing(server: SandboxServer, sim: OutreachSimulator, kind: str) -> None:
    connector = make(server, sim, page_size=9)
    sim.knobs.update({"faults": [{"path": r"^/api/v2/prospects$", "kind": kind, "probability": 0.4,
                                  "retry_after": 0.0, "method": "GET"}]})
    pages, _ = pull_all(connector, "prospects")
    assert sorted(ids(pages), key=int) == [str(r["id"]) for r in sim.truth("prospects")]
    assert sim.log.snapshot()["by_status"].get(kind, 0) > 0  # the storm did happen
    connector.close()


def test_expired_token_is_refreshed(server: SandboxServer, sim: OutreachSimulator) -> None:
    connector = make(server, sim, page_size=10)
    pages = connector.pull("prospects", None)
    first = next(pages)
    sim.tokens.clear()  # every access token revoked mid-pull
    rest = list(pages)
    assert len(ids([first, *rest])) == 60
    assert sim.log.snapshot()["by_route"]["POST /oauth/token"] == 2
    connector.close()


def test_enrolment_is_looked_up_before_it_is_created(server: SandboxServer, sim: OutreachSimulator) -> None:
    connector = make(server, sim)
    sequence = str(sim.truth("sequences")[0]["id"])
    mailbox = str(sim.truth("mailboxes")[0]["id"])
    item = PushItem("sequence_states", "create", {"email": "new.lead@example.org", "first_name": "New",
                                                  "sequence_id": sequence, "mailbox_id": mailbox},
                    idempotency_key="seq|x", ref=1)
    first = connector.push([item])[0]
    again = connector.push([item])[0]  # the same push once more (a drain killed before booking)
    assert first.ok and first.created and again.ok and not again.created
    assert first.source_id == again.source_id
    states = [s for s in sim.truth("sequenceStates")
              if str(s["relationships"]["sequence"]["data"]["id"]) == sequence]
    assert len(states) == 1 and states[0]["attributes"]["state"] == "active"
    assert len([p for p in sim.truth("prospects") if "new.lead@example.org" in p["attributes"]["emails"]]) == 1
    finish = connector.push([PushItem("sequence_states", "update", {"action": "finish"},
                                      source_id=first.source_id, ref=2)])[0]
    assert finish.ok
    assert sim.truth("sequenceStates")[-1]["attributes"]["state"] == "finished"
    assert connector.push([PushItem("sequence_states", "update", {"action": "finish"},
                                    source_id=first.source_id, ref=3)])[0].ok  # finishing twice is fine
    connector.close()


def test_simulator_speaks_jsonapi(server: SandboxServer, sim: OutreachSimulator) -> None:
    token = sim.issue_token()
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        wrong = client.post("/api/v2/prospects", json={"data": {"type": "prospect", "attributes": {}}})
        assert wrong.status_code == 415 and wrong.json()["errors"][0]["id"] == "unsupportedMediaType"
        missing = client.post("/api/v2/sequenceStates", content=b'{"data":{"type":"sequenceState"}}',
                              headers={"content-type": "application/vnd.api+json"})
        assert missing.status_code == 422
        assert client.get("/api/v2/prospects", params={"page[size]": 1001}).status_code == 400
        assert client.get("/api/v2/prospects", headers={"authorization": "Bearer nope"}).status_code == 401
        ok = client.get("/api/v2/prospects", params={"page[size]": 5})
        assert ok.headers["content-type"].startswith("application/vnd.api+json")
        assert int(ok.headers["x-ratelimit-limit"]) == 10_000 and "x-ratelimit-reset" in ok.headers
        assert "page%5Bafter%5D" in ok.json()["links"]["next"] or "page[after]" in ok.json()["links"]["next"]


def test_hourly_limit_spent_stops_cleanly(server: SandboxServer, sim: OutreachSimulator) -> None:
    from crmsync.connectors.base import BudgetExhausted

    sim.knobs.update({"burst_limit": 3, "burst_window_s": 3600.0})
    connector = make(server, sim, page_size=5)
    with pytest.raises(BudgetExhausted):
        list(connector.pull("prospects", None))
    assert connector.usage.remaining == 0
    connector.close()


def test_enrolment_through_a_storm_of_500s_and_429s_leaves_one_state(
        server: SandboxServer, sim: OutreachSimulator) -> None:
    from crmsync.connectors.base import RetriableError

    connector = make(server, sim)
    sequence = str(sim.truth("sequences")[1]["id"])
    mailbox = str(sim.truth("mailboxes")[0]["id"])
    sim.knobs.update({"faults": [
        {"path": r"^/api/v2/(prospects|sequenceStates)$", "kind": "500", "probability": 0.5, "method": "POST"},
        {"path": r"^/api/v2/", "kind": "429", "probability": 0.2, "retry_after": 0.0}]})
    items = [PushItem("sequence_states", "create", {"email": f"storm{i}@example.org", "sequence_id": sequence,
                                                    "mailbox_id": mailbox}, ref=i) for i in range(6)]
    done: dict[int, str] = {}
    for _ in range(60):  # what the outbox does: push the items not done yet again, later
        todo = [i for i in items if i.ref not in done]
        if not todo:
            break
        try:
            answers = connector.push(todo)
        except RetriableError:
            continue
        done.update({a.ref: str(a.source_id) for a in answers if a.ok and a.ref is not None})
    assert len(done) == 6
    states = [s for s in sim.truth("sequenceStates") if str(s["relationships"]["sequence"]["data"]["id"]) == sequence]
    assert sorted(str(s["id"]) for s in states) == sorted(done.values())  # one state per person, no more
    assert sim.log.snapshot()["by_status"].get("500", 0) > 0
    connector.close()
