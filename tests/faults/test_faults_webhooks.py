"""Webhooks are not replayable: a signed delivery seen before is acknowledged and ignored, on the
worker's real HTTP endpoint, with the deliveries recorded in the real store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from crmsync.runtime.embedded import EmbeddedWorker
from crmsync.runtime.webhooks import hubspot_v3_signature
from crmsync.sandbox.core import Knobs, SandboxServer
from crmsync.sandbox.runner import build_simulator, sandbox_credentials
from crmsync.sandbox.world import generate_world
from crmsync.settings import load_settings
from crmsync.store import Store

NO_RULES = {"interval_seconds": 3600, "rules_after_sync": False}


def _metric(text: str, result: str, source: str) -> float:
    prefix = f'crmsync_webhooks_total{{result="{result}",source="{source}"}}'
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


def test_a_replayed_delivery_is_acknowledged_and_ignored(tmp_path: Path, empty_store_url: Callable[[], str]) -> None:
    world = generate_world(11, 20)
    sims = {kind: build_simulator(kind, world, Knobs()) for kind in ("hubspot", "pipedrive")}
    servers = {kind: SandboxServer(sim.build_app(), name=kind).start() for kind, sim in sims.items()}
    connections = [{"name": f"{kind}-main", "kind": kind, "base_url": servers[kind].url,
                    "credentials": sandbox_credentials(kind, sims[kind]), "objects": ["deals"],
                    "schedule": NO_RULES} for kind in sims]
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"url": empty_store_url()}, "connections": connections, "rules_dir": str(tmp_path / "no-rules"),
        "worker": {"webhook_secrets": {"hubspot": "hs-app-secret", "pipedrive:pipedrive-main": "hook:pa55word"}}}))
    settings = load_settings(config)
    store = Store.open(settings.store.url)
    worker = EmbeddedWorker(settings, store, http_port=0, debounce_seconds=0.05).start()
    try:
        assert worker.http is not None
        base = worker.http.url
        url = f"{base}/webhooks/hubspot"
        body = b'[{"objectId":7,"subscriptionType":"deal.propertyChange","portalId":1}]'
        ts = str(int(time.time() * 1000))
        headers = {"X-HubSpot-Signature-v3": hubspot_v3_signature("hs-app-secret", "POST", url, body, ts),
                   "X-HubSpot-Request-Timestamp": ts, "Content-Type": "application/json"}
        first = httpx.post(url, content=body, headers=headers)
        replay = httpx.post(url, content=body, headers=headers)
        assert first.status_code == 202 and first.json()["accepted"]
        assert replay.status_code == 200 and replay.json() == {"accepted": True, "duplicate": True}

        hook = {"meta": {"action": "change", "entity": "deal", "entity_id": "5", "timestamp": ts}, "data": {"id": 5}}
        pd_url = f"{base}/webhooks/pipedrive/pipedrive-main"
        assert httpx.post(pd_url, json=hook, auth=("hook", "pa55word")).status_code == 202
        assert httpx.post(pd_url, json=hook, auth=("hook", "pa55word")).status_code == 200
        later = {**hook, "meta": {**hook["meta"], "timestamp": str(int(ts) + 1)}}  # a new event: accepted
        assert httpx.post(pd_url, json=later, auth=("hook", "pa55word")).status_code == 202

        metrics = httpx.get(f"{base}/metrics").text
        assert _metric(metrics, "accepted", "hubspot") == 1 and _metric(metrics, "duplicate", "hubspot") == 1
        assert _metric(metrics, "accepted", "pipedrive") == 2 and _metric(metrics, "duplicate", "pipedrive") == 1
    finally:
        worker.stop()
        store.close()
        for server in servers.values():
            server.stop()
