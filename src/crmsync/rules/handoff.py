"""Closed Won handoff: one handoff record per deal, ever, with the sections mapped from fields,
a CS owner chosen by routing, a task for the CS owner and a note on the deal. Missing required
handoff fields become a hygiene finding (and a task for the deal owner)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmsync.model import ObjectType
from crmsync.rules.conditions import ConditionError, FieldRef, compile_condition, resolve_field
from crmsync.rules.decisions import CREATE_HANDOFF, CREATE_NOTE, CREATE_TASK, FINDING, Decision
from crmsync.rules.hygiene import _missing
from crmsync.rules.routing import Router
from crmsync.rules.schema import HandoffFile
from crmsync.rules.template import Template, compile_template

NS_HANDOFF = "handoff.cs_owner"


def _plain(v: Any) -> Any:
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v if v is None or isinstance(v, str | int | float | bool) else str(v)


class CompiledHandoff:
    kind = "handoff"

    def __init__(self, spec: HandoffFile, router: Router | None) -> None:
        assert spec.handoff is not None
        cfg = self.cfg = spec.handoff
        self.name = cfg.name
        ot = ObjectType.DEAL
        self.when = compile_condition(ot, cfg.when, ("handoff", "when")) if cfg.when else None
        self.sections: dict[str, tuple[FieldRef, ...]] = {}
        for section, paths in cfg.sections.items():
            refs = []
            for i, p in enumerate(paths):
                try:
                    refs.append(resolve_field(ot, p))
                except ValueError as exc:
                    raise ConditionError(("handoff", "sections", section, i), str(exc)) from exc
            self.sections[section] = tuple(refs)
        self.required: list[FieldRef] = []
        for i, p in enumerate(cfg.required):
            try:
                self.required.append(resolve_field(ot, p))
            except ValueError as exc:
                raise ConditionError(("handoff", "required", i), str(exc)) from exc
        self.router = router
        self.pool = None
        if cfg.cs_pool is not None:
            if router is None or cfg.cs_pool not in router.pools:
                raise ConditionError(("handoff", "cs_pool"), f"unknown pool {cfg.cs_pool!r} (define it in routing.yaml)")
            self.pool = router.pools[cfg.cs_pool]
        self.subject: Template | None = None
        if cfg.task is not None:
            try:
                self.subject = compile_template(ot, cfg.task.subject)
            except ValueError as exc:
                raise ConditionError(("handoff", "task", "subject"), str(exc)) from exc
        self.rule_count = 1

    def evaluate(self, r: Any, ctx: Any, out: list[Decision], rule_set: str) -> None:
        if not (r.is_closed and r.is_won):
            return
        if self.when is not None and not self.when(r, ctx):
            return
        key = f"handoff:{r.connection}:{r.source_id}"
        if key in ctx.known_keys:
            return  # one handoff per deal, ever
        state_key = f"{r.connection}:{r.source_id}"
        cs_owner = ctx.routing_state.get(NS_HANDOFF, state_key)
        why = "CS owner chosen earlier"
        if cs_owner is None and self.pool is not None and self.router is not None:
            choice = self.router.pick_from_pool(self.pool, r, ctx)
            cs_owner, why = choice.owner, choice.why
            if cs_owner is not None:
                ctx.routing_state.set(NS_HANDOFF, state_key, cs_owner)
        doc: dict[str, Any] = {
            section: {ref.path: _plain(ref.get(r, ctx)) for ref in refs} for section, refs in self.sections.items()
        }
        missing = [ref.path for ref in self.required if _missing(ref.get(r, ctx))]
        doc["cs_owner_id"] = cs_owner
        doc["deal_owner_id"] = r.owner_id
        doc["missing"] = missing
        signals = ctx.related("signals", r)  # calls (Gong): what was agreed, who the customer brought
        if signals is not None and signals.calls_held:
            doc["calls"] = {"calls held": signals.calls_held,
                            "stakeholders met": ", ".join(signals.stakeholders_met) or None,
                            "highlights": " | ".join(signals.highlights) or None,
                            "competitors mentioned": ", ".join(signals.competitors) or None}
        ot = "deal"
        base = (self.kind, self.name, ot, r.connection, r.source_id)
        out.append(Decision(*base, CREATE_HANDOFF, doc, f"deal won; CS owner {cs_owner} ({why})", key, rule_set))
        if self.cfg.task is not None and cs_owner is not None:
            due = ctx.today + dt.timedelta(days=self.cfg.task.due_in_days)
            subject = self.subject(r, ctx) if self.subject else "Handoff"
            tkey = f"handoff-task:{r.connection}:{r.source_id}"
            out.append(
                Decision(*base, CREATE_TASK, {"subject": subject, "owner_id": cs_owner, "due_date": due, "deal_id": r.source_id, "crmsync_key": tkey}, "handoff kickoff", tkey, rule_set)
            )
        if self.cfg.note:
            lines = [f"Handoff to {cs_owner or 'unassigned'}"]
            for section, values in doc.items():
                if isinstance(values, dict):
                    shown = "; ".join(f"{k}: {'-' if v in (None, '', []) else v}" for k, v in values.items())
                    lines.append(f"{section}: {shown}")
            if missing:
                lines.append(f"missing: {', '.join(missing)}")
            nkey = f"handoff-note:{r.connection}:{r.source_id}"
            out.append(Decision(*base, CREATE_NOTE, {"body": "\n".join(lines), "deal_id": r.source_id}, "handoff summary", nkey, rule_set))
        if missing:
            fkey = f"hygiene:{self.name}:{r.connection}:{r.source_id}:{r.stage_id or '-'}"
            message = f"handoff missing {', '.join(missing)}"
            if fkey not in ctx.known_keys:
                out.append(
                    Decision("hygiene", self.name, ot, r.connection, r.source_id, FINDING,
                             {"severity": "warning", "message": message, "owner_id": r.owner_id, "scope": r.stage_id or "-"},
                             message, fkey, rule_set)
                )
