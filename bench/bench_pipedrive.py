"""Pipedrive simulator and connector figures (printed, never asserted).

    python bench/bench_pipedrive.py --deals 1000000 --sync-deals 50000

1. Build time of ``PipedriveSimulator`` from a World of ``--deals`` deals (the World's own
   generation time is printed apart).
2. Latency of one 500-record ``GET /api/v2/deals`` page (sort_by=update_time) over HTTP, from the
   start, the middle (cursor) and an ``updated_since`` in the middle.
3. Connector full pull of a ``--sync-deals`` world: records/s, calls and tokens used.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from crmsync.connectors.pipedrive import PipedriveConnector
from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.pipedrive import DEFAULT_TOKEN, PipedriveSimulator
from crmsync.settings import ConnectionSettings


def page_latency(deals: int, repeats: int) -> None:
    t0 = time.perf_counter()
    world = generate_world(seed=1, deals=deals)
    t1 = time.perf_counter()
    sim = PipedriveSimulator(world, Knobs(burst_window_s=2.0))
    t2 = time.perf_counter()
    print(f"world generate  deals={deals:,}  {t1 - t0:.1f}s")
    print(f"simulator build deals={deals:,}  {t2 - t1:.2f}s")
    with SandboxServer(sim.build_app(), name="bench-pd") as srv, \
            httpx.Client(base_url=srv.url, headers={"x-api-token": DEFAULT_TOKEN}) as client:
        base = {"limit": 500, "sort_by": "update_time"}
        first = client.get("/api/v2/deals", params=base).json()
        middle_cursor = first["additional_data"]["next_cursor"]
        truth_mid = sorted(d.modified_at for d in world.deals[:: max(1, deals // 1000)])[500]
        cases = {
            "first page": base,
            "cursor page": {**base, "cursor": middle_cursor},
            "updated_since mid": {**base, "updated_since": truth_mid.strftime("%Y-%m-%dT%H:%M:%SZ")},
        }
        for name, params in cases.items():
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                body = client.get("/api/v2/deals", params=params).json()
                times.append(time.perf_counter() - t)
                assert len(body["data"]) == 500
            print(f"500-deal page   {name:<18} median {statistics.median(times) * 1000:.1f} ms "
                  f"(min {min(times) * 1000:.1f}, n={repeats})")


def connector_pull(deals: int) -> None:
    world = generate_world(seed=2, deals=deals)
    sim = PipedriveSimulator(world, Knobs(burst_window_s=2.0, daily_limit=10_000_000))
    with SandboxServer(sim.build_app(), name="bench-pd-sync") as srv:
        conn = ConnectionSettings(name="pd", kind="pipedrive", base_url=srv.url,
                                  credentials={"api_token": DEFAULT_TOKEN})
        connector = PipedriveConnector(conn)
        t = time.perf_counter()
        records = sum(len(p.records) for p in connector.pull("deals", None))
        elapsed = time.perf_counter() - t
        print(f"connector pull  deals={records:,}  {elapsed:.1f}s  {records / elapsed:,.0f} records/s  "
              f"calls={connector.usage.calls}  tokens={connector.usage.used}")
        t = time.perf_counter()
        counted = connector.count("deals")
        print(f"connector count deals={counted:,}  {1000 * (time.perf_counter() - t):.1f} ms (1 call, 40 tokens)")
        connector.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--sync-deals", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    page_latency(args.deals, args.repeats)
    connector_pull(args.sync_deals)


if __name__ == "__main__":
    main()
