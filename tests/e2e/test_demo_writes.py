"""Every write the example rules decide lands in Salesforce, HubSpot and Pipedrive, once.

One sandbox of 300 deals per CRM (the demo's setup): backfill each CRM into the store, run the
example rules (``config/rules``: scoring, routing, hygiene, handoff, renewal) and drain the outbox
per connection, over real HTTP. Then the simulators' truth must hold exactly what was decided:
scores and grades on the deals (native custom fields), lifecycle stages on Salesforce leads, one
task / note / renewal deal per idempotency key. A second rules + drain cycle, a re-pull followed
by a third one, and a forced re-push of every create must add nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crmsync.connectors import build_connector
from crmsync.decide.runner import run_full
from crmsync.sandbox.pipedrive.fields import DEAL_KEY_BY_NAME
from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, SandboxHandle, start_sandbox
from crmsync.settings import Settings, load_settings
from crmsync.store import OutboxItem, Store
from crmsync.sync.outbox import DrainResult, drain
from crmsync.sync.runner import open_engine

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "rules"
CRMS = ("salesforce", "hubspot", "pipedrive")
MARKER = re.compile(r"\[crmsync:([^\]]+)\]")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxHandle]:
    sandbox = start_sandbox(deals=300, seed=7, systems=CRMS, state_dir=tmp_path)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def settings(sandbox: SandboxHandle, store: Store, tmp_path: Path) -> Settings:
    url = store.engine.url.render_as_string(hide_password=False)
    return load_settings(sandbox.write_config(tmp_path / "crmsync.yaml", store_url=url, rules_dir=str(RULES_DIR)))


def _backfill(settings: Settings, store: Store) -> None:
    for system in CRMS:
        with open_engine(settings, store, CONNECTION_NAMES[system]) as engine:
            for object_name in CRM_OBJECTS[system]:
                result = engine.backfill(object_name)
                assert result.status == "ok", (system, object_name, result.error)


def _rules_and_drain(settings: Settings, store: Store) -> tuple[dict[str, int], dict[str, DrainResult]]:
    enqueued: dict[str, int] = {}
    drained: dict[str, DrainResult] = {}
    for system in CRMS:
        name = CONNECTION_NAMES[system]
        enqueued[system] = run_full(settings, store, name).enqueued
        conn = settings.connection(name)
        connector = build_connector(conn)
        try:
            drained[system] = drain(store, connector, conn)
        finally:
            connector.close()
    return enqueued, drained


def _items(store: Store, system: str) -> list[OutboxItem]:
    return store.outbox_items(connection=CONNECTION_NAMES[system], limit=100_000)


# --- the sandbox truth, per CRM ---------------------------------------------------------------
def _deal_scores(sandbox: SandboxHandle, system: str) -> dict[str, tuple[Any, Any]]:
    """deal id -> (score, grade) as the CRM holds them."""
    sim: Any = sandbox.sims[system]
    if system == "salesforce":
        return {r["Id"]: (r.get("Crmsync_Score__c"), r.get("Crmsync_Grade__c")) for r in sim.truth("Opportunity")}
    if system == "hubspot":
        return {r["id"]: (r["properties"].get("crmsync_score"), r["properties"].get("crmsync_grade"))
                for r in sim.truth("deals")}
    score, grade = DEAL_KEY_BY_NAME["crmsync_score"], DEAL_KEY_BY_NAME["crmsync_grade"]
    return {str(r["id"]): (r["custom_fields"].get(score), r["custom_fields"].get(grade)) for r in sim.truth("deals")}


def _keys(sandbox: SandboxHandle, system: str, object_name: str) -> Counter[str]:
    """crmsync keys carried by the CRM's tasks, notes or deals (external id, property, marker)."""
    sim: Any = sandbox.sims[system]
    keys: list[str | None] = []
    if system == "salesforce":
        if object_name == "notes":
            keys = [_marker(r["Title"]) for r in sim.truth("Note")]
        else:
            native = {"tasks": "Task", "deals": "Opportunity"}[object_name]
            keys = [r.get("Crmsync_Key__c") for r in sim.truth(native)]
    elif system == "hubspot":
        keys = [r["properties"].get("crmsync_key") for r in sim.truth(object_name)]
    elif object_name == "deals":
        field = DEAL_KEY_BY_NAME["crmsync_key"]
        keys = [r["custom_fields"].get(field) for r in sim.truth("deals")]
    else:
        native, text = {"tasks": ("activities", "note"), "notes": ("notes", "content")}[object_name]
        keys = [_marker(r.get(text)) for r in sim.truth(native)]
    return Counter(k for k in keys if k)


def _marker(text: str | None) -> str | None:
    found = MARKER.search(text or "")
    return found.group(1) if found else None


def _creates(store: Store, system: str, object_name: str) -> list[OutboxItem]:
    return [i for i in _items(store, system) if i.object_name == object_name and i.operation == "create"]


def _expected_key(system: str, item: OutboxItem) -> str:
    """How the CRM spells the crmsync key of a create (Salesforce notes carry a digest when long)."""
    if system == "salesforce" and item.object_name == "notes":
        from crmsync.connectors.salesforce.notes import note_marker

        return note_marker(item.idempotency_key)[len("[crmsync:"):-1]
    return item.idempotency_key


def _snapshot(sandbox: SandboxHandle) -> dict[tuple[str, str], Counter[str]]:
    return {(system, obj): _keys(sandbox, system, obj) for system in CRMS for obj in ("tasks", "notes", "deals")}


# --- the test ---------------------------------------------------------------------------------
def test_every_decided_write_lands_once_in_each_crm(sandbox: SandboxHandle, settings: Settings, store: Store) -> None:
    _backfill(settings, store)
    enqueued, drained = _rules_and_drain(settings, store)

    for system in CRMS:
        items = _items(store, system)
        assert enqueued[system] > 0 and len(items) == enqueued[system]
        statuses = Counter(i.status for i in items)
        problems = [(i.object_name, i.operation, i.last_error) for i in items if i.status != "done"]
        assert statuses == {"done": len(items)}, (system, drained[system].errors, problems[:5])
        assert drained[system].failed == 0 and drained[system].conflicts == 0

        # every decided score and grade is on the deal, in the CRM's own custom fields
        truth = _deal_scores(sandbox, system)
        scored = [i for i in items if i.object_name == "deals" and "extra.crmsync_score" in i.fields]
        assert len(scored) > 100, system
        for item in scored:
            score, grade = truth[str(item.source_id)]
            assert Decimal(str(score)) == Decimal(str(item.fields["extra.crmsync_score"])), (system, item)
            assert grade == item.fields["extra.crmsync_grade"], (system, item)

        # one task, note and renewal deal per idempotency key
        for object_name in ("tasks", "notes", "deals"):
            creates = _creates(store, system, object_name)
            assert creates, (system, object_name)
            in_crm = _keys(sandbox, system, object_name)
            for item in creates:
                key = _expected_key(system, item)
                assert in_crm[key] == 1, (system, object_name, key, in_crm[key])
            assert sum(in_crm.values()) == len(creates), (system, object_name)

    # Salesforce leads: score, grade and lifecycle stage in their fields
    leads = {r["Id"]: r for r in sandbox.sims["salesforce"].truth("Lead")}
    lead_writes = [i for i in _items(store, "salesforce") if i.object_name == "leads" and "score" in i.fields]
    assert any("lifecycle_stage" in i.fields for i in lead_writes)
    for item in lead_writes:
        row = leads[str(item.source_id)]
        assert Decimal(str(row["Lead_Score__c"])) == Decimal(str(item.fields["score"]))
        assert row["Rating"] == item.fields["grade"]
        if "lifecycle_stage" in item.fields:
            assert row["Lifecycle_Stage__c"] == item.fields["lifecycle_stage"]

    before = _snapshot(sandbox)

    # a second rules + drain cycle decides and creates nothing new
    enqueued, drained = _rules_and_drain(settings, store)
    assert enqueued == dict.fromkeys(CRMS, 0) and all(d.claimed == 0 for d in drained.values())
    assert _snapshot(sandbox) == before

    # nor after a re-pull: the written scores come back through field_mappings and match
    _backfill(settings, store)
    enqueued, drained = _rules_and_drain(settings, store)
    assert enqueued == dict.fromkeys(CRMS, 0), enqueued
    assert _snapshot(sandbox) == before

    # a create pushed again (a drain killed before booking) finds the first copy instead of a second one
    for system in CRMS:
        again = [i for obj in ("tasks", "notes", "deals") for i in _creates(store, system, obj)]
        for item in again:
            assert item.id is not None
            store.update_outbox(item.id, "pending", attempts=0)
        conn = settings.connection(CONNECTION_NAMES[system])
        connector = build_connector(conn)
        try:
            result = drain(store, connector, conn)
        finally:
            connector.close()
        assert result.done == len(again) and result.created == 0 and result.failed == 0, (system, result)
    assert _snapshot(sandbox) == before
