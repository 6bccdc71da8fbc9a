"""Evaluate a compiled rule set over records: pure over (rule set, records, context).

``evaluate`` runs scoring, routing, hygiene, handoff and renewal for every record it is given and
returns the decisions in record order. ``incremental`` is the per-cycle entry point: it takes only
the records that changed since the last cycle (their previous versions in ``ctx.previous`` feed
``changed`` conditions and stage-move checks) and skips decisions already made (``ctx.known_keys``).
The only mutable inputs are the context's routing state and open counts, which routing advances.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from typing import Any

from crmsync.model import ObjectType
from crmsync.rules.context import RuleContext
from crmsync.rules.decisions import Decision
from crmsync.rules.hygiene import bind_rules
from crmsync.rules.loader import RuleSet

ALL_KINDS = frozenset({"scoring", "routing", "hygiene", "handoff", "renewal"})


def evaluate(
    rule_set: RuleSet,
    records: Iterable[Any],
    ctx: RuleContext,
    *,
    kinds: Iterable[str] = ALL_KINDS,
) -> list[Decision]:
    """Every decision the rule set makes for ``records`` (deals and leads; others are ignored).

    The cyclic garbage collector is paused while evaluating: a full re-evaluation allocates millions
    of acyclic decisions and the collector's repeated scans of them would dominate the run time.
    Reference counting still frees everything; the collector's state is restored afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _evaluate(rule_set, records, ctx, kinds)
    finally:
        if was_enabled:
            gc.enable()


def _evaluate(rule_set: RuleSet, records: Iterable[Any], ctx: RuleContext, kinds: Iterable[str]) -> list[Decision]:
    wanted = frozenset(kinds)
    unknown = wanted - ALL_KINDS
    if unknown:
        raise ValueError(f"unknown rule kinds {sorted(unknown)}; expected {sorted(ALL_KINDS)}")
    h = rule_set.hash
    out: list[Decision] = []
    scoring = {
        ot: tuple(m for m in rule_set.scoring if m.object_type == ot) if "scoring" in wanted else ()
        for ot in (ObjectType.DEAL, ObjectType.LEAD)
    }
    hygiene = {
        ot: (bind_rules(rule_set.hygiene, ctx, h, ot),) if "hygiene" in wanted and rule_set.hygiene else ()
        for ot in (ObjectType.DEAL, ObjectType.LEAD)
    }
    router = rule_set.router if "routing" in wanted else None
    route = router.route if router is not None else None
    handoff = rule_set.handoff.evaluate if rule_set.handoff is not None and "handoff" in wanted else None
    renewal = rule_set.renewal.evaluate if rule_set.renewal is not None and "renewal" in wanted else None
    deal_scoring, lead_scoring = scoring[ObjectType.DEAL], scoring[ObjectType.LEAD]
    deal_hygiene, lead_hygiene = hygiene[ObjectType.DEAL], hygiene[ObjectType.LEAD]
    DEAL, LEAD = ObjectType.DEAL, ObjectType.LEAD
    for record in records:
        if record.deleted:
            continue
        ot = record.object_type
        if ot is DEAL:
            for model in deal_scoring:
                model.evaluate(record, ctx, out, h)
            if route is not None:
                route(record, ctx, out, h)
            for check in deal_hygiene:
                check(record, out)
            if handoff is not None:
                handoff(record, ctx, out, h)
            if renewal is not None:
                renewal(record, ctx, out, h)
        elif ot is LEAD:
            for model in lead_scoring:
                model.evaluate(record, ctx, out, h)
            if route is not None:
                route(record, ctx, out, h)
            for check in lead_hygiene:
                check(record, out)
    return out


def incremental(
    rule_set: RuleSet,
    changed: Sequence[Any],
    ctx: RuleContext,
    *,
    kinds: Iterable[str] = ALL_KINDS,
) -> list[Decision]:
    """One cycle over only the changed records; decisions already known are not repeated."""
    seen: set[str] = set()
    out = []
    for d in evaluate(rule_set, changed, ctx, kinds=kinds):
        if d.idempotency_key in seen:
            continue
        seen.add(d.idempotency_key)
        out.append(d)
    return out


def apply_fields(record: Any, decision: Decision) -> None:
    """Apply a set_fields / assign_owner decision to an in-memory record (simulation, tests):
    canonical attributes are set directly, ``extra.<name>`` goes into ``record.extra``."""
    for path, value in decision.fields.items():
        if path.startswith("extra."):
            record.extra[path[len("extra."):]] = value
        else:
            setattr(record, path, value)
