"""Pull throughput per CRM: a large sandbox (its own process) backfilled into a fresh SQLite store.

Prints, per CRM: deals/s end to end, API calls used against the minimum possible
(records / largest page) and against the protocol's honest minimum (below), peak RSS of this
process (the crmsync side only: the sandbox runs in another process), and the API calls and
records of an incremental cycle after N changes (made after the backfill has handed over).

Honest minimum, per CRM (what no client of that API can avoid for a complete, checked backfill):
- salesforce: records / 50,000 Bulk 2.0 result pages + 1 job create + 1 job status + 1 COUNT()
  for the completeness check (the pre-pull COUNT() that chooses Bulk over REST is one more call);
- hubspot: records / 200 search pages + records / 1,000 association batch reads per associated
  type (deal->companies and deal->contacts: the search API returns no associations; v4 batch read
  takes 1,000 ids) + 1 archived-list call + 1 search for the completeness count;
- pipedrive: records / 500 list pages + 1 deleted-deals pass + 1 summary call for the count.

    python bench/bench_pull.py --deals 1000000 --crm salesforce,hubspot,pipedrive --changes 1000

The sandbox's rate limits are off here (this measures crmsync, not the CRM's quota); with real
quotas the same calls are simply spread over more time.
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select

from crmsync.connectors import build_connector
from crmsync.sandbox.runner import DEAL_NAME_FIELD, DEAL_OBJECT
from crmsync.settings import ConnectionSettings
from crmsync.store import Store
from crmsync.store.tables import record_table
from crmsync.sync.engine import SyncEngine

LARGEST_PAGE = {"salesforce": 50_000, "hubspot": 200, "pipedrive": 500}  # Bulk 2.0 results page; search; v2 list
BENCH_OPTIONS: dict[str, dict[str, Any]] = {
    "salesforce": {"bulk_threshold": 100_000, "bulk_page_size": 50_000, "bulk_poll_seconds": 0.2},
    "hubspot": {"backfill_via": "search", "search_per_second": 1000, "limits_raised": True},
    "pipedrive": {"page_limit": 500},
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_sandbox(crm: str, deals: int, seed: int, state_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    config_path = state_dir / "crmsync.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "crmsync.cli", "sandbox", "serve", "--deals", str(deals),
                             "--seed", str(seed), "--systems", crm, "--state-dir", str(state_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not config_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"sandbox for {crm} did not start")
        time.sleep(0.5)
    time.sleep(0.2)
    document = yaml.safe_load(config_path.read_text())
    return proc, document["connections"][0]


def sandbox_calls(base_url: str, verify: Any) -> int:
    """Requests the sandbox has counted (``/_sandbox`` calls are not counted). The count of a
    request is written just after its response went out, so read until two reads agree."""
    last = -1
    while True:
        total = int(httpx.get(f"{base_url}/_sandbox/counters", verify=verify).json()["total"])
        if total == last:
            return total
        last = total
        time.sleep(0.05)


def honest_minimum(crm: str, deals: int) -> int:
    """See the module docstring: result pages plus the calls the protocol itself requires."""
    if crm == "salesforce":
        return math.ceil(deals / 50_000) + 3
    if crm == "hubspot":
        return math.ceil(deals / 200) + 2 * math.ceil(deals / 1_000) + 2
    return math.ceil(deals / 500) + 2


def first_ids(store: Store, connection: str, n: int) -> list[str]:
    """The first ``n`` stored deal ids, read with LIMIT (not the whole table into memory)."""
    table = record_table("deal")
    query = (select(table.c.source_id).where(table.c.connection == connection)
             .order_by(table.c.source_id).limit(n))
    with store.engine.connect() as db:
        return [str(row[0]) for row in db.execute(query)]


def disable_limits(base_url: str, verify: Any) -> None:
    httpx.put(f"{base_url}/_sandbox/knobs", verify=verify,
              json={"burst_limit": None, "daily_limit": None, "search_per_second": None}).raise_for_status()


def bench_crm(crm: str, deals: int, seed: int, changes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-pull-{crm}-") as tmp:
        state_dir = Path(tmp)
        t0 = time.perf_counter()
        proc, entry = start_sandbox(crm, deals, seed, state_dir)
        started = time.perf_counter() - t0
        try:
            entry["objects"] = ["deals"]
            entry["options"] = BENCH_OPTIONS[crm]
            conn = ConnectionSettings.model_validate(entry)
            verify: Any = str(conn.ca_bundle) if conn.ca_bundle else True
            disable_limits(str(conn.base_url), verify)
            store = Store.open(f"sqlite:///{state_dir / 'bench.db'}")
            store.upgrade()
            engine = SyncEngine(store, build_connector(conn), conn)
            before = sandbox_calls(str(conn.base_url), verify)
            t1, cpu1 = time.perf_counter(), time.process_time()
            result = engine.backfill("deals")
            seconds, cpu = time.perf_counter() - t1, time.process_time() - cpu1
            calls = sandbox_calls(str(conn.base_url), verify) - before
            backfill_rss = peak_rss_mb()
            minimum = math.ceil(deals / LARGEST_PAGE[crm])
            # The first cycle hands over from the backfill's high-water mark (it re-reads the
            # lookback window); then `changes` edits made as a CRM user would, then the measured cycle.
            engine.run("deals", mode="sync")
            ids = first_ids(store, conn.name, changes)
            with httpx.Client(verify=verify, timeout=60) as client:
                for n, deal_id in enumerate(ids):
                    client.patch(f"{conn.base_url}/_sandbox/objects/{DEAL_OBJECT[crm]}/{deal_id}",
                                 json={DEAL_NAME_FIELD[crm]: f"bench edit {n}"}).raise_for_status()
            before_inc = sandbox_calls(str(conn.base_url), verify)
            incremental = engine.run("deals", mode="sync")
            inc_calls = sandbox_calls(str(conn.base_url), verify) - before_inc
            engine.connector.close()
            store.close()
            return {"crm": crm, "status": result.status, "complete": result.complete, "records": result.records,
                    "seconds": seconds, "deals_per_s": result.records / seconds if seconds else 0.0,
                    "cpu_us_per_deal": cpu * 1e6 / result.records if result.records else 0.0,
                    "calls": calls, "minimum": minimum, "ratio": calls / minimum,
                    "honest": honest_minimum(crm, deals), "backfill_rss_mb": backfill_rss, "peak_rss_mb": peak_rss_mb(),
                    "sandbox_start_s": started, "incremental_records": incremental.records,
                    "incremental_calls": inc_calls}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--crm", default="salesforce,hubspot,pipedrive")
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    crms = args.crm.split(",")
    if len(crms) > 1:  # one process per CRM, so each peak RSS is that CRM's own
        print(f"bench_pull: {args.deals:,} deals per CRM into SQLite; incremental after {args.changes:,} edits")
        for crm in crms:
            subprocess.run([sys.executable, __file__, "--deals", str(args.deals), "--crm", crm,
                            "--changes", str(args.changes), "--seed", str(args.seed)], check=True)
        return
    for crm in crms:
        r = bench_crm(crm, args.deals, args.seed, args.changes)
        print(f"{r['crm']:<11} {r['status']:<7} complete={r['complete']} {r['records']:,} deals in {r['seconds']:.1f}s "
              f"= {r['deals_per_s']:,.0f} deals/s ({r['cpu_us_per_deal']:.0f} us crmsync CPU per deal) | API calls {r['calls']:,} vs minimum {r['minimum']:,} "
              f"({r['ratio']:.2f}x), honest minimum {r['honest']:,} ({r['calls'] / r['honest']:.2f}x) | peak RSS "
              f"{r['backfill_rss_mb']:.0f} MB after the backfill, {r['peak_rss_mb']:.0f} MB at the end | "
              f"incremental after {args.changes:,} "
              f"changes: {r['incremental_records']:,} records, {r['incremental_calls']} calls "
              f"(sandbox start {r['sandbox_start_s']:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
