"""Admin-written rule tests: ``config/rules/tests/*.yaml`` cases with expected outcomes.

A test file::

    now: 2026-03-02T15:00:00Z
    owners:   [{source_id: "1", team: NA Sales, timezone: America/New_York}]
    accounts: [{source_id: a1, region: NA, segment: Enterprise, owner_id: "1"}]
    stages:   [...]            # optional: defaults to the standard sales pipeline below
    cases:
      - name: proposal without MEDDIC is flagged
        deal: {source_id: d1, stage_id: proposal, amount: 60000, owner_id: "1"}
        previous: {stage_id: discovery}       # optional: the record's previous version (overrides)
        kinds: [hygiene]                       # optional: only these rule kinds
        expect:                                # each must match one decision
          - {rule: meddic_before_proposal, action: finding}
          - {rule: meddic_before_proposal, action: create_task, fields: {owner_id: "1"}}
        expect_not:                            # none may match
          - {rule: stuck_late_stage}
        exact: false                           # true: no decision beyond the expected ones

Matching compares rule, action, kind, fields (subset, by text) and ``reason_contains``.
"""

from __future__ import annotations

import datetime as dt
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from crmsync.model import Account, Deal, Lead, ObjectType, Owner, Record, Stage, parse_timestamp
from crmsync.rules.conditions import BOOL, DATE, DATETIME, DECIMAL, INT, LIST, field_kinds
from crmsync.rules.context import RuleContext, Subscription
from crmsync.rules.decisions import Decision
from crmsync.rules.engine import evaluate
from crmsync.rules.loader import RuleFileError, RuleIssue, RuleSet, parse_yaml, read_rule_file
from crmsync.rules.state import InMemoryRoutingState

STANDARD_PIPELINE: tuple[dict[str, Any], ...] = (
    {"source_id": "qualification", "name": "Qualification", "display_order": 0, "probability": "0.10"},
    {"source_id": "discovery", "name": "Discovery", "display_order": 1, "probability": "0.20"},
    {"source_id": "demo", "name": "Demo Scheduled", "display_order": 2, "probability": "0.40"},
    {"source_id": "proposal", "name": "Proposal Sent", "display_order": 3, "probability": "0.60"},
    {"source_id": "negotiation", "name": "Negotiation", "display_order": 4, "probability": "0.80"},
    {"source_id": "closedwon", "name": "Closed Won", "display_order": 5, "probability": "1.00", "is_closed": True, "is_won": True},
    {"source_id": "closedlost", "name": "Closed Lost", "display_order": 6, "probability": "0.00", "is_closed": True},
)
DEFAULT_CONNECTION = "test"
_SOURCE_OBJECTS = {ObjectType.DEAL: "Opportunity", ObjectType.LEAD: "Lead", ObjectType.OWNER: "User",
                   ObjectType.ACCOUNT: "Account", ObjectType.STAGE: "Stage"}
_CLASSES: dict[ObjectType, type[Record]] = {ObjectType.DEAL: Deal, ObjectType.LEAD: Lead, ObjectType.OWNER: Owner,
                                            ObjectType.ACCOUNT: Account, ObjectType.STAGE: Stage}


def make_record(object_type: ObjectType, data: dict[str, Any], now: dt.datetime) -> Any:
    """Build a canonical record from plain YAML values (strings become Decimal, dates...)."""
    cls = _CLASSES[object_type]
    hints = typing.get_type_hints(cls)
    kinds = field_kinds(object_type) if object_type in (ObjectType.DEAL, ObjectType.LEAD, ObjectType.OWNER,
                                                         ObjectType.ACCOUNT, ObjectType.STAGE) else {}
    values: dict[str, Any] = {
        "connection": DEFAULT_CONNECTION,
        "source_object": _SOURCE_OBJECTS[object_type],
        "modified_at": now,
    }
    for key, raw in data.items():
        if key not in hints or key == "object_type":
            raise ValueError(f"unknown {object_type.value} field {key!r}")
        kind = kinds.get(key)
        values[key] = _coerce(kind, raw, key)
    return cls(**values)


def _coerce(kind: str | None, raw: Any, key: str) -> Any:
    if raw is None:
        return None
    if key in ("modified_at", "created_at") or kind == DATETIME:
        if isinstance(raw, dt.datetime):
            return raw if raw.tzinfo else raw.replace(tzinfo=dt.UTC)
        return parse_timestamp(raw, field_name=key)
    if kind == DATE:
        return raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw))
    if kind == DECIMAL:
        return Decimal(str(raw))
    if kind == INT:
        return int(raw)
    if kind == BOOL:
        return bool(raw)
    if kind == LIST:
        return list(raw)
    if key in ("source_id", "owner_id", "account_id", "stage_id", "pipeline_id", "manager_id"):
        return str(raw)
    return raw


@dataclass(slots=True)
class CaseResult:
    file: str
    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


def _text(v: Any) -> str:
    if isinstance(v, Decimal):
        return format(v.normalize(), "f") if v == v.to_integral() else str(v.normalize())
    if isinstance(v, float | int) and not isinstance(v, bool):
        return _text(Decimal(str(v)))
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    return str(v)


def matches(expect: dict[str, Any], d: Decision) -> bool:
    if "rule" in expect and expect["rule"] != d.rule_name:
        return False
    if "action" in expect and expect["action"] != d.action:
        return False
    if "kind" in expect and expect["kind"] != d.rule_kind:
        return False
    if "reason_contains" in expect and str(expect["reason_contains"]) not in d.reason:
        return False
    for k, v in (expect.get("fields") or {}).items():
        if k not in d.fields or _text(d.fields[k]) != _text(v):
            return False
    return True


def _context(spec: dict[str, Any], now: dt.datetime) -> RuleContext:
    owners = {(DEFAULT_CONNECTION, o.source_id): o for o in
              (make_record(ObjectType.OWNER, x, now) for x in spec.get("owners") or [])}
    accounts = {(DEFAULT_CONNECTION, a.source_id): a for a in
                (make_record(ObjectType.ACCOUNT, x, now) for x in spec.get("accounts") or [])}
    stage_rows = spec.get("stages") or [dict(s, pipeline_id="default") for s in STANDARD_PIPELINE]
    stages = {(DEFAULT_CONNECTION, s.source_id): s for s in (make_record(ObjectType.STAGE, x, now) for x in stage_rows)}
    subs = {}
    for x in spec.get("subscriptions") or []:
        sub = Subscription(str(x["subscription_id"]), dt.date.fromisoformat(str(x["end_date"])), DEFAULT_CONNECTION,
                           str(x["deal_id"]))
        subs[(DEFAULT_CONNECTION, sub.deal_id)] = sub
    state = InMemoryRoutingState()
    for item in spec.get("routing_state") or []:
        state.set(str(item["namespace"]), str(item["key"]), item["value"])
    return RuleContext(now=now, owners=owners, stages=stages, accounts=accounts, subscriptions=subs,
                       routing_state=state)


def run_case_file(rule_set: RuleSet, path: Path) -> list[CaseResult]:
    data, _lines = parse_yaml(read_rule_file(path), str(path))
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise RuleFileError([RuleIssue(str(path), 1, "cases", "expected a mapping with a list of `cases`")])
    now_raw = data.get("now")
    now = parse_timestamp(now_raw.isoformat() if isinstance(now_raw, dt.datetime) else now_raw, field_name="now")
    if now is None:
        raise RuleFileError([RuleIssue(str(path), 1, "now", "expected a timestamp like 2026-03-02T15:00:00Z")])
    results = []
    for i, case in enumerate(data["cases"]):
        name = str(case.get("name", f"case {i}"))
        result = CaseResult(str(path), name, True)
        try:
            ctx = _context({**data, **{k: case[k] for k in ("owners", "accounts", "subscriptions", "routing_state") if k in case}}, now)
            object_type = ObjectType.DEAL if "deal" in case else ObjectType.LEAD
            raw = case.get("deal") if "deal" in case else case.get("lead")
            if not isinstance(raw, dict):
                raise ValueError("a case needs a `deal` or `lead` mapping")
            record = make_record(object_type, raw, now)
            if "previous" in case:
                prev = make_record(object_type, {**raw, **case["previous"]}, now)
                ctx.previous = {(record.connection, object_type.value, record.source_id): prev}
            kinds = case.get("kinds") or ["scoring", "routing", "hygiene", "handoff", "renewal"]
            decisions = evaluate(rule_set, [record], ctx, kinds=kinds)
        except (ValueError, TypeError, KeyError) as exc:
            result.passed = False
            result.problems.append(f"cannot run: {exc}")
            results.append(result)
            continue
        result.decisions = decisions
        used: set[int] = set()
        for exp in case.get("expect") or []:
            hit = next((j for j, d in enumerate(decisions) if j not in used and matches(exp, d)), None)
            if hit is None:
                result.problems.append(f"expected {exp}, not decided")
            else:
                used.add(hit)
        for exp in case.get("expect_not") or []:
            for d in decisions:
                if matches(exp, d):
                    result.problems.append(f"unexpected {d.rule_kind}/{d.rule_name} {d.action}: {d.reason}")
        if case.get("exact"):
            for j, d in enumerate(decisions):
                if j not in used:
                    result.problems.append(f"extra decision {d.rule_kind}/{d.rule_name} {d.action}: {d.reason}")
        result.passed = not result.problems
        results.append(result)
    return results


def run_tests(rule_set: RuleSet, tests_dir: str | Path) -> list[CaseResult]:
    """Run every ``*.yaml`` case file in ``tests_dir`` (sorted) against ``rule_set``."""
    results: list[CaseResult] = []
    for path in sorted(Path(tests_dir).glob("*.y*ml")):
        results.extend(run_case_file(rule_set, path))
    return results
