"""Salesforce simulator and connector figures (printed, never asserted).

    python bench/bench_salesforce.py [--deals 1000000] [--pull-deals 100000]

Prints: world generation and simulator build time for N deals, the time of a keyset page
(``WHERE SystemModstamp >= X ORDER BY SystemModstamp, Id LIMIT 2000``) in-process and over HTTPS,
the connector's REST pull throughput and API calls per 1,000 records, and push calls per 1,000 updates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import time

import requests

from crmsync.connectors.base import PushItem
from crmsync.connectors.salesforce import SalesforceConnector, soql
from crmsync.model import parse_timestamp
from crmsync.sandbox import LocalCA, SandboxServer, generate_world
from crmsync.sandbox.salesforce import SalesforceSimulator, parse
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeat: int = 5) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return runs[0], statistics.median(runs[1:] or runs)


def bench_scale(deals: int) -> None:
    start = time.perf_counter()
    world = generate_world(7, deals, now=NOW)
    gen_s = time.perf_counter() - start
    start = time.perf_counter()
    sim = SalesforceSimulator(world)
    build_s = time.perf_counter() - start
    print(f"scale: {deals:,} deals: generate_world {gen_s:.1f}s, SalesforceSimulator build {build_s:.1f}s, "
          f"max RSS {rss_mb():,.0f} MB")
    for name in ("Account", "Contact", "Lead", "OpportunityLineItem"):
        start = time.perf_counter()
        rows = len(sim.data.table(name))
        print(f"  first use of {name}: {rows:,} rows registered in {time.perf_counter() - start:.1f}s")
    table = sim.data.tables["Opportunity"]
    middle = table.order[len(table.order) // 2][0]
    text = soql("SELECT Id, Name, Amount, StageName, CloseDate, OwnerId, SystemModstamp FROM Opportunity "
                "WHERE SystemModstamp >= {} ORDER BY SystemModstamp, Id LIMIT 2000", parse_timestamp(middle))
    query = parse(text)
    cold, warm = timed(lambda: table.select(query, include_deleted=True))
    print(f"keyset page in-process (2,000 rows of {len(table):,}): first {cold:.1f} ms, then median {warm:.1f} ms")
    ca = LocalCA.create()
    server = SandboxServer(sim.build_app(), tls=ca, name="salesforce").start()
    try:
        session = requests.Session()
        session.verify, session.trust_env = str(ca.ca_path), False
        headers = {"Authorization": f"Bearer {sim.issue_session()}"}
        url = f"{server.url}/services/data/v59.0/queryAll/"
        q = {"q": text}
        first, median = timed(lambda: session.get(url, params=q, headers=headers).raise_for_status())
        print(f"keyset page over HTTPS (parse + scan + JSON + TLS): first {first:.1f} ms, median {median:.1f} ms")
        session.close()
    finally:
        server._server.force_exit = True
        server.stop()


def bench_connector(deals: int) -> None:
    sim = SalesforceSimulator(generate_world(7, deals, now=NOW))
    ca = LocalCA.create()
    server = SandboxServer(sim.build_app(), tls=ca, name="salesforce").start()
    try:
        creds = sim.credentials
        conn = ConnectionSettings(name="sf", kind="salesforce", base_url=server.url, ca_bundle=ca.ca_path,
                                  credentials={"client_id": creds.client_id, "client_secret": creds.client_secret,
                                               "username": creds.username, "password": creds.password},
                                  options={"bulk_threshold": 10**9, "bulk_poll_seconds": 0.01})
        connector = SalesforceConnector(conn)
        calls0 = connector.usage.calls
        start = time.perf_counter()
        records = sum(len(p.records) for p in connector.pull("deals", None))
        rest_s = time.perf_counter() - start
        rest_calls = connector.usage.calls - calls0
        print(f"pull REST keyset: {records:,} deals in {rest_s:.1f}s = {records / rest_s:,.0f} records/s, "
              f"{rest_calls * 1000 / records:.2f} calls per 1,000 records")
        connector.bulk_threshold = 1
        calls0 = connector.usage.calls
        start = time.perf_counter()
        records = sum(len(p.records) for p in connector.pull("deals", None, backfill=True))
        bulk_s = time.perf_counter() - start
        print(f"pull Bulk 2.0 backfill: {records:,} deals in {bulk_s:.1f}s = {records / bulk_s:,.0f} records/s, "
              f"{connector.usage.calls - calls0} calls")
        ids = [r["Id"] for r in sim.truth("Opportunity")[:5000]]
        calls0 = connector.usage.calls
        start = time.perf_counter()
        results = connector.push([PushItem("deals", "update", {"NextStep": "bench"}, source_id=i,
                                           based_on_modified_at=NOW + dt.timedelta(days=3650)) for i in ids])
        push_s = time.perf_counter() - start
        assert all(r.ok for r in results)
        print(f"push conflict-checked updates: {len(ids):,} in {push_s:.1f}s, "
              f"{(connector.usage.calls - calls0) * 1000 / len(ids):.1f} calls per 1,000 updates")
        connector.close()
    finally:
        server._server.force_exit = True
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--pull-deals", type=int, default=100_000)
    args = parser.parse_args()
    bench_connector(args.pull_deals)
    bench_scale(args.deals)


if __name__ == "__main__":
    main()
