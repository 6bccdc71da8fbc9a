"""``rules explain``: why the rule set decides what it does for one record (rows for a table).

Explaining never advances durable state: routing runs on a copy of the in-memory state."""

from __future__ import annotations

import copy
from typing import Any

from crmsync.rules.context import RuleContext
from crmsync.rules.engine import evaluate
from crmsync.rules.loader import RuleSet
from crmsync.rules.state import InMemoryRoutingState


def _sandboxed(ctx: RuleContext) -> RuleContext:
    state = ctx.routing_state
    fresh = state.copy() if isinstance(state, InMemoryRoutingState) else InMemoryRoutingState()
    return RuleContext(
        now=ctx.now, owners=ctx.owners, stages=ctx.stages, accounts=ctx.accounts, previous=ctx.previous,
        routing_state=fresh, open_counts=dict(ctx.open_counts), subscriptions=ctx.subscriptions,
        predictive=ctx.predictive, signals=ctx.signals, customers=ctx.customers,
    )


def explain(rule_set: RuleSet, record: Any, ctx: RuleContext) -> list[dict[str, Any]]:
    """Rows ``{kind, rule, result, detail}``: every scoring rule with its points and the field values
    it read, predictive per-field likelihoods, routing rules in order, each hygiene rule, then the
    decisions the record would get now (with reasons)."""
    rows: list[dict[str, Any]] = [
        {"kind": "rule set", "rule": rule_set.hash[:12], "result": rule_set.author, "detail": rule_set.loaded_at.isoformat()}
    ]
    for model in rule_set.scoring:
        if model.object_type == record.object_type:
            rows.extend(model.explain(record, ctx))
    if rule_set.router is not None:
        rows.extend(rule_set.router.explain(record, ctx))
    for rule in rule_set.hygiene:
        if rule.object_type == record.object_type:
            rows.append(rule.explain(record, ctx))
    trial = _sandboxed(ctx)
    for d in evaluate(rule_set, [copy.copy(record)], trial):
        rows.append({"kind": f"decision:{d.rule_kind}", "rule": d.rule_name, "result": d.action, "detail": d.reason})
    return rows
