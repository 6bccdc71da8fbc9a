"""Prints how long the Meteroid simulator takes to build over a 1,000,000-deal World (figures, no assertions)."""
from __future__ import annotations

import datetime as dt
import time

from crmsync.sandbox import generate_world
from crmsync.sandbox.meteroid import MeteroidSimulator

t=time.perf_counter(); w=generate_world(7, 1_000_000, now=dt.datetime(2026,6,1,tzinfo=dt.UTC)); t1=time.perf_counter()
s=MeteroidSimulator(w); t2=time.perf_counter()
print(f"world 1M: {t1-t:.1f}s; MeteroidSimulator build: {t2-t1:.2f}s; seeded customers {len(s._cust_seq)}, subscriptions {len(s._sub_seq)}")
t3=time.perf_counter(); [s.subscription(n) for n in s._sub_seq[:1000]]; print(f"1000 subscriptions materialised: {time.perf_counter()-t3:.2f}s")
