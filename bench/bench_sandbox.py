"""Sandbox figures: world generation time, simulator build time, and page latency per system.

    python bench/bench_sandbox.py --deals 1000000 --pages 30

Pages requested (over real HTTP on loopback, keep-alive, the largest page each API allows):
Salesforce REST query (2,000 records, via nextRecordsUrl), HubSpot list (100) and search (200),
Pipedrive v2 deals (500), Meteroid subscriptions (100).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from crmsync.sandbox.core import LocalCA, SandboxServer
from crmsync.sandbox.runner import build_simulator, sandbox_credentials
from crmsync.sandbox.world import generate_world


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def report(name: str, samples: list[float]) -> None:
    samples.sort()
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    print(f"  {name:<44} median {statistics.median(samples):7.1f} ms   p95 {p95:7.1f} ms   (n={len(samples)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    t = time.perf_counter()
    world = generate_world(args.seed, args.deals)
    print(f"world: {args.deals:,} deals, {len(world.accounts):,} accounts, {len(world.leads):,} leads "
          f"generated in {time.perf_counter() - t:.1f}s")
    ca = LocalCA.create()
    servers: dict[str, SandboxServer] = {}
    creds: dict[str, dict[str, str]] = {}
    for system in ("salesforce", "hubspot", "pipedrive", "meteroid"):
        t = time.perf_counter()
        sim = build_simulator(system, world)
        build = time.perf_counter() - t
        servers[system] = SandboxServer(sim.build_app(), tls=ca if system == "salesforce" else None,
                                        name=system).start()
        creds[system] = sandbox_credentials(system, sim)
        print(f"{system:<11} simulator built in {build:.2f}s at {servers[system].url}")
        sim.knobs.update({"search_per_second": None, "burst_limit": None, "daily_limit": None})

    print("page latency:")
    sf = servers["salesforce"].url
    with httpx.Client(verify=str(ca.ca_path), timeout=120) as client:
        token = client.post(f"{sf}/services/oauth2/token", data={
            "grant_type": "password", "client_id": creds["salesforce"]["client_id"],
            "client_secret": creds["salesforce"]["client_secret"], "username": creds["salesforce"]["username"],
            "password": creds["salesforce"]["password"]}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        soql = "SELECT Id, Name, Amount, StageName, CloseDate, OwnerId, SystemModstamp FROM Opportunity"
        first = client.get(f"{sf}/services/data/v59.0/query/", params={"q": soql}, headers=headers).json()
        next_url = first.get("nextRecordsUrl")
        assert len(first["records"]) == 2000, len(first["records"])

        def sf_next() -> None:
            nonlocal next_url
            if next_url is None:  # past the last batch: start the query again
                next_url = client.get(f"{sf}/services/data/v59.0/query/", params={"q": soql},
                                      headers=headers).json()["nextRecordsUrl"]
            body = client.get(f"{sf}{next_url}", headers=headers).json()
            assert len(body["records"]) == 2000
            next_url = body.get("nextRecordsUrl")

        report("Salesforce query, 2,000 records/page", timed(sf_next, args.pages))

    hs = servers["hubspot"].url
    with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {creds['hubspot']['access_token']}"}) as client:
        after: str | None = None

        def hs_list() -> None:
            nonlocal after
            params: dict[str, Any] = {"limit": 100, "properties": "dealname,amount,dealstage,hs_lastmodifieddate"}
            if after:
                params["after"] = after
            body = client.get(f"{hs}/crm/v3/objects/deals", params=params).json()
            after = body.get("paging", {}).get("next", {}).get("after")

        report("HubSpot list, 100 records/page", timed(hs_list, args.pages))
        since = str(int((world.now.timestamp() - 60 * 86_400) * 1000))

        def hs_search() -> None:
            body = client.post(f"{hs}/crm/v3/objects/deals/search", json={
                "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                                               "value": since}]}],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": ["dealname", "amount", "dealstage"], "limit": 200}).json()
            assert len(body["results"]) == 200

        report("HubSpot search, 200 records/page", timed(hs_search, args.pages))

    pd = servers["pipedrive"].url
    with httpx.Client(timeout=120, headers={"x-api-token": creds["pipedrive"]["api_token"]}) as client:
        cursor: str | None = None

        def pd_page() -> None:
            nonlocal cursor
            params: dict[str, Any] = {"limit": 500, "sort_by": "update_time"}
            if cursor:
                params["cursor"] = cursor
            body = client.get(f"{pd}/api/v2/deals", params=params).json()
            assert body["data"]
            cursor = body["additional_data"]["next_cursor"]

        report("Pipedrive v2 deals, 500 records/page", timed(pd_page, args.pages))

    mt = servers["meteroid"].url
    with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {creds['meteroid']['api_key']}"}) as client:
        page = 0

        def mt_page() -> None:
            nonlocal page
            body = client.get(f"{mt}/api/v1/subscriptions", params={"page": page, "per_page": 100}).json()
            assert body["data"]
            page += 1

        report("Meteroid subscriptions, 100 records/page", timed(mt_page, args.pages))
    for server in servers.values():
        server.stop()


if __name__ == "__main__":
    main()
