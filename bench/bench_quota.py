"""Backfill wall time against the floor the CRM's documented rate limits allow (figures, never asserted).

The sandbox runs in its own process (``crmsync sandbox serve``) with each CRM's documented limits
switched on through its knobs; crmsync backfills deals into a fresh SQLite store in this process.
Per CRM it prints the wall time, the floor the limits imply for the fewest calls a complete backfill
can make (records / page size / allowed rate), wall/floor (target <= 1.10), the 429s the sandbox
answered (target 0), crmsync's CPU seconds and peak RSS (this process only), and the sandbox's
CPU seconds during the backfill (it shares the machine's cores, so it bounds the wall time too).

Limits (sources in docs/api-facts.md, "Rate limits used by bench_quota"):
- hubspot: Professional private app, 190 requests per rolling 10 s and 500,000 a day; search 5/s
  (its own limit; the search endpoints are exempt from the ten-second one). Floor: calls of 50
  deals (the most a call carrying stage histories may read; 100, the list page, with
  ``--option stage_history=false``) at 19/s;
- salesforce: the org's daily API allocation (Enterprise base 100,000 requests / 24 h); Salesforce
  has no per-second request limit, so the floor is not set by the limits (printed as n/a) and the
  figure that matters is the share of the allocation the backfill spends;
- pipedrive: Growth plan, 40 requests per rolling 2 s per api token, token budget 30,000 x 2 x 10
  seats = 600,000 tokens a day (GET /api/v2/deals costs 10). Floor: pages of 500 at 20/s (or the
  token budget, whichever binds).

    python bench/bench_quota.py                    # 20,000 deals, quick
    python bench/bench_quota.py --deals 100000
    python bench/bench_quota.py --deals 1000000 --crm hubspot
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pull import sandbox_calls, start_sandbox  # noqa: E402
from crm_runs import connection_options, run_each_crm  # noqa: E402

from crmsync.connectors import build_connector  # noqa: E402
from crmsync.settings import ConnectionSettings  # noqa: E402
from crmsync.store import Store  # noqa: E402
from crmsync.sync.engine import SyncEngine  # noqa: E402

# the documented limits, as sandbox knobs
LIMITS: dict[str, dict[str, Any]] = {
    "hubspot": {"burst_limit": 190, "burst_window_s": 10.0, "daily_limit": 500_000, "search_per_second": 5},
    "salesforce": {"burst_limit": None, "daily_limit": 100_000, "search_per_second": None},
    "pipedrive": {"burst_limit": 40, "burst_window_s": 2.0, "daily_limit": 600_000, "search_per_second": None},
}
# Pipedrive has no batch stage history: one changelog call (20 tokens) per deal that moved, at the
# burst limit (~20/s) and far past a day's token budget for 100,000 deals; its pull is measured
# without it (``--option stage_history=true`` to include it; ``crmsync backfill --dry-run`` shows it).
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {"pipedrive": {"stage_history": False}}
PAGE = {"hubspot": 100, "salesforce": 50_000, "pipedrive": 500}  # list page; Bulk 2.0 results page; v2 list
TOKENS_PER_PAGE = {"pipedrive": 10}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of another process so far (Linux /proc; the sandbox shares this machine's cores)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def page_size(crm: str, options: dict[str, Any]) -> int:
    """HubSpot deals carry their stage history (``stage_history``, on by default): a list or batch
    read asking for property histories takes 50 objects, so 50 deals a call is the least any
    complete read of deals with histories can do under the ten-second limit."""
    if crm == "hubspot" and options.get("stage_history", True):
        return 50
    return PAGE[crm]


def floor_seconds(crm: str, deals: int, options: dict[str, Any]) -> float | None:
    """The least wall time the limits allow for the fewest calls (None: the limits set no rate)."""
    limits = LIMITS[crm]
    if limits["burst_limit"] is None:
        return None
    pages = math.ceil(deals / page_size(crm, options))
    rate = limits["burst_limit"] / limits["burst_window_s"]
    seconds = pages / rate
    tokens = TOKENS_PER_PAGE.get(crm)
    if tokens is not None and pages * tokens > limits["daily_limit"]:
        seconds = max(seconds, 86_400.0 * pages * tokens / limits["daily_limit"])
    return seconds


def bench_crm(crm: str, deals: int, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-quota-{crm}-") as tmp:
        state_dir = Path(tmp)
        proc, entry = start_sandbox(crm, deals, seed, state_dir)
        try:
            entry["objects"] = ["deals"]
            entry["options"] = {**entry.get("options", {}), **options}
            conn = ConnectionSettings.model_validate(entry)
            verify: Any = str(conn.ca_bundle) if conn.ca_bundle else True
            base = str(conn.base_url)
            httpx.put(f"{base}/_sandbox/knobs", verify=verify, json=LIMITS[crm]).raise_for_status()
            httpx.post(f"{base}/_sandbox/counters", verify=verify).raise_for_status()  # counters and limiter reset
            store = Store.open(f"sqlite:///{state_dir / 'bench.db'}")
            store.upgrade()
            engine = SyncEngine(store, build_connector(conn), conn)
            t0, cpu0, sandbox0 = time.perf_counter(), time.process_time(), process_cpu_seconds(proc.pid)
            result = engine.backfill("deals")
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            sandbox_cpu = process_cpu_seconds(proc.pid) - sandbox0
            calls = sandbox_calls(base, verify)
            counters = httpx.get(f"{base}/_sandbox/counters", verify=verify).json()
            engine.connector.close()
            store.close()
            return {"crm": crm, "status": result.status, "complete": result.complete, "records": result.records,
                    "wall": wall, "cpu": cpu, "sandbox_cpu": sandbox_cpu, "rss": peak_rss_mb(), "calls": calls,
                    "r429": int(counters["by_status"].get("429", 0)), "floor": floor_seconds(crm, deals, options),
                    "daily_used": counters["limits"]["daily_used"], "daily_limit": counters["limits"]["daily_limit"]}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def line(r: dict[str, Any]) -> str:
    floor = r["floor"]
    if floor is None:
        bound = (f"floor n/a (no per-second limit; {r['daily_used']:,} of the daily {r['daily_limit']:,} "
                 f"= {r['daily_used'] / r['daily_limit']:.2%})")
    else:
        bound = f"floor {floor:.1f}s, wall/floor {r['wall'] / floor:.2f}"
    return (f"{r['crm']:<11} {r['status']:<7} complete={r['complete']} {r['records']:,} deals | wall {r['wall']:.1f}s "
            f"| {bound} | calls {r['calls']:,} | 429s {r['r429']} | CPU {r['cpu']:.1f}s (sandbox {r['sandbox_cpu']:.1f}s) | peak RSS {r['rss']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=20_000, help="deals per CRM (100000, 1000000 for the figures)")
    parser.add_argument("--crm", default="hubspot,salesforce,pipedrive")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a connection option for the backfill (YAML value), e.g. backfill_via=search")
    args = parser.parse_args()
    crms = args.crm.split(",")
    if len(crms) > 1:
        run_each_crm(__file__, crms, args.deals, args.seed, args.option,
                     f"bench_quota: {args.deals:,} deals per CRM, documented limits on")
        return
    options = connection_options(args.option)
    options = {**DEFAULT_OPTIONS.get(crms[0], {}), **options}
    shown = " ".join(f"{k}={v}" for k, v in options.items())
    print(line(bench_crm(crms[0], args.deals, args.seed, options)) + (f" | options {shown}" if shown else ""),
          flush=True)


if __name__ == "__main__":
    main()
