"""Prometheus metrics of the worker.

Most figures are read from the store at scrape time, so every worker of a distributed deployment
reports the same numbers (whichever worker ran the cycle):

- ``crmsync_sync_lag_seconds{connection}``: now minus the end of the last successful sync run
  (+Inf for a connection never synced);
- ``crmsync_api_calls_total{connection}``: crmsync's API calls, from the per-day budget counters;
- ``crmsync_api_quota_remaining{connection}``: the daily quota left as the CRM last reported it;
- ``crmsync_outbox_depth{status}``: outbox rows per status;
- ``crmsync_decisions_total{rule}``: decision-log entries per rule;
- ``crmsync_errors_total{connection,kind}``: failed runs per connection and run kind.

Process-local counters: ``crmsync_worker_cycles_total{connection,status}`` and
``crmsync_webhooks_total{source,result}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from crmsync.logging import get_logger
from crmsync.model import now_utc
from crmsync.runtime import schedule_state
from crmsync.runtime.pipeline import CycleReport
from crmsync.store import Store
from crmsync.store import tables as t
from crmsync.sync.budget import NAMESPACE as BUDGET_NS

log = get_logger("crmsync.runtime.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StoreCollector(Collector):
    def __init__(self, store: Store, connections: Iterable[str]) -> None:
        self.store = store
        self.connections = list(connections)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("crmsync_store_up", "1 when the store answered the metrics queries")
        try:
            metrics = list(self._collect())
        except Exception as exc:  # noqa: BLE001 - a scrape must answer even when the store is down
            log.warning("metrics.store_unreachable", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _collect(self) -> Iterator[Metric]:
        now = now_utc()
        runs = t.runs.c
        with self.store.engine.connect() as conn:
            last_ok = dict(conn.execute(
                select(runs.connection, func.max(runs.finished_at))
                .where(runs.kind == "sync", runs.status == "ok", runs.connection.is_not(None))
                .group_by(runs.connection)
            ).all())
            errors = conn.execute(
                select(runs.connection, runs.kind, func.count())
                .where(runs.status == "failed").group_by(runs.connection, runs.kind)
            ).all()
            d = t.decisions.c
            decisions = conn.execute(select(d.rule_name, func.count()).group_by(d.rule_name)).all()
            kv = t.kv_state.c
            budget_rows = conn.execute(select(kv.key, kv.value).where(kv.namespace == BUDGET_NS)).all()

        lag = GaugeMetricFamily("crmsync_sync_lag_seconds", "Seconds since the last successful sync",
                                labels=["connection"])
        for name in sorted(set(self.connections) | {c for c in last_ok if c}):
            finished = last_ok.get(name)
            lag.add_metric([name], (now - finished).total_seconds() if finished else math.inf)
        yield lag

        calls: dict[str, int] = {}
        for key, value in budget_rows:
            connection = key.rsplit(":", 1)[0]
            if isinstance(value, dict):
                calls[connection] = calls.get(connection, 0) + int(value.get("calls", 0))
        api = CounterMetricFamily("crmsync_api_calls", "API calls made by crmsync", labels=["connection"])
        for name in sorted(set(self.connections) | set(calls)):
            api.add_metric([name], calls.get(name, 0))
        yield api

        quota = GaugeMetricFamily("crmsync_api_quota_remaining", "Daily API quota left as last reported by the CRM",
                                  labels=["connection"])
        for name, usage in sorted(schedule_state.load_all(self.store, schedule_state.USAGE_NS).items()):
            if usage.get("remaining") is not None:
                quota.add_metric([name], float(usage["remaining"]))
        yield quota

        depth = GaugeMetricFamily("crmsync_outbox_depth", "Outbox rows per status", labels=["status"])
        counts = self.store.outbox_counts()
        for status in sorted(set(counts) | {"pending", "in_flight"}):
            depth.add_metric([status], counts.get(status, 0))
        yield depth

        rules = CounterMetricFamily("crmsync_decisions", "Decisions logged per rule", labels=["rule"])
        for rule, n in sorted(decisions):
            rules.add_metric([rule], n)
        yield rules

        errs = CounterMetricFamily("crmsync_errors", "Failed runs per connection and kind",
                                   labels=["connection", "kind"])
        for connection, kind, n in sorted(errors, key=lambda r: (r[0] or "", r[1])):
            errs.add_metric([connection or "", kind], n)
        yield errs


class WorkerMetrics:
    """The worker's registry: store-derived figures plus this process's counters."""

    def __init__(self, store: Store, connections: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(store, connections))
        self.cycles = Counter("crmsync_worker_cycles", "Connection cycles run by this process",
                              ["connection", "status"], registry=self.registry)
        self.webhooks = Counter("crmsync_webhooks", "Webhook deliveries received by this process",
                                ["source", "result"], registry=self.registry)

    def observe_cycle(self, report: CycleReport) -> None:
        self.cycles.labels(report.connection, report.status).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
