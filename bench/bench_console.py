"""Page render times of the admin console at a large store (default 1,000,000 deals).

    python bench/bench_console.py [--deals 1000000] [--store-url sqlite:///PATH] [--repeat 5] [--keep]

Builds the store once (owners, stages, 20,000 accounts and ``--deals`` deals, as bench_rules does,
plus a few hundred outbox rows and decisions), serves the console on loopback over it with the
example rules in config/rules, signs in, and times each main page over HTTP: median and worst (as the client waits) and the server's own median (its Server-Timing header), of
``--repeat`` requests after one warm-up (one request for a page whose warm-up took over 2 s). With ``--keep`` an existing store at the URL is reused.

Prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_rules import CONN, build_context_parts, build_deals

from crmsync.console.accounts import add_user, list_users
from crmsync.console.server import ConsoleServer
from crmsync.model import ObjectType, now_utc
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.store.repository import OutboxItem

REPO = Path(__file__).resolve().parents[1]
USER, PASSWORD = "bench-admin", "bench-admin-password"
CHUNK = 50_000


def fill(store: Store, deals: int) -> None:
    owners, stages, accounts = build_context_parts()
    store.upsert(list(owners.values()) + list(stages.values()))
    store.upsert(list(accounts.values()))
    t0 = time.perf_counter()
    for offset in range(0, deals, CHUNK):
        batch = build_deals(min(CHUNK, deals - offset), seed=offset)
        for i, deal in enumerate(batch):
            deal.source_id = f"d{offset + i}"
        store.upsert(batch)
        done = offset + len(batch)
        rate = done / (time.perf_counter() - t0)
        print(f"\r  stored {done:,} deals ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    with store.transaction() as tx:
        for i in range(500):
            tx.enqueue(OutboxItem(connection=CONN, object_name="deals", operation="update", source_id=f"d{i}",
                                  fields={"extra.crmsync_score": str(i % 90)}, idempotency_key=f"bench:{i}",
                                  status="failed" if i % 10 == 0 else "done", last_error="HTTP 400" if i % 10 == 0 else None))
            tx.log_decision(rule_kind="scoring", rule_name="deal_health", connection=CONN, object_type="deal",
                            source_id=f"d{i}", action="set_fields", fields={"extra.crmsync_score": i % 90},
                            reason="bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--store-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="reuse the store at --store-url if it has deals")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    url = args.store_url or f"sqlite:///{tmp / 'console.db'}"
    store = Store.open(url)
    store.upgrade()
    have = store.count(ObjectType.DEAL)
    if not (args.keep and have >= args.deals):
        t0 = time.perf_counter()
        fill(store, args.deals)
        print(f"store {store.dialect}: built {args.deals:,} deals in {time.perf_counter() - t0:.0f} s")
    print(f"store {store.dialect}: {store.count(ObjectType.DEAL):,} deals, "
          f"{store.count(ObjectType.ACCOUNT):,} accounts, {store.count(ObjectType.OWNER):,} owners")
    if USER not in {u.username for u in list_users(store)}:
        add_user(store, USER, PASSWORD, "admin")
    rules = tmp / "rules"
    shutil.copytree(REPO / "config" / "rules", rules)
    settings = Settings.model_validate({"store": {"url": url}, "rules_dir": str(rules),
                                        "connections": [{"name": CONN, "kind": "pipedrive",
                                                         "base_url": "http://127.0.0.1:9",
                                                         "credentials": {"api_token": "unused"},
                                                         "objects": ["deals"]}]})
    server = ConsoleServer(settings, store, state_dir=tmp / "console").start()
    client = httpx.Client(base_url=server.url, timeout=120)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
    client.post("/login", data={"csrf_token": token, "username": USER, "password": PASSWORD})
    pages = ["/", "/rules/routing", "/rules/scoring", "/rules/hygiene", "/rules/lifecycle", "/draft", "/versions",
             "/why?q=d123456", "/why?q=Deal%2099999", f"/why/deal/{CONN}/d4242", "/ops", "/ops/outbox",
             "/ops/outbox?status=failed", "/ops/quarantine", "/audit", "/draft/impact?days=365",
             "/reports/funnel"]
    t0 = time.perf_counter()
    server.console.funnel.get()  # the funnel is computed in the background; time it, then its page
    server.console.funnel.wait(1200)
    funnel_s = time.perf_counter() - t0
    print(f"{now_utc():%Y-%m-%d %H:%M} UTC; {args.repeat} requests per page after a warm-up")
    print(f"{'page':<34} {'median ms':>10} {'worst ms':>10} {'server ms':>10} {'bytes':>9}")
    try:
        for path in pages:
            t0 = time.perf_counter()
            response = client.get(path)  # warm-up (also checks the page answers)
            warm = time.perf_counter() - t0
            if response.status_code != 200:
                print(f"{path:<34} HTTP {response.status_code}")
                continue
            times, server_ms = [], []
            for _ in range(args.repeat if warm < 2 else 1):  # slow pages: one timed request
                t0 = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                server_ms.append(float(response.headers["server-timing"].split("dur=")[1]))
            print(f"{path:<34} {statistics.median(times):>10.1f} {max(times):>10.1f} "
                  f"{statistics.median(server_ms):>10.1f} {len(response.content):>9,}")
        print(f"funnel report computed in the background in {funnel_s:.1f} s (then cached for 10 minutes)")
    finally:
        server.stop()
        store.close()
        if not args.store_url:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
