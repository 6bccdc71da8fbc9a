"""Hygiene tasks closed when their findings are resolved, and the store facts the task budget needs.

A hygiene task crmsync created (pushed: the outbox row is done and holds the CRM's task id) covers
one finding, or a bundle of them (``covers`` in its logged decision). After an evaluation, the tasks
whose records were evaluated are checked again: when none of the findings it covers is found any
more, a ``close_task`` decision completes the task in the CRM with a note (in its description) of
what was resolved. A finding of a record that was not evaluated this run counts as still open, so
an incremental run never closes a bundle on partial knowledge.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select

from crmsync.model import ObjectType, Task
from crmsync.rules.budget import OpenCrmTasks, OwnerKey
from crmsync.rules.context import RuleContext
from crmsync.rules.decisions import CLOSE_TASK, CREATE_TASK, FINDING, Decision
from crmsync.store import Store
from crmsync.store import outbox as store_outbox
from crmsync.store import tables as t

TASK_PREFIX = "hygiene-task:"
FINDING_PREFIX = "hygiene:"


@dataclass(frozen=True, slots=True)
class OpenTask:
    key: str
    task_id: str  # the CRM's id
    covers: tuple[str, ...]  # task keys of the findings it lists
    records: tuple[tuple[str, str], ...]  # (object type, source id) of those findings
    body: str


def finding_key(task_key: str) -> str:
    """``hygiene-task:<rule>:<tail>`` -> ``hygiene:<rule>:<tail>`` (the finding the task is for)."""
    return FINDING_PREFIX + task_key.removeprefix(TASK_PREFIX)


def open_tasks(store: Store, connection: str) -> list[OpenTask]:
    """Hygiene tasks crmsync created in ``connection`` and has not closed yet."""
    d = t.decisions.c
    closed = select(d.idempotency_key).where(and_(d.connection == connection, d.action == CLOSE_TASK))
    with store.engine.connect() as conn:
        done = {k.removeprefix("close:") for (k,) in conn.execute(closed)}
        rows = store_outbox.created_by_decisions(conn, connection, rule_kind="hygiene", action=CREATE_TASK,
                                                 object_name="tasks")
    out = []
    for key, object_type, source_id, fields, task_id, pushed in rows:
        if key in done:
            continue
        fields = fields or {}
        covers = tuple(fields.get("covers") or (key,))
        records = tuple((str(a), str(b)) for a, b in fields.get("records") or [(object_type, source_id)])
        out.append(OpenTask(key, str(task_id), covers, records, str((pushed or {}).get("body") or "")))
    return out


def active_findings(evaluate_hygiene: Any, records: Sequence[Any], ctx: RuleContext) -> set[str]:
    """Finding keys the hygiene rules find now in ``records`` (known keys ignored)."""
    fresh = dataclasses.replace(ctx, known_keys=frozenset())
    return {d.idempotency_key for d in evaluate_hygiene(records, fresh) if d.action == FINDING}


def close_decisions(tasks: Iterable[OpenTask], active: set[str], evaluated: set[tuple[str, str]], *,
                    connection: str, today: dt.date, rule_set: str) -> list[Decision]:
    out = []
    for task in tasks:
        if not task.records or not all(r in evaluated for r in task.records):
            continue  # some of its findings were not looked at this run
        if any(finding_key(k) in active for k in task.covers):
            continue
        note = f"Resolved {today.isoformat()}: crmsync no longer finds " + (
            "this problem" if len(task.covers) == 1 else f"any of these {len(task.covers)} problems")
        body = f"{task.body}\n\n{note}".lstrip()
        object_type, source_id = task.records[0]
        out.append(Decision("hygiene", "task_closed", object_type, connection, source_id, CLOSE_TASK,
                            {"task_id": task.task_id, "done": True, "body": body, "task_key": task.key},
                            note, f"close:{task.key}", rule_set))
    return out


def created_today(store: Store, connections: Iterable[str], now: dt.datetime) -> Counter[OwnerKey]:
    """Hygiene tasks decided per (connection, owner) since the start of ``now``'s UTC day."""
    d = t.decisions.c
    start = dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.UTC)
    stmt = select(d.connection, d.fields).where(and_(d.connection.in_(list(connections)), d.rule_kind == "hygiene",
                                                     d.action == CREATE_TASK, d.created_at >= start))
    counts: Counter[OwnerKey] = Counter()
    with store.engine.connect() as conn:
        for connection, fields in conn.execute(stmt):
            counts[(connection, str((fields or {}).get("owner_id")))] += 1
    return counts


def open_crm_tasks(store: Store, connection: str) -> OpenCrmTasks:
    """Open tasks the store holds for ``connection`` (when tasks are synced), for duplicate checks."""
    keys: set[str] = set()
    subjects: set[tuple[str, str, str]] = set()
    for task in store.iter_records(ObjectType.TASK, connection=connection):
        if not isinstance(task, Task) or task.done or task.deleted:
            continue
        if task.crmsync_key:
            keys.add(task.crmsync_key)
        record = task.deal_id or task.lead_id
        if record and task.subject:
            subjects.add((connection, str(record), task.subject.strip().lower()))
    return OpenCrmTasks(keys, subjects)
