"""Customer health: a 0-100 score per customer (a won deal with a billing subscription) from usage
against the plan limit, onboarding milestones reached, invoices paid and engagement; each input's
points are explained. Plus check-in tasks before milestone dates (capped by the task budget) and an
expansion opportunity, once per subscription and metric, when usage passes a share of the limit.

Pure: ``CustomerFacts`` (built from the store by the caller) + the rule context -> decisions.

Maths (``config/rules/health.yaml``):
* usage: share = used / limit; full points at ``healthy_share`` or more, none at ``low_share`` or
  less, linear between; no limit known = full points (nothing to measure against).
* onboarding: milestones due (contract start + days) that were reached / milestones due; none due
  yet = full points.
* billing: 1 - ``overdue_penalty`` x overdue invoices / finalized invoices (at least 0).
* engagement: last call or meeting within ``recent_days`` = full, within twice that = half, else 0.
Score = sum(part x weight), weights add up to 100; the grade is the first band whose ``min`` it reaches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from crmsync.activity import InvoiceFact, MeterReading
from crmsync.rules.conditions import ConditionError
from crmsync.rules.decisions import CREATE_EXPANSION, CREATE_TASK, FINDING, Decision
from crmsync.rules.routing import Router, remembered_owner
from crmsync.rules.schema import HealthConfig, HealthFile, Milestone
from crmsync.rules.template import compile_template

NS_EXPANSION = "expansion.owner"
ONE = Decimal(1)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """What the store knows of one customer (a won deal's billing subscription)."""

    subscription_id: str
    start_date: dt.date
    readings: tuple[MeterReading, ...] = ()
    invoices: tuple[InvoiceFact, ...] = ()
    last_touch: dt.datetime | None = None  # last call or meeting with the customer
    calls_since_start: int = 0


@dataclass(frozen=True, slots=True)
class HealthPart:
    name: str
    value: Decimal  # 0..1
    weight: Decimal
    why: str

    @property
    def points(self) -> Decimal:
        return (self.value * self.weight).quantize(Decimal("0.1"), ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class HealthScore:
    score: Decimal
    grade: str
    parts: tuple[HealthPart, ...]
    usage_share: Decimal | None
    milestones_missed: tuple[str, ...] = field(default=())

    def explain(self) -> str:
        return "; ".join(f"{p.name} {p.points}/{p.weight} ({p.why})" for p in self.parts)


def _share(facts: CustomerFacts, metric: str) -> tuple[Decimal | None, MeterReading | None]:
    reading = next((r for r in reversed(facts.readings) if r.metric_code == metric), None)
    if reading is None or reading.included is None or reading.included <= 0:
        return None, reading
    return reading.value / reading.included, reading


def _reached(m: Milestone, facts: CustomerFacts, share: Decimal | None) -> bool:
    if m.call and facts.calls_since_start <= 0:
        return False
    return not (m.usage_share is not None and (share is None or share < m.usage_share))


def score_customer(cfg: HealthConfig, facts: CustomerFacts, today: dt.date, now: dt.datetime) -> HealthScore:
    w = cfg.weights
    share, reading = _share(facts, cfg.usage.metric)
    if share is None:
        usage = HealthPart("usage", ONE, w.usage, f"no {cfg.usage.metric} limit to measure against")
    else:
        lo, hi = cfg.usage.low_share, cfg.usage.healthy_share
        value = ONE if share >= hi else ZERO if share <= lo else (share - lo) / (hi - lo)
        assert reading is not None
        usage = HealthPart("usage", value, w.usage, f"{reading.value:f} of {reading.included:f} {reading.metric_code}"
                           f" = {share:.0%}; full at {hi:.0%}, none at {lo:.0%}")
    due = [m for m in cfg.onboarding.milestones if facts.start_date + dt.timedelta(days=m.days_after_start) <= today]
    missed = tuple(m.name for m in due if not _reached(m, facts, share))
    if not due:
        onboarding = HealthPart("onboarding", ONE, w.onboarding, "no milestone due yet")
    else:
        got = len(due) - len(missed)
        onboarding = HealthPart("onboarding", Decimal(got) / Decimal(len(due)), w.onboarding,
                                f"{got} of {len(due)} milestones due reached" + (f"; missed {', '.join(missed)}"
                                                                                 if missed else ""))
    finalized = [i for i in facts.invoices if i.status == "FINALIZED"]
    overdue = [i for i in finalized if i.overdue(today)]
    if not finalized:
        billing = HealthPart("billing", ONE, w.billing, "no invoice yet")
    else:
        value = max(ZERO, ONE - cfg.billing.overdue_penalty * Decimal(len(overdue)) / Decimal(len(finalized)))
        billing = HealthPart("billing", value, w.billing, f"{len(overdue)} of {len(finalized)} invoices overdue"
                             + (f" ({', '.join(i.invoice_id for i in overdue[:3])})" if overdue else ""))
    recent = cfg.engagement.recent_days
    if facts.last_touch is None:
        engagement = HealthPart("engagement", ZERO, w.engagement, "no call or meeting on record")
    else:
        days = (now - facts.last_touch).days
        value = ONE if days <= recent else Decimal("0.5") if days <= 2 * recent else ZERO
        engagement = HealthPart("engagement", value, w.engagement, f"last call or meeting {days} days ago "
                                f"(full within {recent})")
    parts = (usage, onboarding, billing, engagement)
    score = sum((p.points for p in parts), ZERO)
    grade = next(g.grade for g in sorted(cfg.grades, key=lambda g: -g.min) if score >= g.min)
    return HealthScore(score, grade, parts, share, missed)


class CompiledHealth:
    kind = "health"

    def __init__(self, spec: HealthFile, router: Router | None) -> None:
        assert spec.health is not None
        self.cfg = spec.health
        self.name = self.cfg.name
        from crmsync.model import ObjectType

        self.check_ins = {}
        for i, m in enumerate(self.cfg.onboarding.milestones):
            try:
                self.check_ins[m.name] = compile_template(ObjectType.DEAL, self.cfg.onboarding.check_in_subject
                                                          .replace("{milestone}", m.name))
            except ValueError as exc:
                raise ConditionError(("health", "onboarding", "milestones", i), str(exc)) from exc
        exp = self.cfg.expansion
        self.expansion_title = None
        self.pool = None
        if exp is not None:
            try:
                self.expansion_title = compile_template(ObjectType.DEAL, exp.opportunity_name)
            except ValueError as exc:
                raise ConditionError(("health", "expansion", "opportunity_name"), str(exc)) from exc
            if exp.pool is not None:
                if router is None or exp.pool not in router.pools:
                    raise ConditionError(("health", "expansion", "pool"), f"unknown pool {exp.pool!r} "
                                         "(define it in routing.yaml)")
                self.pool = router.pools[exp.pool]
        self.router = router
        self.rule_count = 1

    def score(self, r: Any, ctx: Any) -> HealthScore | None:
        facts = ctx.customers.get((r.connection, r.source_id)) if ctx.customers else None
        if facts is None or not (r.is_closed and r.is_won):
            return None
        return score_customer(self.cfg, facts, ctx.today, ctx.now)

    def evaluate(self, r: Any, ctx: Any, out: list[Decision], rule_set: str) -> None:
        facts: CustomerFacts | None = ctx.customers.get((r.connection, r.source_id)) if ctx.customers else None
        if facts is None or not (r.is_closed and r.is_won) or facts.start_date > ctx.today:
            return  # not a customer (yet): no subscription, or its contract has not started
        health = score_customer(self.cfg, facts, ctx.today, ctx.now)
        base = (self.kind, self.name, "deal", r.connection, r.source_id)
        key = f"health:{r.connection}:{r.source_id}:{health.score}:{health.grade}"
        out.append(Decision(*base, FINDING, {"score": health.score, "grade": health.grade,
                                             "subscription_id": facts.subscription_id,
                                             "parts": {p.name: str(p.points) for p in health.parts}},
                            f"health {health.score} ({health.grade}): {health.explain()}", key, rule_set))
        share = health.usage_share
        self._check_ins(r, ctx, out, rule_set, facts, share, base)
        exp = self.cfg.expansion
        if exp is not None and share is not None and share >= exp.usage_share:
            self._expansion(r, ctx, out, rule_set, facts, share, health, base)

    def _check_ins(self, r: Any, ctx: Any, out: list[Decision], rule_set: str, facts: CustomerFacts,
                   share: Decimal | None, base: tuple[str, str, str, str, str]) -> None:
        lead = dt.timedelta(days=self.cfg.onboarding.check_in_days_before)
        for m in self.cfg.onboarding.milestones:
            when = facts.start_date + dt.timedelta(days=m.days_after_start)
            if not (when - lead <= ctx.today <= when) or _reached(m, facts, share) or not r.owner_id:
                continue
            key = f"health-checkin:{r.connection}:{r.source_id}:{facts.subscription_id}:{m.name}"
            subject = self.check_ins[m.name](r, ctx)
            out.append(Decision(*base, CREATE_TASK, {"subject": subject, "owner_id": r.owner_id, "due_date": when,
                                                     "deal_id": r.source_id, "severity": "info", "crmsync_key": key},
                                f"onboarding milestone {m.name} due {when.isoformat()} not reached yet", key, rule_set))

    def _expansion(self, r: Any, ctx: Any, out: list[Decision], rule_set: str, facts: CustomerFacts,
                   share: Decimal, health: HealthScore, base: tuple[str, str, str, str, str]) -> None:
        exp = self.cfg.expansion
        assert exp is not None and self.expansion_title is not None
        metric = self.cfg.usage.metric
        key = f"expansion:{r.connection}:{r.source_id}:{facts.subscription_id}:{metric}"
        if key in ctx.known_keys:
            return
        state_key = f"{r.connection}:{r.source_id}:{facts.subscription_id}"
        owner, why = remembered_owner(ctx, r, namespace=NS_EXPANSION, state_key=state_key,
                                      prefer_deal_owner=exp.owner == "deal_owner", pool=self.pool,
                                      router=self.router, no_pool="deal owner (no pool available)")
        fields = {"name": self.expansion_title(r, ctx), "account_id": r.account_id, "owner_id": owner,
                  "currency": r.currency, "pipeline_id": r.pipeline_id, "stage": exp.stage,
                  "close_date": ctx.today + dt.timedelta(days=60), "deal_type": "Expansion", "expansion_of": r.source_id}
        out.append(Decision(*base, CREATE_EXPANSION, fields,
                            f"{metric} at {share:.0%} of the plan limit (expansion from {exp.usage_share:.0%}); "
                            f"health {health.score} ({health.grade}); owner {owner} ({why})", key, rule_set))


def compile_health(spec: HealthFile, router: Router | None) -> CompiledHealth | None:
    return CompiledHealth(spec, router) if spec.health is not None else None
