"""Prometheus metrics of the worker, named and typed by the Prometheus conventions (base units,
``_total`` counters, ``_seconds`` durations, ``_timestamp_seconds`` points in time, ``_info``).

Read from the store at scrape time (the same on every worker of a distributed deployment,
whichever worker did the work: aggregate them with ``max``, never ``sum``, or scrape one worker):

- ``crmsync_store_up``: 1 when the store answered the queries below;
- ``crmsync_last_success_timestamp_seconds{connection,kind}``: end of the last successful run per
  run kind (sync, backfill, ...); no series for a connection that never succeeded, so alert with
  ``time() - crmsync_last_success_timestamp_seconds > ...`` or ``absent(...)``;
- ``crmsync_runs_total{connection,kind,status}``: finished runs (ok, failed, stopped) from the run log;
- ``crmsync_api_calls_total{connection}``: crmsync's own API calls (the per-day budget counters);
- ``crmsync_api_quota_remaining_calls{connection}`` / ``crmsync_api_quota_remaining_tokens{connection}``:
  the daily quota left as the CRM last stated it, in its unit (Pipedrive counts tokens), with
  ``crmsync_api_quota_limit_calls`` / ``_tokens`` beside them;
- ``crmsync_outbox_items{status}``: outbox rows per status;
- ``crmsync_outbox_oldest_pending_timestamp_seconds``: when the oldest pending write was queued
  (absent when none is pending);
- ``crmsync_decisions_total{rule}``: decision-log entries per rule.

This process only (a sum across workers is right): ``crmsync_cycles_total{connection,status}``,
``crmsync_step_duration_seconds{connection,step}`` (histogram), ``crmsync_records_pulled_total
{connection,object}``, ``crmsync_records_pushed_total{connection}``, ``crmsync_webhooks_total
{source,result}``; the client library's process, platform and GC collectors; and
``crmsync_build_info{version,python}``. The endpoint's format and content type are the client library's choice for the scraper's
``Accept`` header (text 0.0.4, or OpenMetrics).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from crmsync.logging import get_logger
from crmsync.runtime import schedule_state
from crmsync.runtime.pipeline import CycleReport
from crmsync.store import Store
from crmsync.store import outbox as store_outbox
from crmsync.store import tables as t
from crmsync.sync.budget import NAMESPACE as BUDGET_NS

log = get_logger("crmsync.runtime.metrics")
#: the unit each CRM states its daily quota in
QUOTA_UNIT = {"pipedrive": "tokens"}  # the others: calls
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class StoreCollector(Collector):
    def __init__(self, store: Store, connections: Iterable[str], kinds: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.connections = list(connections)
        self.kinds = dict(kinds or {})

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
        runs = t.runs.c
        with self.store.engine.connect() as conn:
            last_ok = conn.execute(
                select(runs.connection, runs.kind, func.max(runs.finished_at))
                .where(runs.status == "ok", runs.connection.is_not(None), runs.finished_at.is_not(None))
                .group_by(runs.connection, runs.kind)
            ).all()
            finished = conn.execute(
                select(runs.connection, runs.kind, runs.status, func.count())
                .where(runs.status != "running").group_by(runs.connection, runs.kind, runs.status)
            ).all()
            d = t.decisions.c
            decisions = conn.execute(select(d.rule_name, func.count()).group_by(d.rule_name)).all()
            kv = t.kv_state.c
            budget_rows = conn.execute(select(kv.key, kv.value).where(kv.namespace == BUDGET_NS)).all()
            oldest_pending = store_outbox.oldest_pending_at(conn)

        success = GaugeMetricFamily("crmsync_last_success_timestamp_seconds",
                                    "Unix time the last successful run of this kind finished",
                                    labels=["connection", "kind"])
        for connection, kind, at in sorted(last_ok, key=lambda r: (r[0], r[1])):
            success.add_metric([connection, kind], at.timestamp())
        yield success

        total = CounterMetricFamily("crmsync_runs", "Finished runs per connection, kind and status",
                                    labels=["connection", "kind", "status"])
        for connection, kind, status, n in sorted(finished, key=lambda r: (r[0] or "", r[1], r[2])):
            total.add_metric([connection or "", kind, status], n)
        yield total

        calls: dict[str, int] = {}
        for key, value in budget_rows:
            connection = key.rsplit(":", 1)[0]
            if isinstance(value, dict):
                calls[connection] = calls.get(connection, 0) + int(value.get("calls", 0))
        api = CounterMetricFamily("crmsync_api_calls", "API calls made by crmsync", labels=["connection"])
        for name in sorted(set(self.connections) | set(calls)):
            api.add_metric([name], calls.get(name, 0))
        yield api

        yield from self._quota()

        depth = GaugeMetricFamily("crmsync_outbox_items", "Outbox rows per status", labels=["status"])
        counts = self.store.outbox_counts()
        for status in sorted(set(counts) | {"pending", "in_flight", "failed", "parked"}):
            depth.add_metric([status], counts.get(status, 0))
        yield depth

        oldest = GaugeMetricFamily("crmsync_outbox_oldest_pending_timestamp_seconds",
                                   "Unix time the oldest pending outbox write was queued")
        if oldest_pending is not None:
            oldest.add_metric([], oldest_pending.timestamp())
        yield oldest

        rules = CounterMetricFamily("crmsync_decisions", "Decisions logged per rule", labels=["rule"])
        for rule, n in sorted(decisions):
            rules.add_metric([rule], n)
        yield rules

    def _quota(self) -> Iterator[Metric]:
        families = {
            (unit, what): GaugeMetricFamily(f"crmsync_api_quota_{what}_{unit}",
                                            f"Daily API quota {what} as last stated by the CRM, in {unit}",
                                            labels=["connection"])
            for unit in ("calls", "tokens") for what in ("remaining", "limit")
        }
        for name, usage in sorted(schedule_state.load_all(self.store, schedule_state.USAGE_NS).items()):
            unit = QUOTA_UNIT.get(self.kinds.get(name, ""), "calls")
            for what in ("remaining", "limit"):
                if usage.get(what) is not None:
                    families[(unit, what)].add_metric([name], float(usage[what]))
        yield from families.values()


class WorkerMetrics:
    """The worker's registry: store-derived figures plus this process's counters and collectors."""

    def __init__(self, store: Store, connections: Iterable[str], kinds: Mapping[str, str] | None = None) -> None:
        from importlib.metadata import version

        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(store, connections, kinds))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        Info("crmsync_build", "The running crmsync", registry=self.registry).info(
            {"version": version("crmsync"), "python": platform.python_version()})
        self.cycles = Counter("crmsync_cycles", "Connection cycles run by this process",
                              ["connection", "status"], registry=self.registry)
        self.step_seconds = Histogram("crmsync_step_duration_seconds", "Wall time of each cycle step",
                                      ["connection", "step"], buckets=STEP_BUCKETS, registry=self.registry)
        self.pulled = Counter("crmsync_records_pulled", "Records pulled by this process",
                              ["connection", "object"], registry=self.registry)
        self.pushed = Counter("crmsync_records_pushed", "Outbox writes the CRM accepted, by this process",
                              ["connection"], registry=self.registry)
        self.webhooks = Counter("crmsync_webhooks", "Webhook deliveries received by this process",
                                ["source", "result"], registry=self.registry)

    def observe_cycle(self, report: CycleReport) -> None:
        self.cycles.labels(report.connection, report.status).inc()
        for step, seconds in report.step_seconds.items():
            self.step_seconds.labels(report.connection, step).observe(seconds)
        for result in report.results:
            if result.records:
                self.pulled.labels(report.connection, result.object_name).inc(result.records)
        pushed = report.counts.get("pushed")
        if isinstance(pushed, int) and pushed > 0:
            self.pushed.labels(report.connection).inc(pushed)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def render_for(self, accept: str | None) -> tuple[bytes, str]:
        """The body and content type the client library picks for the scraper's ``Accept``
        (Prometheus text 0.0.4 by default, OpenMetrics when asked for)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
