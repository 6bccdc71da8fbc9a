"""Task budgets: caps and bundling per owner, duplicates of open CRM tasks, priorities by severity,
and the handoff / renewal tasks a cap never drops; plus the `tasks:` section's validation."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crmsync.decide.closing import OpenTask, close_decisions
from crmsync.rules.budget import OpenCrmTasks, apply_budget
from crmsync.rules.decisions import CLOSE_TASK, CREATE_TASK, FINDING, TASK_BUNDLED, Decision
from crmsync.rules.loader import RuleFileError, load_rules
from crmsync.rules.schema import TaskPolicy

from .conftest import CONN, NOW, deal

TODAY = NOW.date()
RULES = Path(__file__).resolve().parents[2] / "config" / "rules"


def task(rule: str, sid: str, owner: str, severity: str = "warning", kind: str = "hygiene") -> Decision:
    key = f"{kind}-task:{rule}:{CONN}:{sid}:-"
    return Decision(kind, rule, "deal", CONN, sid, CREATE_TASK,
                    {"subject": f"Fix: {rule}", "owner_id": owner, "due_date": TODAY, "deal_id": sid,
                     "crmsync_key": key, "severity": severity}, f"{rule} on {sid}", key)


def finding(rule: str, sid: str) -> Decision:
    return Decision("hygiene", rule, "deal", CONN, sid, FINDING, {"owner_id": "u1"}, rule, f"hygiene:{rule}:{sid}")


AMOUNTS = {f"d{i}": Decimal(i * 1000) for i in range(1, 13)}
RECORDS = {sid: deal(source_id=sid, name=f"Deal {sid}", amount=amount, currency="EUR") for sid, amount in AMOUNTS.items()}


def run(decisions: list[Decision], policy: TaskPolicy, *, created: dict[tuple[str, str], int] | None = None,
        open_tasks: OpenCrmTasks | None = None, known: frozenset[str] = frozenset()) -> Any:
    return apply_budget(decisions, policy, today=TODAY, record_of=lambda d: RECORDS.get(d.source_id),
                        created_today=created or {}, open_tasks=open_tasks or OpenCrmTasks(), known_keys=known)


def created(outcome: Any) -> list[Decision]:
    return [d for d in outcome.decisions if d.action == CREATE_TASK]


def test_cap_per_owner_keeps_the_most_severe_then_most_money_and_defers_the_rest() -> None:
    decisions = [task("stale", f"d{i}", "u1", "critical" if i in (2, 3) else "warning") for i in range(1, 8)]
    decisions += [task("stale", f"d{i}", "u2") for i in range(8, 11)]
    outcome = run(decisions, TaskPolicy(daily_cap_per_owner=3), created={(CONN, "u2"): 2})
    kept = created(outcome)
    u1 = [d.source_id for d in kept if d.fields["owner_id"] == "u1"]
    u2 = [d.source_id for d in kept if d.fields["owner_id"] == "u2"]
    assert u1 == ["d3", "d2", "d7"]  # the two critical ones (more money first), then the biggest warning
    assert u2 == ["d10"]  # two already created today: room for one, the biggest
    assert outcome.deferred == 4 + 2 and outcome.by_owner == {(CONN, "u1"): 3, (CONN, "u2"): 1}


def test_priority_and_due_date_follow_severity() -> None:
    outcome = run([task("a", "d1", "u1", "critical"), task("b", "d2", "u1", "warning"), task("c", "d3", "u1", "info")],
                  TaskPolicy())
    got = {d.source_id: (d.fields["priority"], d.fields["due_date"]) for d in created(outcome)}
    assert got == {"d1": ("high", TODAY + dt.timedelta(days=1)), "d2": ("normal", TODAY + dt.timedelta(days=3)),
                   "d3": ("low", TODAY + dt.timedelta(days=7))}
    assert "Priority: high (critical)" in next(d for d in created(outcome) if d.source_id == "d1").fields["body"]


def test_handoff_and_renewal_tasks_are_never_dropped_by_the_cap() -> None:
    protected = [task("closed_won_handoff", "d1", "u1", kind="handoff"), task("renewal", "d2", "u1", kind="renewal")]
    outcome = run([*protected, *(task("stale", f"d{i}", "u1") for i in range(3, 9))],
                  TaskPolicy(daily_cap_per_owner=1, bundle="per_owner"), created={(CONN, "u1"): 5})
    assert [d for d in outcome.decisions if d.rule_kind != "hygiene"] == protected
    assert not [d for d in created(outcome) if d.rule_kind == "hygiene"] and outcome.deferred == 6


def test_per_deal_bundle_lists_a_deals_findings_and_logs_them_as_bundled() -> None:
    decisions = [task("meddic", "d5", "u1", "critical"), task("stale", "d5", "u1"), task("no_activity", "d5", "u1", "info"),
                 task("stale", "d9", "u1")]
    outcome = run(decisions, TaskPolicy(bundle="per_deal"))
    tasks = created(outcome)
    assert len(tasks) == 2
    bundle = next(d for d in tasks if d.source_id == "d5")
    assert bundle.idempotency_key == f"hygiene-bundle:{CONN}:deal:d5:{TODAY.isoformat()}"
    assert bundle.fields["deal_id"] == "d5" and bundle.fields["priority"] == "high"
    assert bundle.fields["subject"] == "Fix 3 issues on Deal d5"
    assert bundle.fields["covers"] == [d.idempotency_key for d in decisions[:3]]
    single = next(d for d in tasks if d.source_id == "d9")
    assert single.idempotency_key == decisions[3].idempotency_key  # one finding: its own task
    bundled = [d for d in outcome.decisions if d.action == TASK_BUNDLED]
    assert {d.idempotency_key for d in bundled} == {d.idempotency_key for d in decisions[:3]}
    assert all(d.fields["bundle"] == bundle.idempotency_key for d in bundled) and outcome.bundled == 3


def test_per_owner_bundle_is_one_task_a_day_most_money_first() -> None:
    decisions = [task("stale", f"d{i}", "u1") for i in (2, 11, 6)] + [task("stale", "d4", "u2")]
    outcome = run(decisions, TaskPolicy(bundle="per_owner", daily_cap_per_owner=1))
    tasks = created(outcome)
    u1 = next(d for d in tasks if d.fields["owner_id"] == "u1")
    lines = u1.fields["body"].splitlines()[1:]
    assert [line.split(" ")[2] for line in lines] == ["d11", "d6", "d2"]  # "- Deal d11 (11,000.00 EUR): ..."
    assert "deal_id" not in u1.fields and u1.fields["subject"].startswith("3 pipeline issues")
    assert len(tasks) == 2  # u2 has its own one-finding bundle
    again = run(decisions, TaskPolicy(bundle="per_owner"), known=frozenset({u1.idempotency_key}))
    assert [d.fields["owner_id"] for d in created(again)] == ["u2"] and again.deferred == 3  # tomorrow's digest


def test_an_open_crm_task_is_not_duplicated() -> None:
    decisions = [task("stale", "d1", "u1"), task("stale", "d2", "u1"), task("other", "d3", "u1")]
    open_tasks = OpenCrmTasks(keys={decisions[0].idempotency_key}, subjects={(CONN, "d3", "fix: other")})
    outcome = run(decisions, TaskPolicy(), open_tasks=open_tasks)
    assert [d.source_id for d in created(outcome)] == ["d2"] and outcome.duplicates == 2


def test_a_task_closes_only_when_none_of_its_findings_remain() -> None:
    one = OpenTask("hygiene-task:stale:test:d1:-", "T1", ("hygiene-task:stale:test:d1:-",), (("deal", "d1"),), "Fix")
    two = OpenTask("hygiene-bundle:x", "T2", ("hygiene-task:a:test:d2:-", "hygiene-task:b:test:d3:-"),
                   (("deal", "d2"), ("deal", "d3")), "Bundle")
    evaluated = {("deal", "d1"), ("deal", "d2"), ("deal", "d3")}
    closes = close_decisions([one, two], {"hygiene:b:test:d3:-"}, evaluated, connection=CONN, today=TODAY,
                             rule_set="h")
    assert [(d.action, d.fields["task_id"], d.idempotency_key) for d in closes] == [
        (CLOSE_TASK, "T1", "close:hygiene-task:stale:test:d1:-")]
    assert closes[0].fields["body"].startswith("Fix\n\nResolved ")
    assert len(close_decisions([two], set(), evaluated, connection=CONN, today=TODAY, rule_set="h")) == 1
    # a finding whose record was not evaluated this run counts as still open
    assert close_decisions([two], set(), {("deal", "d2")}, connection=CONN, today=TODAY, rule_set="h") == []


@pytest.mark.parametrize(("snippet", "message"), [
    ("tasks:\n  bundle: per_team\n", "per_team"),
    ("tasks:\n  daily_cap_per_owner: 0\n", "greater than or equal to 1"),
    ("tasks:\n  severity:\n    critical: {priority: urgent, due_in_days: 1}\n", "urgent"),
])
def test_a_bad_tasks_section_names_the_file_and_line(tmp_path: Path, snippet: str, message: str) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    text = (rules / "hygiene.yaml").read_text(encoding="utf-8")
    text = text[:text.index("\ntasks:")] + "\n" + snippet
    (rules / "hygiene.yaml").write_text(text, encoding="utf-8")
    line = text.count("\n", 0, text.index("tasks:")) + 1
    with pytest.raises(RuleFileError) as exc:
        load_rules(rules)
    issue = exc.value.issues[0]
    assert issue.file.endswith("hygiene.yaml") and issue.line is not None and issue.line >= line
    assert message in str(exc.value)


def test_the_shipped_policy_loads() -> None:
    policy = load_rules(RULES).task_policy
    assert policy is not None and policy.bundle == "per_deal" and policy.daily_cap_per_owner == 10
    assert policy.close_when_resolved and policy.severity["critical"].priority == "high"
