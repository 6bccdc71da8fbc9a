"""Worker throughput and edit-to-decision latency.

1. Throughput: 50 Pipedrive connections (one sandbox, one token each) synced from scratch by 1, 2 and
   4 ``crmsync worker --distributed`` processes on a throwaway PostgreSQL database. Prints wall time
   (first cycle start to last cycle end, from crmsync's schedule table), connections/s and deals/s.
2. Latency: an embedded worker (SQLite) with the example rule sets; a deal is created in the sandbox
   and the time until the rules' decision is logged and until its outbox write is pushed back to
   the sandbox is measured, once triggered by a Pipedrive webhook and once by polling (interval 5 s).
3. Speed to lead: an embedded worker against the Salesforce and Outreach simulators with the shipped
   rules (``sequence.yaml`` included); a warm inbound lead (LeadSource Web, unowned) is created in
   Salesforce and the time until it is scored, routed, its enrolment decided and its sequence state
   exists in Outreach is measured, once with the cycle requested at once (the path a webhook takes:
   ``request_sync``; crmsync has no Salesforce webhook receiver, leads live in Salesforce only) and
   once by polling (interval 5 s).

Usage: python bench/bench_worker.py [--deals 1000] [--connections 50] [--workers 1,2,4] [--speed-to-lead-only]
PostgreSQL: CRMSYNC_BENCH_PG_ADMIN (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from crmsync.model import ObjectType, parse_timestamp
from crmsync.runtime import schedule_state
from crmsync.runtime.embedded import EmbeddedWorker
from crmsync.sandbox.core import Knobs, SandboxServer
from crmsync.sandbox.pipedrive import PipedriveSimulator
from crmsync.sandbox.runner import FIELD_MAPPINGS
from crmsync.sandbox.world import generate_world
from crmsync.settings import load_settings
from crmsync.store import Store

PG_ADMIN = os.environ.get("CRMSYNC_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parents[1]


def connection(url: str, i: int, **extra: Any) -> dict[str, Any]:
    conn = {"name": f"pd-{i:02d}", "kind": "pipedrive", "base_url": url, "credentials": {"api_token": f"tok-{i}"},
            "objects": ["owners", "pipelines", "stages", "deals"],
            "field_mappings": FIELD_MAPPINGS["pipedrive"],  # where the example rules' score and grade live
            "schedule": {"interval_seconds": 3600, "rules_after_sync": False}}
    conn.update(extra)
    return conn


def _ts(value: str) -> dt.datetime:
    parsed = parse_timestamp(value)
    assert parsed is not None
    return parsed


def throughput(deals: int, n_conn: int, workers: int, workdir: Path) -> None:
    world = generate_world(seed=3, deals=deals)
    sim = PipedriveSimulator(world, Knobs(burst_window_s=2.0), api_tokens={f"tok-{i}" for i in range(n_conn)})
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    name = f"crmsync_bench_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{PG_ADMIN.removeprefix('postgresql://').rsplit('/', 1)[0]}/{name}"
    procs: list[subprocess.Popen[bytes]] = []
    with SandboxServer(sim.build_app(), name="pipedrive") as server:
        try:
            config = workdir / f"throughput-{workers}.yaml"
            config.write_text(yaml.safe_dump({"store": {"url": url},
                                              "connections": [connection(server.url, i) for i in range(n_conn)]}))
            store = Store.open(url)
            store.upgrade()
            started = time.perf_counter()
            for w in range(workers):
                log = (workdir / f"w{workers}-{w}.log").open("wb")
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "crmsync.cli", "--log-format", "json", "worker", "--distributed",
                     "--config", str(config), "--http-port", "-1", "--concurrency", "2", "--dispatch-every", "1"],
                    stdout=log, stderr=subprocess.STDOUT))
            while True:
                states = schedule_state.load_all(store)
                done = [s for s in states.values() if s.get("last_status") == "ok"]
                if len(done) == n_conn:
                    break
                if time.perf_counter() - started > 600:
                    raise SystemExit(f"timeout: {len(done)}/{n_conn} connections synced")
                time.sleep(0.2)
            wall = time.perf_counter() - started
            first = min(_ts(s["last_started_at"]) for s in states.values())
            last = max(_ts(s["last_finished_at"]) for s in states.values())
            span = (last - first).total_seconds()
            total = sum(store.count(ObjectType.DEAL, f"pd-{i:02d}") for i in range(n_conn))
            print(f"workers={workers}: {n_conn} connections x {deals} deals in {span:6.2f} s of sync "
                  f"({wall:6.2f} s incl. process start): {n_conn / span:6.2f} connections/s, "
                  f"{total / span:9,.0f} deals/s, {sim.log.total:,} API calls")
            store.close()
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()


def latency(deals: int, workdir: Path, trigger: str) -> None:
    world = generate_world(seed=5, deals=deals)
    sim = PipedriveSimulator(world, Knobs(burst_window_s=2.0), api_tokens={"tok-0"})
    with SandboxServer(sim.build_app(), name="pipedrive") as server:
        conn = connection(server.url, 0, schedule={"interval_seconds": 5, "rules_after_sync": True})
        db = workdir / f"latency-{trigger}.db"
        config = workdir / f"latency-{trigger}.yaml"
        config.write_text(yaml.safe_dump({
            "store": {"url": f"sqlite:///{db}"}, "connections": [conn], "rules_dir": str(REPO / "config" / "rules"),
            "worker": {"webhook_secrets": {"pipedrive": "hook:bench-secret"}}}))
        settings = load_settings(config)
        store = Store.open(settings.store.url)
        worker = EmbeddedWorker(settings, store, http_port=0, debounce_seconds=0.05).start()
        try:
            while schedule_state.load(store, "pd-00").get("last_status") != "ok":
                time.sleep(0.1)
            time.sleep(1.0)
            t0 = time.perf_counter()
            deal_id = sim.create("deals", {"title": "Bench latency deal", "value": 25000, "currency": "USD",
                                           "stage_id": 1, "pipeline_id": 1})
            if trigger == "webhook":
                assert worker.http is not None
                hook = {"meta": {"action": "create", "entity": "deal", "entity_id": str(deal_id), "version": "2.0"},
                        "data": {"id": int(deal_id)}}
                httpx.post(f"{worker.http.url}/webhooks/pipedrive/pd-00", json=hook, auth=("hook", "bench-secret"))
            decided = written = None
            while time.perf_counter() - t0 < 30:
                if decided is None and store.decisions(connection="pd-00", source_id=str(deal_id), limit=1):
                    decided = time.perf_counter() - t0
                items = [i for i in store.outbox_items(connection="pd-00") if i.source_id == str(deal_id)]
                if decided is not None and items and all(i.status in ("done", "failed", "parked") for i in items):
                    written = time.perf_counter() - t0
                    break
                time.sleep(0.02)
            status = ", ".join(sorted({i.status for i in store.outbox_items(connection="pd-00")
                                       if i.source_id == str(deal_id)})) or "no outbox rows"
            fmt = lambda v: "n/a" if v is None else f"{v:.2f} s"  # noqa: E731
            errors = {i.last_error for i in store.outbox_items(connection="pd-00")
                      if i.source_id == str(deal_id) and i.last_error}
            print(f"latency by {trigger:7}: edit -> decision logged {fmt(decided)}, -> written back {fmt(written)} "
                  f"(outbox: {status}{'; ' + '; '.join(sorted(errors))[:300] if errors else ''})")
        finally:
            worker.stop()
            store.close()


def speed_to_lead(deals: int, workdir: Path, trigger: str, interval: int = 5) -> None:
    from crmsync.rules.sequence import ENROL_SEQUENCE
    from crmsync.sandbox.runner import start_sandbox

    # the world was last edited an hour ago: steady-state cycles, not the re-reads of a world stamped this second
    handle = start_sandbox(systems=("salesforce", "outreach"), deals=deals, seed=5, state_dir=workdir / trigger,
                           now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    try:
        config = handle.write_config(workdir / f"stl-{trigger}.yaml", store_url=f"sqlite:///{workdir}/stl-{trigger}.db",
                                     rules_dir=str(REPO / "config" / "rules"))
        doc = yaml.safe_load(config.read_text())
        for conn in doc["connections"]:
            conn["schedule"] = {"interval_seconds": interval}
        config.write_text(yaml.safe_dump(doc))
        settings = load_settings(config)
        store = Store.open(settings.store.url)
        worker = EmbeddedWorker(settings, store, http_port=0, debounce_seconds=0.05).start()
        sf, outreach = handle.sims["salesforce"], handle.sims["outreach"]
        try:
            while schedule_state.load(store, "sandbox-sf").get("last_status") != "ok":
                time.sleep(0.1)
            if trigger == "event":  # one more cycle once the backfill's stamps settled: the steady state
                time.sleep(3.0)
                before = schedule_state.load(store, "sandbox-sf").get("last_finished_at")
                worker.request_sync("sandbox-sf", reason="webhook", touched=[])
                while schedule_state.load(store, "sandbox-sf").get("last_finished_at") == before:
                    time.sleep(0.05)
            email = f"speed.{trigger}@inbound.example"
            t0 = time.perf_counter()
            lead_id = sf.create("Lead", {"FirstName": "Speedy", "LastName": "Lead", "Email": email, "Company": "Inbound AG",
                                         "Status": "New", "LeadSource": "Web", "Region__c": "EMEA", "Country": "DE",
                                         "NumberOfEmployees": 80, "OwnerId": None})
            if trigger == "event":
                worker.request_sync("sandbox-sf", reason="webhook", touched=[("lead", str(lead_id))])
            marks: dict[str, float] = {}
            while time.perf_counter() - t0 < 4 * interval + 30 and "enrolled" not in marks:
                now = time.perf_counter() - t0
                decisions = store.decisions(connection="sandbox-sf", source_id=str(lead_id), limit=50)
                for action, mark in (("set_fields", "scored"), ("assign_owner", "routed"), (ENROL_SEQUENCE, "decided")):
                    if mark not in marks and any(d.action == action for d in decisions):
                        marks[mark] = now
                prospects = {p["id"] for p in outreach.truth("prospects") if email in p["attributes"]["emails"]}
                if prospects and any(s["relationships"]["prospect"]["data"]["id"] in prospects
                                     for s in outreach.truth("sequenceStates")):
                    marks["enrolled"] = now
                time.sleep(0.02)
            fmt = lambda k: f"{marks[k]:.2f} s" if k in marks else "n/a"  # noqa: E731
            label = "requested cycle (webhook path)" if trigger == "event" else f"polling every {interval} s"
            print(f"speed to lead, {label:31}: lead created -> scored {fmt('scored')}, routed {fmt('routed')}, "
                  f"enrolment decided {fmt('decided')}, sequence state in Outreach {fmt('enrolled')}")
        finally:
            worker.stop()
            store.close()
    finally:
        handle.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--speed-to-lead-only", action="store_true")
    args = parser.parse_args()
    if args.speed_to_lead_only:
        with tempfile.TemporaryDirectory(prefix="bench-stl-") as tmp:
            speed_to_lead(args.deals, Path(tmp), "event", interval=300)
            speed_to_lead(args.deals, Path(tmp), "polling")
        return
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        workdir = Path(tmp)
        print(f"cpu cores: {os.cpu_count()}; sandbox in this process, workers as subprocesses")
        for n in (int(w) for w in args.workers.split(",")):
            throughput(args.deals, args.connections, n, workdir)
        if not args.skip_latency:
            latency(args.deals, workdir, "webhook")
            latency(args.deals, workdir, "polling")
            speed_to_lead(args.deals, workdir, "event", interval=300)
            speed_to_lead(args.deals, workdir, "polling")


if __name__ == "__main__":
    main()
