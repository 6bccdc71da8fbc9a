"""HubSpot simulator and connector figures (printed, never asserted).

    python bench/bench_hubspot.py --deals 1000000 --pull-deals 20000

- simulator build time from a World of ``--deals`` deals, and per-request latency of a 100-record
  list page and a 200-record incremental search page over real HTTP (median of N);
- connector pull throughput (records/s, API calls per 1,000 records) on a ``--pull-deals`` world,
  for the search keyset backfill and for the list + batch read alternative.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
from pydantic import SecretStr

from crmsync.connectors.hubspot import HubSpotConnector
from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.hubspot import SANDBOX_TOKEN, HubSpotSimulator
from crmsync.settings import ConnectionSettings


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def serve_figures(deals: int, repeat: int) -> None:
    start = time.perf_counter()
    world = generate_world(7, deals)
    world_s = time.perf_counter() - start
    start = time.perf_counter()
    sim = HubSpotSimulator(world, Knobs(search_per_second=100_000))
    build_s = time.perf_counter() - start
    print(f"world of {deals:,} deals generated in {world_s:.1f} s; HubSpotSimulator built in {build_s:.2f} s")
    with SandboxServer(sim.build_app(), name="bench-hs") as srv, httpx.Client(
            base_url=srv.url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=60) as http:
        mid = str(deals // 2)
        props = [("properties", p) for p in ("dealname", "amount", "dealstage", "closedate", "hubspot_owner_id")]

        def list_page() -> None:
            r = http.get("/crm/v3/objects/deals", params=[("limit", "100"), ("after", mid), *props])
            assert len(r.json()["results"]) == 100

        lo = int((world.now.timestamp() - 30 * 86_400) * 1000)
        body = {"filterGroups": [{"filters": [
            {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(lo)},
            {"propertyName": "hs_lastmodifieddate", "operator": "LTE", "value": str(int(time.time() * 1000))}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}], "limit": 200, "after": "0",
            "properties": ["dealname", "amount", "dealstage", "closedate", "hubspot_owner_id"]}
        total = http.post("/crm/v3/objects/deals/search", json=body).json()["total"]

        def search_page() -> None:
            r = http.post("/crm/v3/objects/deals/search", json=body)
            assert len(r.json()["results"]) == 200

        print(f"list page (100 deals, 5 properties): median {timed(list_page, repeat):.1f} ms")
        print(f"incremental search page (200 of {total:,} changed in 30 days): median {timed(search_page, repeat):.1f} ms")


def pull_figures(deals: int) -> None:
    sim = HubSpotSimulator(generate_world(9, deals), Knobs(search_per_second=100_000))
    with SandboxServer(sim.build_app(), name="bench-hs-pull") as srv:
        for via in ("search", "list"):
            conn = ConnectionSettings(name="hs", kind="hubspot", base_url=srv.url,
                                      credentials={"access_token": SecretStr(SANDBOX_TOKEN)},
                                      options={"search_per_second": 100_000, "limits_raised": True,
                                               "backfill_via": via})
            connector = HubSpotConnector(conn)
            sim.log.reset()
            start = time.perf_counter()
            count = sum(len(p.records) for p in connector.pull("deals", None, backfill=True))
            elapsed = time.perf_counter() - start
            calls = sim.log.snapshot()["total"]
            print(f"backfill via {via}: {count:,} deals in {elapsed:.1f} s = {count / elapsed:,.0f} records/s, "
                  f"{calls:,} calls ({calls / count * 1000:.1f} per 1,000 records, associations included)"
                  + (f"; at HubSpot's 4 searches/s the search pass alone needs >= {count / 200 / 4:.0f} s"
                     if via == "search" else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--pull-deals", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    serve_figures(args.deals, args.repeat)
    pull_figures(args.pull_deals)


if __name__ == "__main__":
    main()
