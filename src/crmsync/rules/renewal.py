"""Renewals: a won deal whose contract (deal contract end, or the billing subscription) ends
within the window gets one renewal opportunity per contract term, an owner and check-in tasks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmsync.model import ObjectType
from crmsync.rules.conditions import ConditionError, compile_condition
from crmsync.rules.decisions import CREATE_RENEWAL, CREATE_TASK, Decision
from crmsync.rules.routing import Router, remembered_owner
from crmsync.rules.schema import RenewalFile
from crmsync.rules.template import compile_template

NS_RENEWAL = "renewal.owner"


class CompiledRenewal:
    kind = "renewal"

    def __init__(self, spec: RenewalFile, router: Router | None) -> None:
        assert spec.renewal is not None
        cfg = self.cfg = spec.renewal
        self.name = cfg.name
        ot = ObjectType.DEAL
        self.when = compile_condition(ot, cfg.when, ("renewal", "when")) if cfg.when else None
        try:
            self.title = compile_template(ot, cfg.opportunity_name)
        except ValueError as exc:
            raise ConditionError(("renewal", "opportunity_name"), str(exc)) from exc
        self.check_ins = []
        for i, c in enumerate(cfg.check_ins):
            try:
                self.check_ins.append((c.days_before_end, compile_template(ot, c.subject)))
            except ValueError as exc:
                raise ConditionError(("renewal", "check_ins", i, "subject"), str(exc)) from exc
        self.pool = None
        if cfg.pool is not None:
            if router is None or cfg.pool not in router.pools:
                raise ConditionError(("renewal", "pool"), f"unknown pool {cfg.pool!r} (define it in routing.yaml)")
            self.pool = router.pools[cfg.pool]
        self.router = router
        self.window = dt.timedelta(days=cfg.window_days)
        self.rule_count = 1
        self.health: Any = None  # CompiledHealth when health.yaml exists: the renewal names the customer's health

    def contract_end(self, r: Any, ctx: Any) -> tuple[dt.date | None, str]:
        if self.cfg.source in ("contract_end", "either") and r.contract_end is not None:
            return r.contract_end, "deal contract end"
        if self.cfg.source in ("subscription", "either"):
            sub = ctx.subscriptions.get((r.connection, r.source_id)) if ctx.subscriptions else None
            if sub is not None and sub.end_date is not None:
                return sub.end_date, f"subscription {sub.subscription_id}"
        return None, ""

    def evaluate(self, r: Any, ctx: Any, out: list[Decision], rule_set: str) -> None:
        if not (r.is_closed and r.is_won):
            return
        end, source = self.contract_end(r, ctx)
        if end is None or end < ctx.today or end - ctx.today > self.window:
            return
        if self.when is not None and not self.when(r, ctx):
            return
        key = f"renewal:{r.connection}:{r.source_id}:{end.isoformat()}"
        if key in ctx.known_keys:
            return
        state_key = f"{r.connection}:{r.source_id}:{end.isoformat()}"
        owner, why = remembered_owner(ctx, r, namespace=NS_RENEWAL, state_key=state_key,
                                      prefer_deal_owner=self.cfg.owner == "deal_owner", pool=self.pool,
                                      router=self.router, no_pool="deal owner (no pool configured)")
        days_left = (end - ctx.today).days
        health = self.health.score(r, ctx) if self.health is not None else None
        health_note = f"; health {health.score} ({health.grade}): {health.explain()}" if health is not None else ""
        base = (self.kind, self.name, "deal", r.connection, r.source_id)
        fields = {
            "name": self.title(r, ctx),
            "renewal_of": r.source_id,
            "account_id": r.account_id,
            "owner_id": owner,
            "amount": r.amount,
            "currency": r.currency,
            "pipeline_id": r.pipeline_id,
            "stage": self.cfg.stage,
            "close_date": end,
            "contract_start": end + dt.timedelta(days=1),
            "deal_type": "Renewal",
        }
        out.append(Decision(*base, CREATE_RENEWAL, fields, f"contract ends {end.isoformat()} ({source}), in {days_left} days; owner {owner} ({why}){health_note}", key, rule_set))
        if owner is None:
            return
        if health is not None and health.grade != max(self.health.cfg.grades, key=lambda g: g.min).grade:
            tkey = f"renewal-risk:{r.connection}:{r.source_id}:{end.isoformat()}"
            missed = ", ".join(health.milestones_missed) or "none"
            out.append(Decision(*base, CREATE_TASK, {"subject": f"Renewal at risk ({health.grade}, health {health.score}): {r.name}", "owner_id": owner, "due_date": ctx.today, "deal_id": r.source_id, "renewal_key": key, "crmsync_key": tkey}, f"health {health.score} ({health.grade}) before the renewal; missed milestones: {missed}; {health.explain()}", tkey, rule_set))
        for days_before, subject in self.check_ins:
            due = max(ctx.today, end - dt.timedelta(days=days_before))
            tkey = f"renewal-task:{r.connection}:{r.source_id}:{end.isoformat()}:{days_before}"
            out.append(Decision(*base, CREATE_TASK, {"subject": subject(r, ctx), "owner_id": owner, "due_date": due, "deal_id": r.source_id, "renewal_key": key, "crmsync_key": tkey}, f"renewal check-in {days_before} days before {end.isoformat()}", tkey, rule_set))
