"""Evaluate a compiled rule set over records: pure over (rule set, records, context).

``evaluate`` runs scoring, routing, hygiene, handoff and renewal for every record it is given and
returns the decisions in record order. ``incremental`` is the per-cycle entry point: it takes only
the records that changed since the last cycle (their previous versions in ``ctx.previous`` feed
``changed`` conditions and stage-move checks) and skips decisions already made (``ctx.known_keys``).
The only mutable inputs are the context's routing state and open counts, which routing advances.

One process evaluates in one loop: a fork-based split of scoring and hygiene across two processes
was measured (bench_rules) at ~3% faster at best on two shared cores and slower when the other
core was busy, so it was removed.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from crmsync.model import ObjectType
from crmsync.rules.context import RuleContext
from crmsync.rules.decisions import Decision
from crmsync.rules.hygiene import bind_rules
from crmsync.rules.loader import RuleSet

ALL_KINDS = frozenset({"scoring", "routing", "hygiene", "handoff", "renewal", "health"})
# below this many records the collector is left alone (incremental cycles, tests, simulations)
GC_PAUSE_MIN_RECORDS = 10_000

Step = Callable[[Any, list[Decision]], None]


class Plan:
    """The rule set bound to one context.

    Per record the order is: scoring, routing, hygiene, handoff, renewal. Scoring and hygiene
    (the *pure* steps) read only the record and the context; routing, handoff and renewal (the
    *stateful* steps) advance the routing state and open counts, so they must run once per record,
    in record order, in one process."""

    def __init__(self, rule_set: RuleSet, ctx: RuleContext, kinds: Iterable[str]) -> None:
        wanted = frozenset(kinds)
        unknown = wanted - ALL_KINDS
        if unknown:
            raise ValueError(f"unknown rule kinds {sorted(unknown)}; expected {sorted(ALL_KINDS)}")
        self.ctx = ctx
        self.h = rule_set.hash
        self.scoring = {
            ot: tuple(m for m in rule_set.scoring if m.object_type == ot) if "scoring" in wanted else ()
            for ot in (ObjectType.DEAL, ObjectType.LEAD)
        }
        self.hygiene: dict[ObjectType, tuple[Step, ...]] = {
            ot: (bind_rules(rule_set.hygiene, ctx, self.h, ot),) if "hygiene" in wanted and rule_set.hygiene else ()
            for ot in (ObjectType.DEAL, ObjectType.LEAD)
        }
        router = rule_set.router if "routing" in wanted else None
        self.route = router.route if router is not None else None
        self.handoff = rule_set.handoff.evaluate if rule_set.handoff is not None and "handoff" in wanted else None
        self.renewal = rule_set.renewal.evaluate if rule_set.renewal is not None and "renewal" in wanted else None
        self.health = rule_set.health.evaluate if rule_set.health is not None and "health" in wanted else None

    def run(self, records: Iterable[Any]) -> list[Decision]:
        """The sequential loop: every step for each record, records in order."""
        ctx, h = self.ctx, self.h
        out: list[Decision] = []
        route, handoff, renewal, health = self.route, self.handoff, self.renewal, self.health
        deal_scoring, lead_scoring = self.scoring[ObjectType.DEAL], self.scoring[ObjectType.LEAD]
        deal_hygiene, lead_hygiene = self.hygiene[ObjectType.DEAL], self.hygiene[ObjectType.LEAD]
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
                if health is not None:
                    health(record, ctx, out, h)
            elif ot is LEAD:
                for model in lead_scoring:
                    model.evaluate(record, ctx, out, h)
                if route is not None:
                    route(record, ctx, out, h)
                for check in lead_hygiene:
                    check(record, out)
        return out


def evaluate(
    rule_set: RuleSet,
    records: Iterable[Any],
    ctx: RuleContext,
    *,
    kinds: Iterable[str] = ALL_KINDS,
) -> list[Decision]:
    """Every decision the rule set makes for ``records`` (deals and leads; others are ignored).

    For large inputs the cyclic garbage collector is paused while evaluating: a full
    re-evaluation allocates millions of acyclic decisions and the collector's repeated scans of
    them would dominate the run time. Reference counting still frees everything; the collector
    is re-enabled when the last concurrent evaluation ends (``pause_gc`` / ``resume_gc``). The
    collector then scans the returned decisions as they age (a full collection with 3M decisions
    alive took 2-4 s here); ``bench_rules`` prints that separately."""
    plan = Plan(rule_set, ctx, kinds)
    size = len(records) if isinstance(records, Sequence) else None
    pause = size is None or size >= GC_PAUSE_MIN_RECORDS
    if pause:
        pause_gc()
    try:
        return plan.run(records)
    finally:
        if pause:
            resume_gc()


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


def pause_gc() -> None:
    """Pause the cyclic collector; nested and concurrent pauses (threads) share one pause."""
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1


def resume_gc() -> None:
    """End one pause; the collector's previous state comes back when the last pause ends."""
    global _gc_depth
    with _gc_lock:
        _gc_depth -= 1
        if _gc_depth == 0 and _gc_was_enabled:
            gc.enable()


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
