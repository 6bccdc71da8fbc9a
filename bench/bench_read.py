"""crmsync's read-side CPU per deal: a connector's backfill pull alone (figures, never asserted).

The sandbox runs in its own process (``crmsync sandbox serve``, rate limits off: this measures
crmsync, not the CRM's quota); this process builds the connector and iterates
``pull("deals", None, backfill=True)`` to the end, without the sync engine or a store: the HTTP
answers, their decoding, the cursor checkpoint and the field mapping to canonical records. Prints
the deals (and quarantined rows) read, wall seconds, crmsync's CPU seconds (``time.process_time``:
this process, every thread, so the read-ahead worker counts) and CPU µs per deal.

    python bench/bench_read.py --deals 100000                 # Pipedrive
    python bench/bench_read.py --deals 100000 --crm hubspot,salesforce
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pull import disable_limits, start_sandbox  # noqa: E402
from crm_runs import connection_options, run_each_crm  # noqa: E402

from crmsync.connectors import build_connector  # noqa: E402
from crmsync.settings import ConnectionSettings  # noqa: E402

# HubSpot: no client-side ten-second limiter (the sandbox's limits are off too)
READ_OPTIONS: dict[str, dict[str, Any]] = {"hubspot": {"limits_raised": True}}


def bench_crm(crm: str, deals: int, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-read-{crm}-") as tmp:
        proc, entry = start_sandbox(crm, deals, seed, Path(tmp))
        try:
            entry["objects"] = ["deals"]
            entry["options"] = {**entry.get("options", {}), **READ_OPTIONS.get(crm, {}), **options}
            conn = ConnectionSettings.model_validate(entry)
            verify: Any = str(conn.ca_bundle) if conn.ca_bundle else True
            disable_limits(str(conn.base_url), verify)
            httpx.post(f"{conn.base_url}/_sandbox/counters", verify=verify).raise_for_status()
            connector = build_connector(conn)
            records = quarantined = pages = 0
            t0, cpu0 = time.perf_counter(), time.process_time()
            for page in connector.pull("deals", None, backfill=True):
                pages += 1
                records += len(page.records)
                quarantined += len(page.quarantined)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            connector.close()
            return {"crm": crm, "records": records, "quarantined": quarantined, "pages": pages, "wall": wall,
                    "cpu": cpu}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def line(r: dict[str, Any]) -> str:
    per_deal = r["cpu"] * 1e6 / r["records"] if r["records"] else 0.0
    return (f"{r['crm']:<11} {r['records']:,} deals ({r['quarantined']} quarantined, {r['pages']:,} pages) "
            f"| wall {r['wall']:.1f}s | CPU {r['cpu']:.2f}s | {per_deal:.1f} us CPU per deal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=20_000, help="deals in the sandbox (100000 for the figures)")
    parser.add_argument("--crm", default="pipedrive", help="pipedrive, hubspot, salesforce (comma-separated)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a connection option for the pull (YAML value), e.g. prefetch_pages=1")
    args = parser.parse_args()
    crms = args.crm.split(",")
    if len(crms) > 1:
        run_each_crm(__file__, crms, args.deals, args.seed, args.option,
                     f"bench_read: {args.deals:,} deals per CRM, connector pull only")
        return
    options = connection_options(args.option)
    print(line(bench_crm(crms[0], args.deals, args.seed, options)), flush=True)


if __name__ == "__main__":
    main()
