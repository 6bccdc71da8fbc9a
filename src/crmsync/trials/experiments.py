"""Experiments against the store: assign eligible records once, write what their variant does.

Runs in the worker's rules step before the live rules, over the same records. Each eligible record
not yet assigned gets its group (``rules.experiments``) stored in ``experiment_assignments``; a
variant's ``set`` fields become a ``set_fields`` write and a routing variant's pool an
``assign_owner`` write, both through the outbox and the decision log (rule kind ``experiment``).
The routing write carries the routing rules' own idempotency key and routing state, so the live
router sees the record as decided and does not route it a second time. Holdout records are only
stored: they get what the workflow does without the experiment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, select

from crmsync.logging import get_logger
from crmsync.model import Record, now_utc
from crmsync.rules.context import RuleContext
from crmsync.rules.decisions import ASSIGN_OWNER, SET_FIELDS, Decision
from crmsync.rules.experiments import HOLDOUT, CompiledExperiment
from crmsync.rules.loader import RuleSet
from crmsync.rules.routing import NS_ASSIGNED
from crmsync.rules.state import StoreRoutingState
from crmsync.store import Store
from crmsync.store.workflow_tables import experiment_assignments

log = get_logger("crmsync.experiments")


@dataclass
class ExperimentsRun:
    assigned: dict[str, dict[str, int]] = field(default_factory=dict)  # experiment -> group -> new records
    enqueued: int = 0


def assigned_ids(store: Store, experiment: str, connection: str) -> set[tuple[str, str]]:
    c = experiment_assignments.c
    stmt = select(c.object_type, c.source_id).where(and_(c.experiment == experiment, c.connection == connection))
    with store.engine.connect() as conn:
        return {(str(a), str(b)) for a, b in conn.execute(stmt)}


def decide(experiment: CompiledExperiment, group: str, record: Record, rule_set: RuleSet,
           ctx: RuleContext) -> list[Decision]:
    """What the record's group does to it (pure apart from the routing state it advances)."""
    variant = experiment.variant_spec(group)
    if variant is None:  # holdout
        return []
    ot, conn, sid = record.object_type.value, record.connection, record.source_id
    out: list[Decision] = []
    reason = f"experiment {experiment.name}: variant {group}"
    if variant.set:
        out.append(Decision("experiment", experiment.name, ot, conn, sid, SET_FIELDS, dict(variant.set), reason,
                            f"experiment:{experiment.name}:{conn}:{ot}:{sid}:set", rule_set.hash))
    router = rule_set.router
    if variant.pool and router is not None and router.needs_routing(record, ctx) is not None:
        choice = router.pick_from_pool(router.pools[variant.pool], record, ctx)
        if choice.owner is not None:
            owner_before = getattr(record, "owner_id", None)
            ctx.routing_state.set(NS_ASSIGNED, f"{ot}:{conn}:{sid}",
                                  {"owner": choice.owner, "pool": choice.pool, "rule": f"experiment:{experiment.name}",
                                   "at": ctx.now.isoformat(), "from": owner_before or "-"})
            out.append(Decision("experiment", experiment.name, ot, conn, sid, ASSIGN_OWNER, {"owner_id": choice.owner},
                                f"{reason}; pool {variant.pool}: {choice.why}; chose {choice.owner}",
                                f"route:{ot}:{conn}:{sid}:{owner_before or '-'}", rule_set.hash))
    return out


def run_experiments(store: Store, rule_set: RuleSet, records: Sequence[Record], ctx: RuleContext,
                    connection: str) -> ExperimentsRun:
    """Assign the eligible, unassigned ``records`` of every running experiment and queue their writes."""
    from crmsync.decide.runner import _logged, outbox_item_for

    run = ExperimentsRun()
    running = [e for e in rule_set.experiments if e.running_on(ctx.today)]
    if not running or not records:
        return run
    now = now_utc()
    rows: list[dict[str, object]] = []
    decisions: list[Decision] = []
    by_key = {(r.object_type.value, r.source_id): r for r in records}
    for experiment in running:
        done = assigned_ids(store, experiment.name, connection)
        counts = run.assigned.setdefault(experiment.name, {})
        for record in records:
            key = (record.object_type.value, record.source_id)
            if key in done or not experiment.eligible(record, ctx):
                continue
            router = rule_set.router
            if experiment.spec.kind == "routing" and (router is None or router.needs_routing(record, ctx) is None):
                continue  # a routing experiment splits the records that are to be routed
            group = experiment.group_of(connection, record.source_id)
            done.add(key)
            counts[group] = counts.get(group, 0) + 1
            rows.append({"experiment": experiment.name, "connection": connection, "object_type": key[0],
                         "source_id": record.source_id, "variant": group, "assigned_at": now,
                         "rule_set_hash": rule_set.hash})
            decisions.extend(d for d in decide(experiment, group, record, rule_set, ctx)
                             if d.idempotency_key not in ctx.known_keys)
    if not rows:
        return run
    run_id = store.start_run("rules", connection)  # the rules step runs experiments
    with store.transaction() as tx:
        tx.conn.execute(experiment_assignments.insert(), rows)
        for d in decisions:
            item = outbox_item_for(d, by_key.get((d.object_type, d.source_id)), ctx)
            if item is not None and tx.enqueue(item):
                run.enqueued += 1
        tx.log_decisions([_logged(d, run_id) for d in decisions])
        if isinstance(ctx.routing_state, StoreRoutingState):
            ctx.routing_state.flush(tx)
    store.finish_run(run_id, "ok", {"assigned": len(rows), "enqueued": run.enqueued})
    log.info("experiments.assigned", connection=connection, assigned=len(rows), enqueued=run.enqueued)
    return run


def group_counts(store: Store, experiment: str) -> dict[str, int]:
    """Records per group of one experiment (all connections)."""
    c = experiment_assignments.c
    out: dict[str, int] = {}
    with store.engine.connect() as conn:
        for (group,) in conn.execute(select(c.variant).where(c.experiment == experiment)):
            out[str(group)] = out.get(str(group), 0) + 1
    return out



__all__ = ["HOLDOUT", "ExperimentsRun", "assigned_ids", "decide", "group_counts", "run_experiments"]
