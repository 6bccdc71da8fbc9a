"""Task budgets: hygiene tasks bundled per deal or per owner, capped per owner per day, prioritised by severity.

``apply_budget`` is pure: it takes the decisions one evaluation produced and returns the ones to
record. Only hygiene ``create_task`` decisions are touched; handoff, renewal and every other
decision pass through unchanged, so a cap never drops a CS handoff or a renewal check-in.

* Priority and due date follow the finding's severity (``tasks.severity`` in hygiene.yaml).
* A task that duplicates an open CRM task (same crmsync key, or same record and subject) is not
  created.
* Bundles: ``per_deal`` makes one task per deal listing its findings; ``per_owner`` one task per
  owner per day listing every finding, most money at stake first. The findings a bundle lists are
  logged as ``task_bundled`` under their own task keys, so a later run does not list them again.
* The cap keeps the most severe, then the most money at stake, tasks of each owner up to
  ``daily_cap_per_owner`` minus what was created for that owner today. The rest are not logged, so
  they come back on a later day when the owner has room.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Collection, Container, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crmsync.rules.decisions import CREATE_TASK, TASK_BUNDLED, Decision
from crmsync.rules.schema import TaskPolicy

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
BUNDLE_RULE = "task_bundle"
# kinds whose tasks the budget caps: hygiene findings and customer-health check-ins (a check-in keeps
# its milestone date as due date)
BUDGETED_KINDS = frozenset({"hygiene", "health"})
OwnerKey = tuple[str, str]  # (connection, owner id)


@dataclass(frozen=True, slots=True)
class OpenCrmTasks:
    """Open tasks in the CRMs (from the store): their crmsync keys and (connection, record id, subject)."""

    keys: Collection[str] = frozenset()
    subjects: Collection[tuple[str, str, str]] = frozenset()

    def has(self, d: Decision) -> bool:
        f = d.fields
        if f.get("crmsync_key", d.idempotency_key) in self.keys:
            return True
        record = str(f.get("deal_id") or f.get("lead_id") or "")
        return (d.connection, record, str(f.get("subject", "")).strip().lower()) in self.subjects


@dataclass
class BudgetOutcome:
    decisions: list[Decision]
    deferred: int = 0  # over an owner's daily cap: tried again on a later run
    duplicates: int = 0  # an open CRM task already covers it
    bundled: int = 0  # findings listed in a bundle instead of a task of their own
    by_owner: dict[OwnerKey, int] = field(default_factory=dict)  # tasks created per owner


@dataclass(frozen=True, slots=True)
class _Item:
    """One finding's task with what the budget sorts by."""

    decision: Decision
    severity: str
    money: Decimal
    currency: str
    label: str  # the record's name


def _item(d: Decision, record: Any) -> _Item:
    amount = getattr(record, "amount", None) if record is not None else None
    name = getattr(record, "name", None) or " ".join(
        str(x) for x in (getattr(record, "first_name", None), getattr(record, "last_name", None)) if x)
    return _Item(d, str(d.fields.get("severity", "warning")), Decimal(amount or 0),
                 str(getattr(record, "currency", None) or ""), name or f"{d.object_type} {d.source_id}")


def _order(item: _Item) -> tuple[int, Decimal, str]:
    return (SEVERITY_RANK.get(item.severity, 3), -item.money, item.decision.idempotency_key)


def apply_budget(decisions: list[Decision], policy: TaskPolicy, *, today: dt.date,
                 record_of: Callable[[Decision], Any], created_today: Mapping[OwnerKey, int],
                 open_tasks: OpenCrmTasks, known_keys: Container[str]) -> BudgetOutcome:
    out: list[Decision] = []
    items: list[_Item] = []
    outcome = BudgetOutcome(out)
    for d in decisions:
        if d.rule_kind not in BUDGETED_KINDS or d.action != CREATE_TASK:
            out.append(d)
        elif open_tasks.has(d):
            outcome.duplicates += 1
        else:
            items.append(_item(d, record_of(d)))
    groups: dict[OwnerKey, list[_Item]] = defaultdict(list)
    for item in items:
        groups[(item.decision.connection, str(item.decision.fields.get("owner_id")))].append(item)
    cap = policy.daily_cap_per_owner
    for owner, owned in sorted(groups.items()):
        owned.sort(key=_order)
        tasks = _tasks(owned, policy, today, owner, known_keys, outcome)
        room = len(tasks) if cap is None else max(0, cap - created_today.get(owner, 0))
        for task, members in tasks[:room]:
            out.append(task)
            outcome.bundled += len(members)
            out.extend(_bundled(m.decision, task.idempotency_key) for m in members)
        outcome.deferred += sum(max(1, len(members)) for _, members in tasks[room:])
        outcome.by_owner[owner] = min(room, len(tasks))
    return outcome


def _tasks(owned: list[_Item], policy: TaskPolicy, today: dt.date, owner: OwnerKey, known: Container[str],
           outcome: BudgetOutcome) -> list[tuple[Decision, list[_Item]]]:
    """The tasks of one owner, most important first: (task, the findings it bundles or [])."""
    if policy.bundle == "none":
        return [(_single(item, policy, today), []) for item in owned]
    if policy.bundle == "per_owner":
        groups = [owned]
    else:
        by_deal: dict[tuple[str, str], list[_Item]] = {}
        for item in owned:
            by_deal.setdefault((item.decision.object_type, item.decision.source_id), []).append(item)
        groups = sorted(by_deal.values(), key=lambda g: _order(g[0]))
    tasks: list[tuple[Decision, list[_Item]]] = []
    for group in groups:
        if len(group) == 1 and policy.bundle == "per_deal":
            tasks.append((_single(group[0], policy, today), []))
            continue
        bundle = _bundle(group, policy, today, owner)
        if bundle.idempotency_key in known:  # today's bundle exists: these wait for the next one
            outcome.deferred += len(group)
            continue
        tasks.append((bundle, group))
    return tasks


def _single(item: _Item, policy: TaskPolicy, today: dt.date) -> Decision:
    d = item.decision
    rule = policy.severity[item.severity]  # type: ignore[index]  # severities are validated by the schema
    due = d.fields["due_date"] if d.rule_kind == "health" and d.fields.get("due_date") else \
        today + dt.timedelta(days=rule.due_in_days)
    fields = {**d.fields, "priority": rule.priority, "due_date": due,
              "body": _line(item) + f"\nPriority: {rule.priority} ({item.severity})"}
    return Decision(d.rule_kind, d.rule_name, d.object_type, d.connection, d.source_id, d.action, fields, d.reason,
                    d.idempotency_key, d.rule_set)


def _line(item: _Item) -> str:
    money = f" ({item.money:,.2f} {item.currency})".replace(" )", ")") if item.money else ""
    return f"- {item.label}{money}: {item.decision.reason} [{item.decision.rule_name}, {item.severity}]"


def _bundle(group: list[_Item], policy: TaskPolicy, today: dt.date, owner: OwnerKey) -> Decision:
    first = group[0]  # the most severe, then the most money at stake
    rule = policy.severity[first.severity]  # type: ignore[index]
    connection, owner_id = owner
    group = sorted(group, key=lambda i: (-i.money, SEVERITY_RANK.get(i.severity, 3), i.decision.idempotency_key))
    per_deal = policy.bundle == "per_deal"
    if per_deal:
        key = f"hygiene-bundle:{connection}:{first.decision.object_type}:{first.decision.source_id}:{today.isoformat()}"
        subject = f"Fix {len(group)} issues on {first.label}"
    else:
        key = f"hygiene-bundle:{connection}:owner:{owner_id}:{today.isoformat()}"
        subject = f"{len(group)} pipeline issues to fix ({today.isoformat()})"
    at_stake = sum((i.money for i in group), Decimal(0))
    body = "\n".join([f"Priority: {rule.priority} ({first.severity}); money at stake {at_stake:,.2f}",
                      *(_line(i) for i in group)])
    fields: dict[str, Any] = {
        "subject": subject[:255], "owner_id": owner_id, "due_date": today + dt.timedelta(days=rule.due_in_days),
        "priority": rule.priority, "body": body, "crmsync_key": key, "severity": first.severity,
        "covers": [i.decision.idempotency_key for i in group],
        "records": [[i.decision.object_type, i.decision.source_id] for i in group],
    }
    if per_deal:
        fields[f"{first.decision.object_type}_id"] = first.decision.source_id
    reason = f"{len(group)} findings bundled ({', '.join(sorted({i.decision.rule_name for i in group}))})"
    return Decision("hygiene", BUNDLE_RULE, first.decision.object_type if per_deal else "owner", connection,
                    first.decision.source_id if per_deal else owner_id, CREATE_TASK, fields, reason, key,
                    first.decision.rule_set)


def _bundled(d: Decision, bundle_key: str) -> Decision:
    return Decision(d.rule_kind, d.rule_name, d.object_type, d.connection, d.source_id, TASK_BUNDLED,
                    {"bundle": bundle_key, "owner_id": d.fields.get("owner_id"), "severity": d.fields.get("severity")},
                    d.reason, d.idempotency_key, d.rule_set)
