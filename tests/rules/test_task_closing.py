"""Task budgets and closing against each CRM's sandbox and a real store.

Per CRM: backfill a 300-deal world, run the shipped rules (with a daily cap of 3 so the cap bites)
and drain the outbox over real HTTP. No owner gets more than 3 hygiene tasks, a deal at most one,
and a second run the same day adds none. Then a rep fixes a past close date in the CRM; after a
re-pull the next run completes that task in the CRM with a note saying it was resolved, and leaves
the other tasks open.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crm_world import CRMS, copied_rules, one_crm_sandbox, settings_for
from crmsync.connectors import build_connector
from crmsync.decide.runner import run_full
from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, SandboxHandle
from crmsync.settings import Settings
from crmsync.store import OutboxItem, Store
from crmsync.sync.outbox import drain
from crmsync.sync.runner import open_engine

CAP = 3


@pytest.fixture(params=CRMS)
def system(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sandbox(system: str, tmp_path: Path) -> Iterator[SandboxHandle]:
    with one_crm_sandbox(system, tmp_path, seed=7) as handle:
        yield handle


@pytest.fixture
def settings(sandbox: SandboxHandle, store: Store, tmp_path: Path) -> Settings:
    rules = copied_rules(tmp_path, edits={"hygiene.yaml": ("daily_cap_per_owner: 10", f"daily_cap_per_owner: {CAP}")})
    return settings_for(sandbox, store, tmp_path / "crmsync.yaml", rules)


def _pull(settings: Settings, store: Store, system: str) -> None:
    with open_engine(settings, store, CONNECTION_NAMES[system]) as engine:
        for object_name in CRM_OBJECTS[system]:
            result = engine.backfill(object_name)
            assert result.status == "ok", (object_name, result.error)


def _drain(settings: Settings, store: Store, name: str) -> None:
    conn = settings.connection(name)
    connector = build_connector(conn)
    try:
        outcome = drain(store, connector, conn)
    finally:
        connector.close()
    assert outcome.failed == 0 and outcome.conflicts == 0, outcome


def _hygiene_creates(store: Store, name: str) -> list[OutboxItem]:
    return [i for i in store.outbox_items(connection=name, limit=100_000)
            if i.object_name == "tasks" and i.operation == "create" and i.idempotency_key.startswith("hygiene")]


def _crm_task(sandbox: SandboxHandle, system: str, task_id: str) -> tuple[bool, str, str | None]:
    """(completed, note text, priority) of a task as the CRM holds it."""
    sim: Any = sandbox.sims[system]
    if system == "salesforce":
        row = next(r for r in sim.truth("Task") if r["Id"] == task_id)
        return row.get("Status") == "Completed", row.get("Description") or "", row.get("Priority")
    if system == "hubspot":
        props = next(r for r in sim.truth("tasks") if r["id"] == task_id)["properties"]
        return props.get("hs_task_status") == "COMPLETED", props.get("hs_task_body") or "", props.get("hs_task_priority")
    row = next(r for r in sim.truth("activities") if str(r["id"]) == task_id)
    return bool(row.get("done")), row.get("note") or "", None


def test_budget_holds_and_a_resolved_finding_completes_its_task(system: str, sandbox: SandboxHandle,
                                                                 settings: Settings, store: Store) -> None:
    name = CONNECTION_NAMES[system]
    _pull(settings, store, system)
    first = run_full(settings, store, name)
    _drain(settings, store, name)
    creates = _hygiene_creates(store, name)
    assert creates and first.tasks_deferred > 0, "the cap should hold some tasks back"
    per_owner = Counter(str(i.fields["owner_id"]) for i in creates)
    assert max(per_owner.values()) <= CAP
    per_deal = Counter(str(i.fields["deal_id"]) for i in creates if i.fields.get("deal_id"))
    assert max(per_deal.values()) == 1
    assert all(i.status == "done" and i.result_id for i in creates)

    again = run_full(settings, store, name)  # same day: every owner with tasks is at the cap or has none left
    _drain(settings, store, name)
    assert {i.idempotency_key for i in _hygiene_creates(store, name)} == {i.idempotency_key for i in creates}
    assert again.tasks_deferred > 0

    past = [i for i in creates if i.idempotency_key.startswith("hygiene-task:close_date_in_past:")]
    assert past, "expected a task for a past close date"
    item = past[0]
    deal_id, task_id = str(item.fields["deal_id"]), str(item.result_id)
    completed, _, priority = _crm_task(sandbox, system, task_id)
    assert not completed and priority in ("High", "HIGH", None)  # critical: high (Pipedrive: in the note)

    # the rep fixes the close date in the CRM; crmsync pulls it and runs the rules again
    fixed = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)).isoformat()
    store.enqueue(OutboxItem(connection=name, object_name="deals", operation="update", source_id=deal_id,
                             fields={"close_date": fixed}, idempotency_key=f"test:fix:{deal_id}"))
    _drain(settings, store, name)
    sandbox.sims[system].clock.advance(3_601)  # the edit's stamp settles (judged by the CRM's clock)
    with open_engine(settings, store, name) as engine:  # the next incremental cycle
        assert [r.status for r in engine.sync(["deals"])] == ["ok"]
    run_full(settings, store, name)
    _drain(settings, store, name)

    completed, note, _ = _crm_task(sandbox, system, task_id)
    assert completed and "Resolved " in note and "no longer finds this problem" in note
    closes = [i for i in store.outbox_items(connection=name, limit=100_000) if i.idempotency_key.startswith("close:")]
    assert [(i.source_id, i.status) for i in closes] == [(task_id, "done")]
    others = [i for i in creates if i.result_id != task_id]
    assert others and not any(_crm_task(sandbox, system, str(i.result_id))[0] for i in others)

    run_full(settings, store, name)  # nothing more to close
    _drain(settings, store, name)
    assert len([i for i in store.outbox_items(connection=name, limit=100_000)
                if i.idempotency_key.startswith("close:")]) == 1


def test_per_owner_digest_is_one_task_per_owner_in_the_crm(system: str, sandbox: SandboxHandle, settings: Settings,
                                                           store: Store) -> None:
    hygiene = Path(settings.rules_dir) / "hygiene.yaml"
    hygiene.write_text(hygiene.read_text(encoding="utf-8").replace("bundle: per_deal", "bundle: per_owner"),
                       encoding="utf-8")
    name = CONNECTION_NAMES[system]
    _pull(settings, store, system)
    run = run_full(settings, store, name)
    _drain(settings, store, name)
    creates = _hygiene_creates(store, name)
    assert creates and run.findings_bundled > len(creates)
    assert all(i.idempotency_key.startswith(f"hygiene-bundle:{name}:owner:") for i in creates if "bundle" in
               i.idempotency_key)
    per_owner = Counter(str(i.fields["owner_id"]) for i in creates)
    assert max(per_owner.values()) == 1  # one digest task per owner per day
    for item in creates:
        completed, note, _ = _crm_task(sandbox, system, str(item.result_id))
        assert not completed and note.startswith("Priority: ")
        money = [Decimal(m.replace(",", "")) for m in re.findall(r"\(([\d,]+\.\d\d) EUR\)", note)]
        assert money == sorted(money, reverse=True)  # most money at stake first
