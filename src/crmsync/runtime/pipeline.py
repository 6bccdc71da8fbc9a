"""One connection cycle as a list of steps: incremental sync -> rules on the changed records ->
outbox drain.

Each step is pluggable: a step whose implementation is not installed in this build (the rules
runner, the outbox drain) is skipped with a logged notice, never faked. A step's failure is
recorded and the following steps still run (rules over what was synced; the drain of what is
queued). After a stop request (SIGTERM) the sync step has already checkpointed; the network-bound
steps after it are skipped so the worker exits promptly.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol

from crmsync.connectors import build_connector
from crmsync.logging import get_logger
from crmsync.model import now_utc
from crmsync.runtime import schedule_state
from crmsync.runtime.triggers import next_due
from crmsync.settings import ConnectionSettings, Settings
from crmsync.store import Store
from crmsync.sync.engine import ObjectResult
from crmsync.sync.runner import open_engine

log = get_logger("crmsync.runtime")
FAILED_RETRY = dt.timedelta(seconds=60)


class StepUnavailable(Exception):
    """The step's implementation is not part of this build."""


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

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()


class Step(Protocol):
    name: str

    def run(self, state: CycleState) -> None:
        """Do the step's work; raise ``StepUnavailable`` when its implementation is missing."""
        ...


def resolve(candidates: Sequence[str]) -> Callable[..., Any]:
    """The first importable ``module:attribute`` of ``candidates``, else ``StepUnavailable``."""
    for spec in candidates:
        module_name, attr = spec.split(":")
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue
            raise
        found = getattr(module, attr, None)
        if callable(found):
            return found  # type: ignore[no-any-return]
    raise StepUnavailable(f"none of {', '.join(candidates)} is installed")


class SyncStep:
    name = "sync"

    def run(self, state: CycleState) -> None:
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
    """Rules over the records this cycle changed (decisions + outbox rows in the store)."""

    name = "rules"
    candidates = ("crmsync.rules.runner:run_incremental", "crmsync.rules.apply:run_incremental",
                  "crmsync.rules.service:run_incremental")

    def run(self, state: CycleState) -> None:
        if not state.conn.schedule.rules_after_sync:
            state.outcomes[self.name] = "skipped: rules_after_sync is off"
            return
        if not state.changed:
            state.outcomes[self.name] = "skipped: nothing changed"
            return
        run_incremental = resolve(self.candidates)
        outcome = run_incremental(state.settings, state.store, state.conn.name, list(state.changed))
        state.counts["decisions"] = _count_of(outcome)


class OutboxStep:
    """Push what the rules (and billing) queued for this connection."""

    name = "outbox"
    candidates = ("crmsync.sync.outbox:drain",)

    def run(self, state: CycleState) -> None:
        if state.stopping:
            state.outcomes[self.name] = "skipped: stop requested"
            return
        drain = resolve(self.candidates)
        connector = build_connector(state.conn)
        try:
            outcome = drain(state.store, connector, state.conn, stop_event=state.stop_event)
        finally:
            connector.close()
        state.counts["pushed"] = _count_of(outcome)


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


DEFAULT_STEPS: tuple[Step, ...] = (SyncStep(), RulesStep(), OutboxStep())

_missing_noticed: set[str] = set()
_missing_lock = threading.Lock()


def _notice_missing(step: str, why: str) -> None:
    with _missing_lock:
        first = step not in _missing_noticed
        _missing_noticed.add(step)
    if first:
        log.warning("runtime.step_missing", step=step, reason=why,
                    note="this step is skipped until its part is installed")


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
        try:
            step.run(state)
            state.outcomes.setdefault(step.name, "ok")
        except StepUnavailable as exc:
            state.outcomes[step.name] = f"skipped: {exc}"
            _notice_missing(step.name, str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded, the next steps still run
            state.outcomes[step.name] = f"failed: {type(exc).__name__}: {exc}"
            log.error("runtime.step_failed", connection=conn.name, step=step.name,
                      error=f"{type(exc).__name__}: {exc}")
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
                         state.results, len(state.changed))
    log.info("runtime.cycle", connection=conn.name, reason=reason, status=status, seconds=round(report.seconds, 3),
             changed=report.changed, steps=report.outcomes)
    if observer is not None:
        observer(report)
    return report


def sync_connections(settings: Settings) -> list[ConnectionSettings]:
    """The connections the worker syncs (enabled CRM connections; billing has its own job)."""
    return [c for c in settings.connections if c.enabled and c.kind != "meteroid"]
