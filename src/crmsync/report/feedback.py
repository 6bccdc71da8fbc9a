"""Rep feedback: which rules' tasks reps mark as wrong, read back from the CRMs' tasks.

A rep who thinks a crmsync task is wrong puts ``[wrong]`` (or ``#wrong``, any case) in the task's
subject, in the CRM's own task screen. Every CRM's task object has an editable subject
(Salesforce ``Task.Subject``, HubSpot ``hs_task_subject``, Pipedrive activity ``subject``), it is
pulled with the task (``tasks`` among the connection's objects), and it is what a rep sees in
their task list, so the mark needs no custom field or admin setup; the rest of the subject may
say why. See docs/workflow.md.

A task is tied to the rules that made it by its crmsync key (the decision's idempotency key): a
single finding's task to its rule, a bundle to the rule of every finding it lists (each counted).
The rate per rule is rejected / delivered, where delivered counts the tasks that reached the CRM
and were pulled back.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select

from crmsync.model import ObjectType
from crmsync.report.page import ReportPage, Table
from crmsync.rules.decisions import CREATE_TASK, TASK_BUNDLED
from crmsync.store import Store
from crmsync.store import tables as t

WRONG_MARK = re.compile(r"\[wrong\]|#wrong\b", re.IGNORECASE)


def marked_wrong(subject: str | None) -> bool:
    return bool(subject) and WRONG_MARK.search(subject or "") is not None


@dataclass(frozen=True)
class RuleFeedback:
    rule_kind: str
    rule_name: str
    delivered: int
    rejected: int

    @property
    def rate(self) -> float:
        return self.rejected / self.delivered if self.delivered else 0.0


@dataclass(frozen=True)
class RejectedTask:
    connection: str
    task_id: str
    rules: tuple[str, ...]
    subject: str


def feedback(store: Store, connection: str | None = None) -> tuple[list[RuleFeedback], list[RejectedTask]]:
    tasks = t.record_table(ObjectType.TASK).c
    d = t.decisions.c
    where: list[Any] = [tasks.crmsync_key.is_not(None), tasks.deleted.is_(False)]
    if connection is not None:
        where.append(tasks.connection == connection)
    with store.engine.connect() as conn:
        pulled = {(str(c), str(k)): (str(i), s) for c, k, i, s in conn.execute(
            select(tasks.connection, tasks.crmsync_key, tasks.source_id, tasks.subject).where(and_(*where)))}
        made = list(conn.execute(select(d.connection, d.rule_kind, d.rule_name, d.idempotency_key)
                                 .where(and_(d.action == CREATE_TASK, d.idempotency_key.is_not(None)))))
        bundled: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for c, kind, rule, fields in conn.execute(select(d.connection, d.rule_kind, d.rule_name, d.fields)
                                                  .where(d.action == TASK_BUNDLED)):
            bundle = (fields or {}).get("bundle")
            if bundle:
                bundled[(str(c), str(bundle))].append((str(kind), str(rule)))
    delivered: dict[tuple[str, str], int] = defaultdict(int)
    rejected: dict[tuple[str, str], int] = defaultdict(int)
    wrong: list[RejectedTask] = []
    for c, kind, rule, key in made:
        task = pulled.get((str(c), str(key)))
        if task is None:
            continue
        rules = bundled.get((str(c), str(key))) or [(str(kind), str(rule))]
        bad = marked_wrong(task[1])
        for r in rules:
            delivered[r] += 1
            if bad:
                rejected[r] += 1
        if bad:
            wrong.append(RejectedTask(str(c), task[0], tuple(sorted({f"{k}/{n}" for k, n in rules})), task[1] or ""))
    rows = [RuleFeedback(k, n, delivered[(k, n)], rejected[(k, n)]) for k, n in delivered]
    rows.sort(key=lambda r: (-r.rate, -r.rejected, r.rule_kind, r.rule_name))
    wrong.sort(key=lambda w: (w.connection, w.task_id))
    return rows, wrong


def feedback_page(rows: list[RuleFeedback], wrong: list[RejectedTask], *, scope: str) -> ReportPage:
    page = ReportPage("Rep feedback", f"tasks marked [wrong] by reps, per rule ({scope})")
    total = sum(r.delivered for r in rows)
    bad = sum(r.rejected for r in rows)
    page.findings.append(f"{bad:,} of {total:,} findings delivered as tasks were marked wrong by reps.")
    for r in rows[:3]:
        if r.rejected:
            page.findings.append(f"{r.rule_kind}/{r.rule_name}: {r.rate:.0%} rejected ({r.rejected} of {r.delivered}).")
    page.tables.append(Table("Rejected findings per rule", ("rule kind", "rule", "delivered", "rejected", "rate"),
                             tuple((r.rule_kind, r.rule_name, f"{r.delivered:,}", f"{r.rejected:,}", f"{r.rate:.1%}")
                                   for r in rows)))
    page.tables.append(Table("Tasks marked wrong", ("connection", "task", "rules", "subject"),
                             tuple((w.connection, w.task_id, ", ".join(w.rules), w.subject) for w in wrong)))
    page.footnotes.append("A rep marks a task by putting [wrong] or #wrong in its subject in the CRM; crmsync reads "
                          "it back when it pulls tasks (add tasks to the connection's objects).")
    return page
