"""The worker's /metrics scraped over HTTP and parsed with the client library's parser: names,
types and units follow the Prometheus conventions (see crmsync.runtime.metrics)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

from crmsync.runtime import schedule_state
from crmsync.runtime.embedded import EmbeddedWorker
from crmsync.settings import load_settings
from crmsync.store import OutboxItem, Store

from .conftest import PipedriveSandbox, wait_for, write_config

SCHEDULE = {"interval_seconds": 3600, "rules_after_sync": False}


def test_metrics_names_types_and_units(tmp_path: Path, pipedrive_sandbox: PipedriveSandbox) -> None:
    pipedrive_sandbox.sim.knobs.update({"daily_limit": 50_000})  # so the CRM states its token budget
    config = write_config(tmp_path / "crmsync.yaml", f"sqlite:///{tmp_path / 'store.db'}",
                          [pipedrive_sandbox.connection(0, schedule=SCHEDULE),
                           pipedrive_sandbox.connection(1, schedule=SCHEDULE, enabled=False)])
    settings = load_settings(config)
    store = Store.open(settings.store.url)
    worker = EmbeddedWorker(settings, store, http_port=0).start()
    try:
        assert worker.http is not None
        wait_for(lambda: schedule_state.load(store, "pd-00").get("last_status") == "ok", 30, "pd-00 to sync")
        store.enqueue(OutboxItem(connection="pd-00", object_name="deals", operation="update", source_id="1",
                                 fields={"title": "x"}, idempotency_key="metrics-test"))
        response = httpx.get(f"{worker.http.url}/metrics")
        openmetrics = httpx.get(f"{worker.http.url}/metrics", headers={"Accept": "application/openmetrics-text"})
    finally:
        worker.stop()
        store.close()
    assert response.status_code == 200
    assert response.headers["content-type"] == choose_encoder("")[1]  # the client library's own
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}

    def samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for s in families[name].samples
                if s.name in (name, name + "_total")}

    expected_types = {
        "crmsync_store_up": "gauge", "crmsync_last_success_timestamp_seconds": "gauge",
        "crmsync_runs": "counter", "crmsync_api_calls": "counter", "crmsync_api_quota_remaining_tokens": "gauge",
        "crmsync_api_quota_limit_tokens": "gauge", "crmsync_api_quota_remaining_calls": "gauge",
        "crmsync_outbox_items": "gauge", "crmsync_outbox_oldest_pending_timestamp_seconds": "gauge",
        "crmsync_decisions": "counter", "crmsync_cycles": "counter", "crmsync_step_duration_seconds": "histogram",
        "crmsync_records_pulled": "counter", "crmsync_records_pushed": "counter", "crmsync_webhooks": "counter",
        "crmsync_build_info": "gauge", "process_cpu_seconds": "counter", "process_resident_memory_bytes": "gauge",
        "python_info": "gauge", "python_gc_collections": "counter",
    }
    for name, kind in expected_types.items():
        assert name in families, name
        assert families[name].type == kind, (name, families[name].type)
    # units: seconds and bytes in names, timestamps as Unix seconds, no never-synced +Inf
    now = time.time()
    [finished] = samples("crmsync_last_success_timestamp_seconds").items()
    assert finished[0] == (("connection", "pd-00"), ("kind", "sync")) and now - 120 < finished[1] <= now
    assert "pd-01" not in response.text.split("crmsync_last_success")[1].split("# HELP")[0]
    assert all(v != float("inf") for f in families.values() for v in (s.value for s in f.samples))
    oldest = samples("crmsync_outbox_oldest_pending_timestamp_seconds")[()]
    assert now - 120 < oldest <= now
    assert samples("crmsync_runs")[(("connection", "pd-00"), ("kind", "sync"), ("status", "ok"))] >= 1
    tokens = samples("crmsync_api_quota_remaining_tokens")[(("connection", "pd-00"),)]
    assert 0 < tokens < 50_000 and samples("crmsync_api_quota_limit_tokens")[(("connection", "pd-00"),)] == 50_000
    assert not samples("crmsync_api_quota_remaining_calls")  # Pipedrive states tokens, not calls
    assert samples("crmsync_records_pulled")[(("connection", "pd-00"), ("object", "deals"))] > 0
    steps = {s.labels["step"] for s in families["crmsync_step_duration_seconds"].samples
             if s.name.endswith("_count")}
    assert {"sync", "rules", "outbox"} <= steps
    build = families["crmsync_build_info"].samples[0].labels
    assert build["version"] and build["python"]
