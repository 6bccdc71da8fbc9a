"""Gong call pulls at Gong's documented limits (3 calls/s, 10,000/day) into a store.

    python bench/bench_gong.py [--deals 5000] [--page-size 100] [--store-url sqlite:///PATH]

Generates a world, serves its calls from the Gong simulator with the default limits, backfills
every call into a fresh store (``sync_calls``) and runs one incremental pass (the look-back window).
Prints calls, pages, API calls, 429s answered, seconds and calls per second per pass, and how much
of the daily quota a backfill spends. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from crmsync.connectors.gong import GongConnector
from crmsync.sandbox import SandboxServer, generate_world
from crmsync.sandbox.gong import DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET, GongSimulator
from crmsync.settings import ConnectionSettings
from crmsync.store import Store
from crmsync.sync.activity import sync_calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=5000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--store-url", default=None)
    args = parser.parse_args()
    world = generate_world(7, args.deals)
    sim = GongSimulator(world, page_size=args.page_size)
    url = args.store_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'gong.db'}"
    store = Store.open(url)
    store.upgrade()
    with SandboxServer(sim.build_app(), name="gong") as server:
        conn = ConnectionSettings(name="gong", kind="gong", base_url=server.url,
                                  credentials={"access_key": DEFAULT_ACCESS_KEY,
                                               "access_key_secret": DEFAULT_ACCESS_SECRET},
                                  options={"backfill_days": 800})
        connector = GongConnector(conn)
        try:
            for label in ("backfill", "incremental"):
                sim.log.reset()
                started = time.perf_counter()
                result = sync_calls(store, connector)
                seconds = time.perf_counter() - started
                print(f"{label:<12} calls {result.records:>7,}  pages {result.pages:>4}  "
                      f"api calls {sim.log.total:>5}  429s {sim.log.by_status.get(429, 0):>4}  "
                      f"{seconds:6.1f} s  {result.records / seconds if seconds else 0:8.0f} calls/s")
            print(f"deals {args.deals:,}; calls in Gong {len(sim.truth('calls')):,}; daily quota used "
                  f"{sim.limiter.daily_used:,} of {sim.knobs.daily_limit:,}")
        finally:
            connector.close()


if __name__ == "__main__":
    main()
