"""Prints how long the Meteroid simulator takes to build over a 1,000,000-deal World (figures only)."""

from __future__ import annotations

import datetime as dt
import time

from crmsync.sandbox import generate_world
from crmsync.sandbox.meteroid import MeteroidSimulator


def main(deals: int = 1_000_000) -> None:
    t0 = time.perf_counter()
    world = generate_world(7, deals, now=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    t1 = time.perf_counter()
    sim = MeteroidSimulator(world)
    t2 = time.perf_counter()
    print(f"world {deals:,} deals: {t1 - t0:.1f}s; MeteroidSimulator build: {t2 - t1:.2f}s; "
          f"seeded customers {len(sim._cust_seq):,}, subscriptions {len(sim._sub_seq):,}")
    t3 = time.perf_counter()
    for number in sim._sub_seq[:1000]:
        sim.subscription(number)
    print(f"1,000 subscriptions materialised on first touch: {time.perf_counter() - t3:.2f}s")


if __name__ == "__main__":
    main()
