"""``rules simulate``: what the rule set would decide over a set of records, without writing
(hygiene tasks bundled and capped by the rule set's task budget, as a fresh day would)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from crmsync.rules.budget import OpenCrmTasks, apply_budget
from crmsync.rules.context import RuleContext
from crmsync.rules.decisions import Decision
from crmsync.rules.engine import evaluate
from crmsync.rules.explain import _sandboxed
from crmsync.rules.loader import RuleSet


@dataclass(slots=True)
class SimulationReport:
    records: int
    decisions: list[Decision]
    by_rule: list[dict[str, Any]] = field(default_factory=list)  # rows: kind, rule, action, count
    by_owner: list[dict[str, Any]] = field(default_factory=list)  # assignments per owner


def simulate(rule_set: RuleSet, records: list[Any], ctx: RuleContext) -> SimulationReport:
    """Evaluate on a copy of the routing state; summarise per rule and per assigned owner."""
    trial = _sandboxed(ctx)
    trial.known_keys = ctx.known_keys
    decisions = evaluate(rule_set, records, trial)
    if rule_set.task_policy is not None:  # the tasks as the budget would let them through on a fresh day
        by_key = {(r.object_type.value, r.source_id): r for r in records}
        decisions = apply_budget(decisions, rule_set.task_policy, today=ctx.today,
                                 record_of=lambda d: by_key.get((d.object_type, d.source_id)), created_today={},
                                 open_tasks=OpenCrmTasks(), known_keys=ctx.known_keys).decisions
    counts = Counter((d.rule_kind, d.rule_name, d.action) for d in decisions)
    owners = Counter(str(d.fields.get("owner_id")) for d in decisions if d.action == "assign_owner")
    return SimulationReport(
        records=len(records),
        decisions=decisions,
        by_rule=[{"kind": k, "rule": r, "action": a, "count": n} for (k, r, a), n in sorted(counts.items())],
        by_owner=[{"owner_id": o, "assigned": n} for o, n in sorted(owners.items(), key=lambda kv: (-kv[1], kv[0]))],
    )
