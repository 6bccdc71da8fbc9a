"""Rules against the store: load the last good rule set, build the context, evaluate, and write
the decisions (decision log) and the writes they imply (outbox) in one transaction.

Evaluation itself is pure (``crmsync.rules.engine``); this module is the only place that turns
decisions into rows. Every actionable decision becomes an outbox item keyed by the decision's
idempotency key, so a decision already queued is never queued again; findings are logged once
per key. Records that are only crmsync's own writes coming back (echoes) are not re-evaluated.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select

from crmsync.decide.closing import active_findings, close_decisions, created_today, open_crm_tasks, open_tasks
from crmsync.errors import describe_error
from crmsync.logging import get_logger
from crmsync.model import Account, ObjectType, Owner, Record, Stage, now_utc
from crmsync.rules.budget import apply_budget
from crmsync.rules.context import RuleContext
from crmsync.rules.decisions import (
    ASSIGN_OWNER,
    CLOSE_TASK,
    CREATE_EXPANSION,
    CREATE_HANDOFF,
    CREATE_NOTE,
    CREATE_RENEWAL,
    CREATE_TASK,
    FINDING,
    SET_FIELDS,
    TASK_BUNDLED,
    Decision,
)
from crmsync.rules.engine import evaluate, incremental
from crmsync.rules.loader import RuleSet, RuleSetHolder
from crmsync.rules.state import StoreRoutingState
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.store import outbox as store_outbox
from crmsync.store import tables as t
from crmsync.store.repository import Decision as LoggedDecision
from crmsync.store.repository import OutboxItem

log = get_logger("crmsync.rules")

OBJECT_NAMES = {"deal": "deals", "lead": "leads"}
_holders: dict[str, RuleSetHolder] = {}
_holders_lock = threading.Lock()


@dataclass
class RulesRun:
    rule_set_hash: str
    evaluated: int = 0
    decisions: int = 0
    logged: int = 0
    enqueued: int = 0
    echoes_skipped: int = 0
    by_action: dict[str, int] = field(default_factory=dict)
    rule_errors: list[str] = field(default_factory=list)
    # the task budget (hygiene.yaml `tasks:`): over a daily cap, already open in the CRM, bundled
    tasks_deferred: int = 0
    tasks_duplicate: int = 0
    findings_bundled: int = 0

    def __int__(self) -> int:
        return self.enqueued


def current_rule_set(settings: Settings, store: Store) -> tuple[RuleSet, list[str]]:
    """The last good rule set of ``settings.rules_dir``; reload errors are returned, never fatal
    once a good set has been loaded. A newly applied version is recorded in the store."""
    directory = str(settings.rules_dir)
    with _holders_lock:
        holder = _holders.setdefault(directory, RuleSetHolder(directory))
        issues = holder.reload()
    errors = [str(issue) for issue in issues]
    if errors:
        log.error("rules.reload_failed", errors=errors, keeping=holder.current.hash if holder.current else None)
    rule_set = holder.rule_set  # raises RuleFileError when no good set was ever loaded
    if holder.changed:
        version = rule_set.version()
        store.record_rule_set(version["hash"], str(version["content"]), author=version.get("author"))
    return rule_set, errors


def build_context(store: Store, connections: Iterable[str], *, now: dt.datetime | None = None,
                  known_keys: set[str] | None = None, counts: dict[tuple[str, str], int] | None = None,
                  settings: Settings | None = None) -> RuleContext:
    """Owners, stages, accounts and open counts of the connections, plus durable routing state
    (``counts``: open counts the caller already has, instead of counting the deals again)."""
    owners: dict[tuple[str, str], Owner] = {}
    stages: dict[tuple[str, str], Stage] = {}
    accounts: dict[tuple[str, str], Account] = {}
    for connection in connections:
        for owner in store.iter_records(ObjectType.OWNER, connection=connection):
            assert isinstance(owner, Owner)
            owners[(connection, owner.source_id)] = owner
        for stage in store.iter_records(ObjectType.STAGE, connection=connection):
            assert isinstance(stage, Stage)
            stages[(connection, stage.source_id)] = stage
        for account in store.iter_records(ObjectType.ACCOUNT, connection=connection):
            assert isinstance(account, Account)
            accounts[(connection, account.source_id)] = account
    ctx = RuleContext(now=now or now_utc(), owners=owners, stages=stages, accounts=accounts,
                      routing_state=StoreRoutingState(store),
                      open_counts=open_counts(store) if counts is None else dict(counts),
                      known_keys=known_keys if known_keys is not None else set())
    if settings is not None:
        from crmsync.decide.inputs import load_inputs

        calls = [c.name for c in settings.connections if c.enabled and c.kind == "gong"]
        billing = settings.billing.connection if settings.billing else None
        signals: dict[Any, Any] = {}
        customers: dict[Any, Any] = {}
        for connection in connections:
            s, c = load_inputs(store, connection, ctx.now, call_connections=calls, billing_connection=billing)
            signals.update(s)
            customers.update(c)
        ctx.signals, ctx.customers = signals, customers
    return ctx


def open_counts(store: Store) -> dict[tuple[str, str], int]:
    """Open deals per (connection, owner), for fewest-open routing and capacity."""
    deals = t.record_table(ObjectType.DEAL).c
    stmt = (select(deals.connection, deals.owner_id, func.count())
            .where(and_(deals.is_closed.is_(False), deals.deleted.is_(False), deals.owner_id.is_not(None)))
            .group_by(deals.connection, deals.owner_id))
    with store.engine.connect() as conn:
        return {(c, o): int(n) for c, o, n in conn.execute(stmt)}


def known_decision_keys(store: Store, connections: Iterable[str]) -> set[str]:
    """Idempotency keys already decided: queued writes and logged findings."""
    names = list(connections)
    keys: set[str] = set()
    with store.engine.connect() as conn:
        keys.update(store_outbox.idempotency_keys(conn, names))
        decisions = t.decisions.c
        keys.update(k for (k,) in conn.execute(select(decisions.idempotency_key)
                                               .where(and_(decisions.connection.in_(names),
                                                           decisions.idempotency_key.is_not(None)))))
    return keys


def run_incremental(settings: Settings, store: Store, connection: str,
                    changed: Sequence[tuple[str, str]], *, now: dt.datetime | None = None) -> RulesRun:
    """Rules over the records one sync cycle changed (``(object_type, source_id)`` pairs)."""
    from crmsync.mirror.echoes import filter_echoes

    rule_set, errors = current_rule_set(settings, store)
    wanted = [(ot, sid) for ot, sid in dict.fromkeys(changed) if ot in OBJECT_NAMES]
    records: list[Record] = []
    for object_type, source_id in wanted:
        record = store.get(object_type, connection, source_id)
        if record is not None and not record.deleted:
            records.append(record)
    fresh = filter_echoes(store, records)
    ctx = build_context(store, [connection], now=now, known_keys=known_decision_keys(store, [connection]),
                        settings=settings)
    decisions = incremental(rule_set, fresh, ctx)
    run = _record(store, rule_set, decisions, fresh, ctx, connection)
    run.echoes_skipped = len(records) - len(fresh)
    run.rule_errors = errors
    return run


def run_full(settings: Settings, store: Store, connection: str, *, now: dt.datetime | None = None) -> RulesRun:
    """Re-evaluate every live deal and lead of a connection (scheduled, or after a rule change)."""
    rule_set, errors = current_rule_set(settings, store)
    ctx = build_context(store, [connection], now=now, known_keys=known_decision_keys(store, [connection]),
                        settings=settings)
    records: list[Record] = [*store.iter_records(ObjectType.LEAD, connection=connection),
                             *store.iter_records(ObjectType.DEAL, connection=connection)]
    decisions = evaluate(rule_set, records, ctx)
    run = _record(store, rule_set, decisions, records, ctx, connection)
    run.rule_errors = errors
    return run


def _record(store: Store, rule_set: RuleSet, decisions: list[Decision], records: Sequence[Record],
            ctx: RuleContext, connection: str) -> RulesRun:
    run = RulesRun(rule_set.hash, evaluated=len(records), decisions=len(decisions))
    by_key = {(r.object_type.value, r.source_id): r for r in records}
    known = ctx.known_keys
    policy = rule_set.task_policy
    if policy is not None:
        budget = apply_budget(
            decisions, policy, today=ctx.today, record_of=lambda d: by_key.get((d.object_type, d.source_id)),
            created_today=created_today(store, [connection], ctx.now), open_tasks=open_crm_tasks(store, connection),
            known_keys=known)
        decisions = budget.decisions
        run.tasks_deferred, run.tasks_duplicate, run.findings_bundled = (budget.deferred, budget.duplicates,
                                                                          budget.bundled)
        if policy.close_when_resolved:
            decisions = decisions + _closings(store, rule_set, by_key, ctx, connection)
    run_id = store.start_run("rules", connection)
    try:
        with store.transaction() as tx:
            logged: list[LoggedDecision] = []
            for decision in decisions:
                if decision.idempotency_key in known:
                    continue
                run.by_action[decision.action] = run.by_action.get(decision.action, 0) + 1
                logged.append(_logged(decision, run_id))
                item = outbox_item_for(decision, by_key.get((decision.object_type, decision.source_id)), ctx)
                if item is not None and tx.enqueue(item):
                    run.enqueued += 1
            run.logged = tx.log_decisions(logged)
            state = ctx.routing_state
            if isinstance(state, StoreRoutingState):
                state.flush(tx)
        store.finish_run(run_id, "ok", {"evaluated": run.evaluated, "decisions": run.decisions,
                                        "logged": run.logged, "enqueued": run.enqueued, **run.by_action})
    except Exception as exc:
        store.finish_run(run_id, "failed", {"evaluated": run.evaluated}, describe_error(exc))
        raise
    log.info("rules.applied", connection=connection, rule_set=rule_set.hash[:12], evaluated=run.evaluated,
             logged=run.logged, enqueued=run.enqueued)
    return run


def _closings(store: Store, rule_set: RuleSet, by_key: dict[tuple[str, str], Record], ctx: RuleContext,
              connection: str) -> list[Decision]:
    """Close the hygiene tasks whose findings the evaluated records no longer have."""
    tasks = open_tasks(store, connection)
    if not tasks:
        return []
    subset = [by_key[r] for r in {r for task in tasks for r in task.records} if r in by_key]
    active = active_findings(lambda records, c: evaluate(rule_set, records, c, kinds=("hygiene",)),
                             subset, ctx)
    return close_decisions(tasks, active, set(by_key), connection=connection, today=ctx.today,
                           rule_set=rule_set.hash)


def _logged(decision: Decision, run_id: int) -> LoggedDecision:
    return LoggedDecision(rule_kind=decision.rule_kind, rule_name=decision.rule_name,
                          connection=decision.connection, object_type=decision.object_type,
                          source_id=decision.source_id, action=decision.action, fields=dict(decision.fields),
                          reason=decision.reason, run_id=run_id, rule_set_hash=decision.rule_set,
                          idempotency_key=decision.idempotency_key)


# Canonical fields a created task or note carries; other decision fields (cross-references such as
# ``renewal_key``) stay in the decision log and are not sent to the CRM.
TASK_FIELDS = frozenset({"subject", "owner_id", "deal_id", "lead_id", "due_date", "done", "crmsync_key", "body",
                         "priority"})
NOTE_FIELDS = frozenset({"body", "deal_id", "lead_id", "owner_id", "crmsync_key"})
DEAL_CREATE_FIELDS = frozenset({"name", "account_id", "owner_id", "amount", "currency", "pipeline_id", "stage_id",
                                "close_date", "contract_start", "contract_end", "deal_type", "crmsync_key"})


def resolve_stage(ctx: RuleContext, connection: str, label: str | None) -> str | None:
    """A stage named in a rule file (``Qualification``) to the connection's stage id."""
    if not label:
        return None
    wanted = label.strip().lower()
    for (conn, stage_id), stage in ctx.stages.items():
        if conn == connection and wanted in (stage.name.lower(), stage_id.lower()):
            return stage_id
    return None


def outbox_item_for(decision: Decision, record: Record | None, ctx: RuleContext | None = None) -> OutboxItem | None:
    """The CRM write a decision implies, in canonical field names (connectors translate)."""
    based_on = record.modified_at if record is not None else None
    fields = dict(decision.fields)
    if decision.action in (CREATE_RENEWAL, CREATE_EXPANSION) and "stage" in fields:
        stage = fields.pop("stage")
        fields["stage_id"] = (resolve_stage(ctx, decision.connection, stage) if ctx else None) or stage
    common: dict[str, Any] = {"connection": decision.connection, "idempotency_key": decision.idempotency_key}
    if decision.action in (SET_FIELDS, ASSIGN_OWNER):
        return OutboxItem(object_name=OBJECT_NAMES[decision.object_type], operation="update",
                          source_id=decision.source_id, fields=fields, based_on_modified_at=based_on, **common)
    if decision.action == CREATE_TASK:
        fields.setdefault("crmsync_key", decision.idempotency_key)
        return OutboxItem(object_name="tasks", operation="create", fields=_only(fields, TASK_FIELDS), **common)
    if decision.action == CREATE_NOTE:
        fields.setdefault("crmsync_key", decision.idempotency_key)
        return OutboxItem(object_name="notes", operation="create", fields=_only(fields, NOTE_FIELDS), **common)
    if decision.action in (CREATE_RENEWAL, CREATE_EXPANSION):
        fields.setdefault("crmsync_key", decision.idempotency_key)
        return OutboxItem(object_name="deals", operation="create", fields=_only(fields, DEAL_CREATE_FIELDS),
                          **common)
    if decision.action == CLOSE_TASK:
        return OutboxItem(object_name="tasks", operation="update", source_id=str(fields["task_id"]),
                          fields={"done": True, "body": fields["body"]}, **common)
    if decision.action in (CREATE_HANDOFF, FINDING, TASK_BUNDLED):
        return None  # kept in the decision log; the CRM side is the task and note decided with it
    raise ValueError(f"decision {decision.idempotency_key}: unknown action {decision.action!r}")


def _only(fields: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k in allowed or k.startswith("extra.")}
