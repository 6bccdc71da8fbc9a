"""GongConnector against the Gong simulator over real HTTP: paging by records.cursor, the extensive
content, incremental passes with a look-back, resuming a stopped pass, 429 and 500 storms, the
documented 3-calls-a-second limit, 404 for an empty window, auth errors."""

from __future__ import annotations

import datetime as dt

import pytest

from crmsync.connectors.base import AuthError, RetriableError
from crmsync.connectors.gong import GongConnector
from crmsync.sandbox import SandboxServer, generate_world
from crmsync.sandbox.core import FaultRule, Knobs
from crmsync.sandbox.gong import DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET, GongSimulator
from crmsync.settings import ConnectionSettings


def settings(url: str, secret: str = DEFAULT_ACCESS_SECRET, **options: object) -> ConnectionSettings:
    return ConnectionSettings(name="gong", kind="gong", base_url=url,
                              credentials={"access_key": DEFAULT_ACCESS_KEY, "access_key_secret": secret},
                              options={"max_wait_s": 5, "backfill_days": 800, "calls_per_second": 0, **options})


@pytest.fixture(scope="module")
def sim() -> GongSimulator:
    # limits raised for speed; test_documented_rate_limit puts Gong's own back
    return GongSimulator(generate_world(21, 300), Knobs(burst_limit=1000, burst_window_s=1.0), page_size=40)


@pytest.fixture(scope="module")
def server(sim: GongSimulator):
    with SandboxServer(sim.build_app(), name="gong") as srv:
        yield srv


@pytest.fixture()
def conn(server: SandboxServer, sim: GongSimulator):
    sim.knobs.faults = []
    sim.log.reset()
    connector = GongConnector(settings(server.url))
    yield connector
    connector.close()
    sim.knobs.faults = []


def pull_all(conn: GongConnector, cursor: dict | None = None) -> tuple[dict, dict]:
    calls: dict = {}
    last: dict = {}
    for page in conn.pull("calls", cursor):
        for call in page.calls:
            calls[call.call_id] = call
        last = page.cursor
    return calls, last


def test_paged_pull_reads_every_call_with_content(conn: GongConnector, sim: GongSimulator) -> None:
    truth = {c["metaData"]["id"]: c for c in sim.truth("calls")}
    assert len(truth) > 100  # several pages of 40
    pages = list(conn.pull("calls", None))
    assert len(pages) == -(-len(truth) // 40)
    assert [p.done for p in pages] == [False] * (len(pages) - 1) + [True]
    assert all("next" in p.cursor for p in pages[:-1]) and "through" in pages[-1].cursor
    calls = {c.call_id: c for p in pages for c in p.calls}
    assert set(calls) == set(truth)
    one = next(iter(calls.values()))
    raw = truth[one.call_id]
    assert one.started.tzinfo is not None
    assert {p.email for p in one.parties} == {p["emailAddress"].lower() for p in raw["parties"]}
    assert one.trackers == {t["name"]: t["count"] for t in raw["content"]["trackers"]}
    assert set(one.highlights) == {h["title"] for h in raw["content"]["highlights"]}
    # the CRM context Gong links: the Salesforce opportunity of the call
    assert any(r.object_type == "Opportunity" for r in one.crm_refs) == (raw["deal_id"] is not None)
    # one request per page: extensive returns parties and content, no per-call requests
    assert sim.log.by_route["POST /v2/calls/extensive"] == len(pages)


def test_users_are_paged(conn: GongConnector, sim: GongSimulator) -> None:
    users = conn.users()
    assert [u["id"] for u in users] == [u["id"] for u in sim.truth("users")]
    assert all(u["emailAddress"] for u in users)


def test_incremental_pass_reads_new_and_late_processed_calls(conn: GongConnector, sim: GongSimulator) -> None:
    _, cursor = pull_all(conn)
    assert set(cursor) == {"through"}
    owner = sim.world.owners[1]
    contact = sim.world.contacts[0]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    new_id = sim.create("calls", {"started": (now - dt.timedelta(minutes=5)).isoformat(), "host_email": owner.email,
                                  "attendees": [contact.email], "title": "Pilot review", "next_steps": True})
    # a call from yesterday whose trackers Gong computed only now (inside the look-back)
    recent = [c for c in sim.truth("calls") if c["metaData"]["started"] >= (now - dt.timedelta(hours=24)).isoformat()
              and c["metaData"]["id"] != new_id]
    edited = recent[0]["metaData"]["id"] if recent else None
    if edited:
        sim.edit("calls", edited, {"brief": "Processed later: pricing objections resolved."})
    calls, cursor2 = pull_all(conn, cursor)
    assert new_id in calls
    assert calls[new_id].highlights.get("Next steps")
    assert contact.email.lower() in {p.email for p in calls[new_id].parties}
    if edited:
        assert calls[edited].brief == "Processed later: pricing objections resolved."
    # an incremental pass re-reads the look-back window only, not the year
    assert len(calls) < len(sim.truth("calls")) / 2
    assert cursor2["through"] >= cursor["through"]


def test_a_stopped_pass_resumes_on_its_page(conn: GongConnector, sim: GongSimulator) -> None:
    pages = conn.pull("calls", None)
    first = next(pages)
    pages.close()  # the process stopped after writing page 1 and its cursor
    rest, _ = pull_all(conn, first.cursor)
    everything = {c.call_id for c in first.calls} | set(rest)
    assert everything == {c["metaData"]["id"] for c in sim.truth("calls")}
    assert not ({c.call_id for c in first.calls} & set(rest))  # page 2 onward, nothing read twice


def test_429_storm_is_waited_out(conn: GongConnector, sim: GongSimulator) -> None:
    sim.knobs.faults = [FaultRule(path="/v2/calls/extensive", kind="429", probability=0.5, retry_after=0)]
    calls, _ = pull_all(conn)
    assert set(calls) == {c["metaData"]["id"] for c in sim.truth("calls")}
    assert sim.log.by_status.get(429, 0) > 0


def test_500_storm_is_retried_and_a_lasting_outage_surfaces(conn: GongConnector, sim: GongSimulator) -> None:
    sim.knobs.faults = [FaultRule(path="/v2/calls/extensive", kind="500", probability=0.4)]
    calls, _ = pull_all(conn)
    assert set(calls) == {c["metaData"]["id"] for c in sim.truth("calls")}
    assert sim.log.by_status.get(500, 0) > 0
    sim.knobs.faults = [FaultRule(path="/v2/calls/extensive", kind="500", probability=1.0)]
    with pytest.raises(RetriableError, match="server error 500"):
        pull_all(conn)


def test_documented_rate_limit_answers_429_with_retry_after(server: SandboxServer, sim: GongSimulator) -> None:
    import httpx

    saved = sim.knobs.burst_limit
    sim.knobs.burst_limit = 3
    sim.limiter.reset()
    try:
        auth = httpx.BasicAuth(DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET)
        with httpx.Client(base_url=server.url, auth=auth) as client:
            statuses = [client.get("/v2/users") for _ in range(6)]
        refused = [r for r in statuses if r.status_code == 429]
        assert refused and all(int(r.headers["retry-after"]) >= 1 for r in refused)
        assert refused[0].json()["errors"]
        # the connector paces itself to 3 calls a second (its default): no 429 at all
        sim.limiter.reset()
        sim.log.reset()
        connector = GongConnector(settings(server.url, calls_per_second=3))
        try:
            for _ in range(7):
                assert len(connector.users()) == len(sim.users)
        finally:
            connector.close()
        assert sim.log.by_status == {200: 7}
        # unpaced, it waits Retry-After and still gets everything
        sim.limiter.reset()
        sim.log.reset()
        unpaced = GongConnector(settings(server.url))
        try:
            for _ in range(7):
                assert len(unpaced.users()) == len(sim.users)
        finally:
            unpaced.close()
        assert sim.log.by_status.get(429, 0) > 0 and sim.log.by_status[200] == 7
    finally:
        sim.knobs.burst_limit = saved


def test_empty_window_is_404_and_read_as_no_calls(conn: GongConnector) -> None:
    long_ago = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    pages = list(conn.pull("calls", None, since=long_ago, until=long_ago + dt.timedelta(days=1)))
    assert len(pages) == 1 and pages[0].calls == [] and pages[0].done
    assert conn.count("calls", since=long_ago, until=long_ago + dt.timedelta(days=1)) == 0


def test_bad_credentials_are_an_auth_error_without_the_secret(server: SandboxServer) -> None:
    connector = GongConnector(settings(server.url, secret="wrong-secret"))
    try:
        with pytest.raises(AuthError) as info:
            list(connector.pull("calls", None))
        assert "wrong-secret" not in str(info.value)
    finally:
        connector.close()


def test_malformed_dates_are_refused_by_the_simulator(server: SandboxServer) -> None:
    import httpx

    auth = httpx.BasicAuth(DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET)
    with httpx.Client(base_url=server.url, auth=auth) as client:
        bad = client.get("/v2/calls", params={"fromDateTime": "yesterday", "toDateTime": "2026-01-01T00:00:00Z"})
        assert bad.status_code == 400 and "fromDateTime" in bad.json()["errors"][0]
        first = client.post("/v2/calls/extensive", json={"filter": {}}).json()
        assert first["records"]["cursor"]
        swapped = client.post("/v2/calls/extensive", json={"filter": {"callIds": ["1"]},
                                                           "cursor": first["records"]["cursor"]})
        assert swapped.status_code == 400


def test_calls_sync_into_the_store_resumes_and_reruns_without_duplicates(conn: GongConnector, sim: GongSimulator,
                                                                         store) -> None:
    from crmsync.store.activity import load_calls
    from crmsync.sync.activity import CALLS_OBJECT, sync_calls

    truth = {c["metaData"]["id"]: c for c in sim.truth("calls")}

    class StopAfterFirstPage(Exception):
        pass

    original = conn.pull

    def one_page(*args, **kwargs):  # the process dies after page 1 was written with its cursor
        pages = original(*args, **kwargs)
        yield next(pages)
        raise StopAfterFirstPage

    conn.pull = one_page  # type: ignore[method-assign]
    with pytest.raises(StopAfterFirstPage):
        sync_calls(store, conn)
    conn.pull = original  # type: ignore[method-assign]
    saved = store.load_cursor(conn.name, CALLS_OBJECT)
    assert saved is not None and "next" in saved and len(load_calls(store, [conn.name])) == 40
    sync_calls(store, conn)  # resumes on page 2
    stored = {c.call_id: c for c in load_calls(store, [conn.name])}
    assert set(stored) == set(truth)
    one = stored[next(iter(truth))]
    assert [p.email for p in one.parties] == [p["emailAddress"].lower() for p in truth[one.call_id]["parties"]]
    assert set(store.load_cursor(conn.name, CALLS_OBJECT) or {}) == {"through"}
    again = sync_calls(store, conn)  # incremental: the look-back window only, upserted
    assert again.records < len(truth) and len(load_calls(store, [conn.name])) == len(truth)


def test_crmsync_sync_pulls_a_gong_connection(server: SandboxServer, sim: GongSimulator, tmp_path) -> None:
    from typer.testing import CliRunner

    from crmsync.cli import app
    from crmsync.store import Store
    from crmsync.store.activity import load_calls

    db = tmp_path / "s.db"
    config = tmp_path / "crmsync.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{db}'}}\n"
        "connections:\n"
        f"  - {{name: calls, kind: gong, base_url: '{server.url}', options: {{backfill_days: 800}},\n"
        f"     credentials: {{access_key: {DEFAULT_ACCESS_KEY}, access_key_secret: {DEFAULT_ACCESS_SECRET}}}}}\n")
    result = CliRunner().invoke(app, ["sync", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert '"object":"calls","status":"ok"' in result.output
    with Store.open(f"sqlite:///{db}") as store:
        assert len(load_calls(store, ["calls"])) == len(sim.truth("calls"))


def test_worker_cycle_of_a_gong_connection_pulls_calls(server: SandboxServer, sim: GongSimulator, store) -> None:
    from crmsync.runtime.pipeline import run_connection_cycle, sync_connections
    from crmsync.settings import Settings
    from crmsync.store.activity import load_calls

    settings = Settings.model_validate({"connections": [
        settings_dict(server.url), {"name": "billing", "kind": "meteroid", "credentials": {"api_key": "x"}}]})
    assert [c.name for c in sync_connections(settings)] == ["gong"]  # scheduled; billing has its own job
    report = run_connection_cycle(settings, store, "gong")
    assert report.status == "ok", report.outcomes
    assert report.outcomes["rules"].startswith("skipped") and report.outcomes["outbox"].startswith("skipped")
    assert len(load_calls(store, ["gong"])) == len(sim.truth("calls"))


def settings_dict(url: str) -> dict:
    return settings(url).model_dump(mode="json") | {"credentials": {"access_key": DEFAULT_ACCESS_KEY,
                                                                    "access_key_secret": DEFAULT_ACCESS_SECRET}}
