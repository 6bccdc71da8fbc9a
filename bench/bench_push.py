"""Push throughput and API-call efficiency: N deal field updates per CRM through the outbox drain.

Each CRM's simulator is served on loopback (Salesforce over TLS); N update rows are enqueued and
one ``drain`` pushes them. Printed per CRM: the requests the simulator received during the drain,
the ideal (records / batch size), their ratio, seconds and records per second.

Modes:
- ``plain``: updates without ``based_on_modified_at`` (the target: calls <= 1.05 x records / batch);
- ``conditional``: every update carries the timestamp its decision was based on, so the connector
  first reads the records' modification times (Salesforce one SOQL per 200, HubSpot one batch
  read per 100, Pipedrive one list read per 100) before writing: about 2x the calls, by design.

Usage: python bench/bench_push.py [--records 10000] [--crm salesforce,hubspot,pipedrive]
                                  [--mode plain,conditional] [--store-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

from crmsync.connectors import build_connector
from crmsync.sandbox.core import LocalCA, SandboxServer
from crmsync.sandbox.world import generate_world
from crmsync.settings import ConnectionSettings
from crmsync.store import OutboxItem, Store
from crmsync.sync.outbox import BATCH_SIZES, drain

DEAL_OBJECT = {"salesforce": "Opportunity", "hubspot": "deals", "pipedrive": "deals"}
IDEAL_BATCH = {"salesforce": 200, "hubspot": 100, "pipedrive": 1}


def simulator(kind: str, deals: int) -> tuple[Any, dict[str, str]]:
    world = generate_world(seed=11, deals=deals)
    if kind == "salesforce":
        from crmsync.sandbox.salesforce import SalesforceSimulator, SandboxCredentials

        c = SandboxCredentials()
        return SalesforceSimulator(world), {"client_id": c.client_id, "client_secret": c.client_secret,
                                            "username": c.username, "password": c.password}
    if kind == "hubspot":
        from crmsync.sandbox.hubspot import SANDBOX_TOKEN, HubSpotSimulator

        return HubSpotSimulator(world), {"access_token": SANDBOX_TOKEN}
    from crmsync.sandbox.pipedrive import DEFAULT_TOKEN, PipedriveSimulator

    return PipedriveSimulator(world), {"api_token": DEFAULT_TOKEN}


def record_ids(kind: str, sim: Any) -> list[str]:
    key = "Id" if kind == "salesforce" else "id"
    return [str(r[key]) for r in sim.truth(DEAL_OBJECT[kind])]


def run_one(kind: str, mode: str, records: int, store_url: str, ca: LocalCA) -> dict[str, Any]:
    sim, credentials = simulator(kind, records)
    tls = ca if kind == "salesforce" else None
    server = SandboxServer(sim.build_app(), tls=tls, name=kind).start()
    try:
        conn = ConnectionSettings(name=f"bench-{kind[:2]}", kind=kind, base_url=server.url,  # type: ignore[arg-type]
                                  ca_bundle=tls.ca_path if tls else None, credentials=credentials)
        store = Store.open(store_url)
        store.upgrade()
        ids = record_ids(kind, sim)[:records]
        based_on = dt.datetime.now(dt.UTC) if mode == "conditional" else None
        with store.transaction() as tx:
            for n, record_id in enumerate(ids):
                tx.enqueue(OutboxItem(connection=conn.name, object_name="deals", operation="update",
                                      source_id=record_id, fields={"name": f"bench {mode} {n}"},
                                      based_on_modified_at=based_on,
                                      idempotency_key=f"bench:{kind}:{mode}:{record_id}"))
        connector = build_connector(conn)
        try:
            sim.log.reset()
            started = time.perf_counter()
            result = drain(store, connector, conn)
            seconds = time.perf_counter() - started
        finally:
            connector.close()
        calls = int(sim.log.snapshot()["total"])
        store.close()
    finally:
        server.stop()
    ideal = -(-len(ids) // IDEAL_BATCH[kind])
    return {"crm": kind, "mode": mode, "records": len(ids), "done": result.done, "failed": result.failed,
            "conflicts": result.conflicts, "batch": BATCH_SIZES[kind] if kind != "pipedrive" else 1,
            "calls": calls, "ideal": ideal, "ratio": calls / ideal if ideal else 0.0, "seconds": seconds,
            "rate": len(ids) / seconds if seconds else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--crm", default="salesforce,hubspot,pipedrive")
    parser.add_argument("--mode", default="plain,conditional")
    parser.add_argument("--store-url", default=None, help="default: a SQLite file in a temp dir (fresh per run)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="crmsync-bench-push-"))
    ca = LocalCA.create(workdir / "ca")
    print(f"{'crm':<11} {'mode':<12} {'records':>7} {'done':>6} {'failed':>6} {'calls':>6} {'ideal':>6} "
          f"{'ratio':>6} {'seconds':>8} {'rec/s':>8}")
    for mode in args.mode.split(","):
        for kind in args.crm.split(","):
            url = args.store_url or f"sqlite:///{workdir / f'{kind}-{mode}.db'}"
            row = run_one(kind, mode, args.records, url, ca)
            print(f"{row['crm']:<11} {row['mode']:<12} {row['records']:>7} {row['done']:>6} {row['failed']:>6} "
                  f"{row['calls']:>6} {row['ideal']:>6} {row['ratio']:>6.3f} {row['seconds']:>8.2f} "
                  f"{row['rate']:>8.0f}", flush=True)
    print("ratio = requests the simulator received during the drain / ceil(records / CRM batch size); "
          "target for plain updates: <= 1.05 (Salesforce 200, HubSpot 100; Pipedrive writes one record per call)")


if __name__ == "__main__":
    main()
