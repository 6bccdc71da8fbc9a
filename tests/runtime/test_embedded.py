"""The embedded worker: APScheduler cycles per connection, the SQLite lock, SIGTERM with a saved
checkpoint, the HTTP endpoint (health, readiness, metrics) and webhook-triggered syncs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from crmsync.model import ObjectType, parse_timestamp
from crmsync.runtime import schedule_state
from crmsync.runtime.embedded import EmbeddedWorker
from crmsync.runtime.locks import StoreLock, WorkerLockError
from crmsync.runtime.webhooks import hubspot_v3_signature
from crmsync.sandbox.core import Knobs, SandboxServer
from crmsync.sandbox.hubspot.simulator import HubSpotSimulator
from crmsync.sandbox.world import World
from crmsync.settings import load_settings
from crmsync.store import Store

from .conftest import TOKENS, PipedriveSandbox, start_worker, wait_for, write_config

NO_RULES = {"interval_seconds": 3600, "rules_after_sync": False}


def _finished_ok(store: Store, name: str) -> bool:
    state = schedule_state.load(store, name)
    return state.get("last_status") == "ok" and state.get("last_finished_at", "") >= state.get("last_started_at", "~")


def test_scheduler_runs_a_cycle_per_connection_and_serves_metrics(tmp_path: Path, pipedrive_sandbox: PipedriveSandbox,
                                                                   small_world: World) -> None:
    conns = [pipedrive_sandbox.connection(i, schedule=NO_RULES) for i in range(3)]
    secrets = {"pipedrive:pd-01": "hook:pa55word", "hubspot": "hs-app-secret"}
    hubspot = SandboxServer(HubSpotSimulator(small_world, tokens=["hs-token"]).build_app(), name="hubspot").start()
    hub = {"name": "hs-main", "kind": "hubspot", "enabled": True, "base_url": hubspot.url,
           "credentials": {"access_token": "hs-token"}, "objects": ["owners", "deals"], "schedule": NO_RULES}
    config = write_config(tmp_path / "crmsync.yaml", f"sqlite:///{tmp_path / 'store.db'}", [*conns, hub],
                          worker={"webhook_secrets": secrets})
    settings = load_settings(config)
    store = Store.open(settings.store.url)
    worker = EmbeddedWorker(settings, store, http_port=0, debounce_seconds=0.05).start()
    try:
        assert worker.http is not None
        base = worker.http.url
        for conn in conns:
            name = conn["name"]
            wait_for(lambda: _finished_ok(store, name), 30, f"{name} to sync")  # noqa: B023
            assert store.count(ObjectType.DEAL, conn["name"]) == len(small_world.deals)
        # The schedule's next due time lives in crmsync's tables (interval 3600 s from the finish).
        state = schedule_state.load(store, "pd-00")
        gap = parse_timestamp(state["next_due_at"]) - parse_timestamp(state["last_finished_at"])  # type: ignore[operator]
        assert 3599 <= gap.total_seconds() <= 3601

        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "scheduler": "ok"}
        text = httpx.get(f"{base}/metrics").text
        for conn in conns:
            success = next(line for line in text.splitlines() if line.startswith(
                f'crmsync_last_success_timestamp_seconds{{connection="{conn["name"]}",kind="sync"}}'))
            assert 0 <= time.time() - float(success.split()[-1]) < 60
            calls = next(line for line in text.splitlines()
                         if line.startswith(f'crmsync_api_calls_total{{connection="{conn["name"]}"}}'))
            assert float(calls.split()[-1]) >= 4
        assert 'crmsync_outbox_items{status="pending"} 0.0' in text
        assert "crmsync_runs_total" in text and "crmsync_decisions_total" in text

        # Pipedrive webhook: wrong credentials refused, right ones trigger an immediate sync.
        hook = {"meta": {"action": "change", "entity": "deal", "entity_id": "5", "version": "2.0"}, "data": {"id": 5}}
        bad = httpx.post(f"{base}/webhooks/pipedrive/pd-01", json=hook, auth=("hook", "nope"))
        assert bad.status_code == 401
        assert httpx.post(f"{base}/webhooks/pipedrive/pd-00", json=hook, auth=("hook", "pa55word")).status_code == 401
        before = schedule_state.load(store, "pd-01")["last_started_at"]
        good = httpx.post(f"{base}/webhooks/pipedrive/pd-01", json=hook, auth=("hook", "pa55word"))
        assert good.status_code == 202 and good.json()["sync"] == {"pd-01": "queued"}
        wait_for(lambda: schedule_state.load(store, "pd-01")["last_started_at"] > before and _finished_ok(store, "pd-01"),
                 15, "the webhook-triggered sync")
        assert schedule_state.load(store, "pd-01")["last_reason"] == "webhook:pipedrive"

        # HubSpot webhook: v3 signature over method + URI + body + timestamp.
        body = b'[{"objectId":77,"subscriptionType":"deal.propertyChange","portalId":1}]'
        url = f"{base}/webhooks/hubspot"
        ts = str(int(time.time() * 1000))
        sig = hubspot_v3_signature("hs-app-secret", "POST", url, body, ts)
        headers = {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": ts, "Content-Type": "application/json"}
        assert httpx.post(url, content=body, headers=headers).status_code == 202
        tampered = httpx.post(url, content=body.replace(b"77", b"78"), headers=headers)
        assert tampered.status_code == 401
        old = str(int(time.time() * 1000) - 6 * 60 * 1000)
        stale = {**headers, "X-HubSpot-Request-Timestamp": old,
                 "X-HubSpot-Signature-v3": hubspot_v3_signature("hs-app-secret", "POST", url, body, old)}
        assert httpx.post(url, content=body, headers=stale).status_code == 401
        metrics = httpx.get(f"{base}/metrics").text
        assert 'crmsync_webhooks_total{result="rejected",source="hubspot"} 2.0' in metrics
        assert 'crmsync_webhooks_total{result="accepted",source="pipedrive"} 1.0' in metrics
        # The secret never appears in what the endpoint says.
        assert "pa55word" not in metrics and "hs-app-secret" not in metrics
    finally:
        worker.stop()
        store.close()
        hubspot.stop()


def test_second_embedded_worker_on_one_sqlite_store_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = StoreLock.for_store(url)
    assert first is not None
    with first:
        second = StoreLock.for_store(url)
        assert second is not None
        with pytest.raises(WorkerLockError, match="already runs on this SQLite store"):
            second.acquire()
        config = write_config(tmp_path / "crmsync.yaml", url, [])
        proc = subprocess.run(
            [sys.executable, "-m", "crmsync.cli", "worker", "--config", str(config), "--http-port", "-1"],
            capture_output=True, timeout=60)
        assert proc.returncode == 3
        assert b"already runs on this SQLite store" in proc.stderr
    # Released: a new worker may take it.
    StoreLock.for_store(url).acquire().release()  # type: ignore[union-attr]


def test_sigterm_mid_sync_exits_with_the_checkpoint_saved(tmp_path: Path, small_world: World) -> None:
    sandbox = PipedriveSandbox(small_world, TOKENS, Knobs(burst_window_s=2.0, latency_ms=100))
    proc: subprocess.Popen[bytes] | None = None
    try:
        conn = sandbox.connection(0, schedule=NO_RULES, options={"page_limit": 10})
        db = tmp_path / "store.db"
        config = write_config(tmp_path / "crmsync.yaml", f"sqlite:///{db}", [conn])
        store = Store.open(f"sqlite:///{db}")
        proc = start_worker(config, "--http-port", "-1", log_path=tmp_path / "worker.log")
        wait_for(lambda: db.exists() and _has_cursor(store, "deals"), 30, "the first deals page", interval=0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        runs = store.last_runs(20, kind="sync", connection="pd-00")
        deals = next(r for r in runs if r.object_name == "deals")
        assert deals.status == "stopped" and deals.error == "stop requested; checkpoint saved"
        assert 0 < deals.counts["records"] < len(small_world.deals)
        saved = store.count(ObjectType.DEAL, "pd-00")
        assert saved == deals.counts["records"]
        assert schedule_state.load(store, "pd-00")["last_status"] == "stopped"
        # A restart resumes from the checkpoint: only the rest is pulled, nothing is lost.
        proc = start_worker(config, "--http-port", "-1", log_path=tmp_path / "worker2.log")
        wait_for(lambda: _finished_ok(store, "pd-00"), 30, "the resumed sync")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert store.count(ObjectType.DEAL, "pd-00") == len(small_world.deals)
        resumed = next(r for r in store.last_runs(20, kind="sync", connection="pd-00") if r.object_name == "deals")
        assert resumed.status == "ok" and resumed.counts["records"] <= len(small_world.deals) - saved + 10
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        sandbox.stop()


def _has_cursor(store: Store, object_name: str) -> bool:
    try:
        return store.load_cursor("pd-00", object_name) is not None
    except Exception:  # noqa: BLE001 - the worker has not created the schema yet
        return False

