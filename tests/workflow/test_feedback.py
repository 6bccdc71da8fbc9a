"""Rep feedback read back from each CRM's sandbox: a rep marks tasks as wrong in the CRM (the
subject, through the simulator's user handle, as the CRM's task screen would), crmsync pulls the
tasks and counts the rejected findings per rule."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, select

from crm_world import CRMS, copied_rules, one_crm_sandbox, settings_for
from crmsync.connectors import build_connector
from crmsync.decide.runner import run_full
from crmsync.report.feedback import feedback, feedback_page, marked_wrong
from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, SandboxHandle
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.store import tables as t
from crmsync.sync.outbox import drain
from crmsync.sync.runner import open_engine

SUBJECT = {"salesforce": ("Task", "Subject"), "hubspot": ("tasks", "hs_task_subject"),
           "pipedrive": ("activities", "subject")}


@pytest.fixture(params=CRMS)
def system(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sandbox(system: str, tmp_path: Path) -> Iterator[SandboxHandle]:
    with one_crm_sandbox(system, tmp_path, seed=7) as handle:
        yield handle


@pytest.fixture
def settings(sandbox: SandboxHandle, store: Store, tmp_path: Path) -> Settings:
    return settings_for(sandbox, store, tmp_path / "crmsync.yaml", copied_rules(tmp_path))


def test_marker() -> None:
    assert marked_wrong("[wrong] Fix: missing amount") and marked_wrong("Fix 3 issues #WRONG deal is on hold")
    assert not marked_wrong("Fix: wrongly staged") and not marked_wrong(None) and not marked_wrong("")


def test_tasks_marked_wrong_in_the_crm_are_counted_per_rule(system: str, sandbox: SandboxHandle, settings: Settings,
                                                             store: Store) -> None:
    name = CONNECTION_NAMES[system]
    with open_engine(settings, store, name) as engine:
        for object_name in CRM_OBJECTS[system]:
            assert engine.backfill(object_name).status == "ok"
    run_full(settings, store, name)
    conn = settings.connection(name)
    connector = build_connector(conn)
    try:
        assert drain(store, connector, conn).failed == 0
    finally:
        connector.close()
    created = {i.idempotency_key: i for i in store.outbox_items(connection=name, limit=100_000)
               if i.object_name == "tasks" and i.operation == "create" and i.status == "done"}
    # what each task lists, from the decision log's bundles (``covers``: the findings' task keys)
    d = t.decisions.c
    with store.engine.connect() as c:
        made = {k: (kind, rule, fields) for k, kind, rule, fields in c.execute(
            select(d.idempotency_key, d.rule_kind, d.rule_name, d.fields)
            .where(and_(d.connection == name, d.action == "create_task")))}

    def rules_of(key: str) -> list[tuple[str, str]]:
        kind, rule, fields = made[key]
        covers = (fields or {}).get("covers")
        if not covers:
            return [(kind, rule)]
        return [("hygiene", str(k).split(":")[1]) for k in covers]  # hygiene-task:<rule>:...

    delivered = Counter(r for key in created for r in rules_of(key))
    singles = sorted(k for k in created if k.startswith("hygiene-task:"))
    by_rule: dict[str, list[str]] = {}
    for key in singles:
        by_rule.setdefault(key.split(":")[1], []).append(key)
    (rule_a, keys_a), (rule_b, keys_b) = sorted(by_rule.items(), key=lambda kv: -len(kv[1]))[:2]
    marked = keys_a[:2] + keys_b[:1]
    with open_engine(settings, store, name) as engine:  # the tasks as the CRM holds them, before the rep edits
        assert [r.status for r in engine.sync(["tasks"])] == ["ok"]
    assert feedback(store, name)[1] == []
    sim: Any = sandbox.sims[system]
    object_name, field = SUBJECT[system]
    for key in marked:
        item = created[key]
        sim.edit(object_name, str(item.result_id), {field: f"[wrong] {item.fields['subject']}"[:255]})
    sim.clock.advance(3_601)  # the edits settle on the CRM's clock
    with open_engine(settings, store, name) as engine:
        assert [r.status for r in engine.sync(["tasks"])] == ["ok"]

    rows, wrong = feedback(store, name)
    got = {(r.rule_kind, r.rule_name): (r.delivered, r.rejected) for r in rows}
    rejected = Counter(("hygiene", k.split(":")[1]) for k in marked)
    assert got == {rule: (n, rejected.get(rule, 0)) for rule, n in delivered.items()}
    assert got[("hygiene", rule_a)][1] == 2 and got[("hygiene", rule_b)][1] == 1
    assert rows[0].rejected > 0  # highest rejection rate first
    assert sorted(w.task_id for w in wrong) == sorted(str(created[k].result_id) for k in marked)
    assert all(w.subject.startswith("[wrong] ") for w in wrong)
    page = feedback_page(rows, wrong, scope=name)
    assert page.findings[0].startswith(f"3 of {sum(delivered.values()):,} findings")
