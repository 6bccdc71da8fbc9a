"""Salesforce Bulk 2.0 results read in parallel through ``resultPages`` (every record exactly once,
pages handed over in order, a resumed job continues from its locator), the sandbox serving the
resource as documented, and ``crmsync backfill --dry-run`` showing the Salesforce plan."""

from __future__ import annotations

import datetime as dt
import json
import math
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmsync.connectors.salesforce import SalesforceConnector
from crmsync.connectors.salesforce.connector import REST_PAGE_SIZE
from crmsync.sandbox import LocalCA, SandboxServer, generate_world
from crmsync.sandbox.runner import CONNECTION_NAMES, start_sandbox
from crmsync.sandbox.salesforce import SalesforceSimulator
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DEALS = 1300
PAGES_ROUTE = "GET /services/data/v59.0/jobs/query/{id}/resultPages"
RESULTS_ROUTE = "GET /services/data/v59.0/jobs/query/{id}/results"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SalesforceSimulator, SandboxServer, LocalCA]]:
    ca = LocalCA.create(tmp_path_factory.mktemp("ca"))
    sim = SalesforceSimulator(generate_world(17, DEALS, now=NOW))
    server = SandboxServer(sim.build_app(), tls=ca, name="salesforce").start()
    try:
        yield sim, server, ca
    finally:
        server._server.force_exit = True
        server.stop()


def connector(org: tuple[SalesforceSimulator, SandboxServer, LocalCA], **options: Any) -> SalesforceConnector:
    sim, server, ca = org
    creds = sim.credentials
    return SalesforceConnector(ConnectionSettings(
        name="sf", kind="salesforce", base_url=server.url, ca_bundle=ca.ca_path,
        credentials={"client_id": creds.client_id, "client_secret": creds.client_secret,
                     "username": creds.username, "password": creds.password},
        options={"bulk_poll_seconds": 0.01, "max_wait_seconds": 0.2, "bulk_threshold": 100, **options}))


def test_parallel_results_read_every_record_exactly_once_in_order(
        org: tuple[SalesforceSimulator, SandboxServer, LocalCA]) -> None:
    sim, _, _ = org
    sim.bulk.result_page_rows = 100  # 13+ pages: three resultPages answers of up to five URLs
    sim.log.reset()
    sf = connector(org, bulk_parallel=3, bulk_chunk=64)
    seen: list[str] = []
    pages = list(sf.pull("deals", None, backfill=True))
    sf.close()
    for page in pages:
        seen.extend(r.source_id for r in page.records)
    truth = [r["Id"] for r in sim.truth("Opportunity", include_deleted=True)]
    assert len(seen) == len(set(seen)) == len(truth)  # nothing twice, nothing missed
    assert seen == truth  # handed over in the job's order, whatever order the downloads finished in
    routes = sim.log.snapshot()["by_route"]
    results = math.ceil(len(truth) / 100)
    assert routes[RESULTS_ROUTE] == results
    assert routes[PAGES_ROUTE] == math.ceil(results / 5)
    assert pages[-1].done and "mode" not in pages[-1].cursor
    assert all(len(p.records) <= 64 for p in pages)


def test_a_parallel_job_resumes_from_a_listed_locator(org: tuple[SalesforceSimulator, SandboxServer, LocalCA]) -> None:
    sim, _, _ = org
    sim.bulk.result_page_rows = 250
    sf = connector(org, bulk_parallel=3, bulk_page_size=250)
    pages = sf.pull("deals", None, backfill=True)
    taken = [next(pages) for _ in range(4)]  # the job checkpoint, then three results pages of 250
    pages.close()  # type: ignore[attr-defined]
    sf.close()
    cursor = taken[-1].cursor
    assert cursor["mode"] == "bulk" and cursor["locator"]
    again = connector(org, bulk_parallel=3, bulk_page_size=250)
    rest = list(again.pull("deals", cursor))
    again.close()
    seen = [r.source_id for p in taken + rest for r in p.records]
    assert len(seen) == len(set(seen))
    assert set(seen) == {r["Id"] for r in sim.truth("Opportunity", include_deleted=True)}


def test_result_pages_as_documented(org: tuple[SalesforceSimulator, SandboxServer, LocalCA]) -> None:
    sim, server, ca = org
    sim.bulk.result_page_rows = 500
    token = sim.issue_session()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    verify = ssl.create_default_context(cafile=str(ca.ca_path))
    with httpx.Client(base_url=server.url, verify=verify, headers=headers) as http:
        job = http.post("/services/data/v59.0/jobs/query",
                        json={"operation": "query", "query": "SELECT Id FROM Opportunity"}).json()
        assert http.get(f"/services/data/v59.0/jobs/query/{job['id']}").json()["state"] == "JobComplete"
        listed = http.get(f"/services/data/v59.0/jobs/query/{job['id']}/resultPages")
        assert listed.status_code == 200 and listed.headers["content-type"].startswith("application/json")
        body = listed.json()
        assert set(body) == {"resultPages", "done", "nextRecordsUrl"} and body["done"] is True
        urls = [p["resultUrl"] for p in body["resultPages"]]
        assert len(urls) == math.ceil(DEALS / 500) and all("/results?locator=" in u for u in urls)
        rows = 0
        for url in reversed(urls):  # any order: the listed locators do not overlap
            answer = http.get(url, headers={"Accept": "text/csv"})
            assert answer.status_code == 200 and answer.headers["Sforce-NumberOfRecords"]
            rows += len(answer.text.strip().splitlines()) - 1
        assert rows == len(sim.truth("Opportunity"))
        # results are read with the API version the job was created with (409 otherwise)
        assert http.get(f"/services/data/v60.0/jobs/query/{job['id']}/resultPages").status_code == 409


def test_dry_run_shows_the_salesforce_plan(tmp_path: Path) -> None:
    handle = start_sandbox(systems=["salesforce"], world=generate_world(13, 900, now=NOW), state_dir=tmp_path / "sb")
    try:
        config = handle.write_config(tmp_path / "crmsync.yaml", store_url=f"sqlite:///{tmp_path / 'store.db'}")
        sim = handle.sims["salesforce"]
        sim.log.reset()
        done = subprocess.run([sys.executable, "-m", "crmsync.cli", "backfill", "--connection",
                               CONNECTION_NAMES["salesforce"], "--object", "deals", "--dry-run", "--json",
                               "--config", str(config)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout[done.stdout.index("{"):])
        assert answer["dry_run"] is True
        plan = answer["plans"][0]
        assert plan["records"] == len(sim.truth("Opportunity")) and plan["strategy"] == "rest"
        # REST pages + count, and the batched stage history: 3 Bulk jobs
        assert plan["calls"] == math.ceil(plan["records"] / REST_PAGE_SIZE) + 1 + 12
        assert "stage history: 3 Bulk jobs" in plan["note"] and plan["quota_share"] is not None
        assert plan["alternatives"][0]["strategy"] == "bulk"
        assert "jobs/query" not in json.dumps(sim.log.snapshot()["by_route"])  # counted, nothing pulled
    finally:
        handle.stop()
