"""One connection cycle as a list of steps: incremental sync -> rules on the changed records ->
outbox drain.

A step's failure is
recorded and the following steps still run (rules over what was synced; the drain of what is
queued). After a stop request (SIGTERM) the sync step has already checkpointed; the network-bound
steps after it are skipped so the worker exits promptly.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crmsync.connectors import build_connector
from crmsync.errors import describe_error
from crmsync.logging import get_logger
from crmsync.model import now_utc
from crmsync.runtime import schedule_state
from crmsync.runtime.triggers import next_due
from crmsync.settings import CALL_KINDS, ConnectionSettings, Settings
from crmsync.store import Store
from crmsync.sync.engine import ObjectResult
from crmsync.sync.runner import open_engine

log = get_logger("crmsync.runtime")
FAILED_RETRY = dt.timedelta(seconds=60)


@dataclass
class CycleState:
    settings: Settings
    store: Store
    conn: ConnectionSettings
    stop_event: threading.Event
    reason: str = "schedule"
    results: list[ObjectResult] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)  # (object type, source id)
    outcomes: dict[str, str] = field(default_factory=dict)  # step -> ok | skipped: why | failed: error
    counts: dict[str, Any] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)  # step -> wall seconds it ran

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()


class Step(Protocol):
    name: str

    def run(self, state: CycleState) -> None:
        """Do the step's work; raise to record the step as failed (the next steps still run)."""
        ...


class SyncStep:
    name = "sync"

    def run(self, state: CycleState) -> None:
        if state.conn.kind in CALL_KINDS:  # a call system: calls into the store, nothing else to do
            from crmsync.sync.runner import run_sync_cycle

            state.results = run_sync_cycle(state.settings, state.store, state.conn.name)
            state.counts["records"] = sum(r.records for r in state.results)
            state.counts["api_calls"] = sum(r.api_calls for r in state.results)
            for step in ("rules", "mirror", "outbox"):
                state.outcomes[step] = "skipped: not a CRM connection"
            return
        with open_engine(state.settings, state.store, state.conn.name, stop_event=state.stop_event) as engine:
            state.results = engine.sync()
            usage = engine.connector.usage
        for result in state.results:
            state.changed.extend(result.changed)
        schedule_state.save_usage(state.store, state.conn.name, usage)
        state.counts["records"] = sum(r.records for r in state.results)
        state.counts["api_calls"] = sum(r.api_calls for r in state.results)
        failed = [r for r in state.results if r.status == "failed"]
        if failed:
            raise RuntimeError("; ".join(f"{r.object_name}: {r.error}" for r in failed))


class RulesStep:
    """Rules over the records this cycle changed (decisions + outbox rows in the store).

    Records whose queued write was parked on a conflict (a human edited them after the decision)
    are evaluated again here, on their new data, and their re-run markers cleared."""

    name = "rules"

    def run(self, state: CycleState) -> None:
        from crmsync.decide.runner import run_incremental
        from crmsync.sync.outbox import clear_rerun, pending_reruns

        if not state.conn.schedule.rules_after_sync:
            state.outcomes[self.name] = "skipped: rules_after_sync is off"
            return
        from crmsync.trials.cycle import before_live_rules

        reruns = pending_reruns(state.store, state.conn.name)
        changed = [*state.changed, *((r.object_type, r.source_id) for r in reruns)]
        now = now_utc()
        trials = before_live_rules(state.settings, state.store, state.conn.name, changed, now)  # experiments, shadow
        if trials.assigned or trials.shadow_evaluated or trials.errors:
            state.counts["trials"] = {"assigned": trials.assigned, "shadow_evaluated": trials.shadow_evaluated,
                                      "errors": trials.errors}
        if not changed:
            state.outcomes[self.name] = "skipped: nothing changed"
            return
        outcome = run_incremental(state.settings, state.store, state.conn.name, changed, now=now)
        for rerun in reruns:
            clear_rerun(state.store, rerun.connection, rerun.object_type, rerun.source_id)
        state.counts["decisions"] = outcome.logged
        state.counts["enqueued"] = outcome.enqueued


class MirrorStep:
    """Deal mirrors that involve this connection plan their writes into the outbox."""

    name = "mirror"

    def run(self, state: CycleState) -> None:
        from crmsync.mirror.runner import run_mirrors

        if not any(state.conn.name in (m.source, m.target) for m in state.settings.mirrors):
            state.outcomes[self.name] = "skipped: no mirror involves this connection"
            return
        runs = run_mirrors(state.settings, state.store, connection=state.conn.name)
        state.counts["mirrored"] = _count_of(runs)


class OutboxStep:
    """Push what the rules, mirrors and billing queued for this connection."""

    name = "outbox"

    def run(self, state: CycleState) -> None:
        from crmsync.sync.outbox import drain

        if state.stopping:
            state.outcomes[self.name] = "skipped: stop requested"
            return
        connector = build_connector(state.conn)
        try:
            outcome = drain(state.store, connector, state.conn, stop_event=state.stop_event)
        finally:
            connector.close()
        state.counts["pushed"] = outcome.done


def _count_of(outcome: Any) -> int | None:
    if isinstance(outcome, int):
        return outcome
    if isinstance(outcome, Sequence):
        return len(outcome)
    for attr in ("pushed", "decisions", "count", "done"):
        value = getattr(outcome, attr, None)
        if isinstance(value, int):
            return value
        if isinstance(value, Sequence):
            return len(value)
    return None


def _sequence_step() -> Step:
    from crmsync.engagement.step import SequenceStep

    return SequenceStep()


DEFAULT_STEPS: tuple[Step, ...] = (SyncStep(), RulesStep(), _sequence_step(), MirrorStep(), OutboxStep())

@dataclass
class CycleReport:
    connection: str
    reason: str
    status: str  # ok | stopped | failed
    started_at: dt.datetime
    finished_at: dt.datetime
    outcomes: dict[str, str]
    counts: dict[str, Any]
    results: list[ObjectResult]
    changed: int
    step_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


CycleObserver = Callable[[CycleReport], None]


def run_connection_cycle(settings: Settings, store: Store, connection: str, *,
                         stop_event: threading.Event | None = None, reason: str = "schedule",
                         steps: Sequence[Step] = DEFAULT_STEPS,
                         observer: CycleObserver | None = None) -> CycleReport:
    """Run the steps for one connection and record the schedule state (started, finished, next due)."""
    conn = settings.connection(connection)
    state = CycleState(settings, store, conn, stop_event or threading.Event(), reason)
    started = now_utc()
    schedule_state.mark_started(store, conn.name, reason)
    for step in steps:
        if step.name in state.outcomes:
            continue
        step_started = time.monotonic()
        try:
            step.run(state)
            state.outcomes.setdefault(step.name, "ok")
        except Exception as exc:  # noqa: BLE001 - recorded, the next steps still run
            state.outcomes[step.name] = f"failed: {describe_error(exc)}"
            log.error("runtime.step_failed", connection=conn.name, step=step.name, error=describe_error(exc))
        finally:
            state.step_seconds[step.name] = time.monotonic() - step_started
    if any(o.startswith("failed") for o in state.outcomes.values()):
        status = "failed"
    elif state.stopping or any(r.status == "stopped" for r in state.results):
        status = "stopped"
    else:
        status = "ok"
    finished = now_utc()
    if state.stopping:  # interrupted by a stop request: due at once, resumes from its checkpoint
        due = finished
    elif status == "failed":  # retry sooner than the schedule, but do not hammer a failing CRM
        due = min(next_due(conn.schedule, finished), finished + FAILED_RETRY)
    else:  # ok, or stopped by the API budget: the normal schedule
        due = next_due(conn.schedule, finished)
    schedule_state.mark_finished(store, conn.name, status, due)
    report = CycleReport(conn.name, reason, status, started, finished, dict(state.outcomes), dict(state.counts),
                         state.results, len(state.changed), dict(state.step_seconds))
    log.info("runtime.cycle", connection=conn.name, reason=reason, status=status, seconds=round(report.seconds, 3),
             changed=report.changed, steps=report.outcomes)
    if observer is not None:
        observer(report)
    return report


def sync_connections(settings: Settings) -> list[ConnectionSettings]:
    """The connections the worker syncs: enabled CRM connections and call systems (their cycle
    pulls calls only); billing and sales-engagement tools have their own steps."""
    return [c for c in settings.connections if c.enabled and (c.is_crm or c.kind in CALL_KINDS)]
