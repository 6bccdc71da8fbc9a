"""The outbox drain against the sandboxes over real HTTP: crash safety, partial failures, conflict
safety, field ownership, batching."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crmsync.model import ObjectType
from crmsync.store import OutboxItem, Store
from crmsync.sync.engine import SyncEngine
from crmsync.sync.outbox import KILL_ENV, PAUSE_NS, drain, filter_echoes, is_echo, pending_reruns
from waiting import wait_until

from .conftest import Env

HERE = Path(__file__).resolve().parent
TASK_OBJECT = {"salesforce": "Task", "hubspot": "tasks", "pipedrive": "activities"}
DEAL_OBJECT = {"salesforce": "Opportunity", "hubspot": "deals", "pipedrive": "deals"}
KINDS = ["salesforce", "hubspot", "pipedrive"]


def _ids(env: Env, object_name: str) -> list[str]:
    rows = env.sim.truth(object_name)
    key = "Id" if env.kind == "salesforce" else "id"
    return [str(r[key]) for r in rows]


def _key_of(env: Env, row: dict[str, Any]) -> Any:
    if env.kind == "salesforce":
        return row.get("Crmsync_Key__c")
    if env.kind == "hubspot":
        return (row.get("properties") or row).get("crmsync_key")
    return row.get("crmsync_key") or json.dumps(row)


def _pull_deals(store: Store, env: Env) -> None:
    connector = env.connector()
    try:
        SyncEngine(store, connector, env.conn).sync(["deals"])
    finally:
        connector.close()


def _drain(store: Store, env: Env, **kw: Any) -> Any:
    connector = env.connector()
    try:
        return drain(store, connector, env.conn, **kw)
    finally:
        connector.close()


@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_between_create_and_bookkeeping_leaves_exactly_one_task(
        kind: str, sandbox: Callable[..., Env], tmp_path: Path) -> None:
    env = sandbox(kind, deals=50)
    store_url = f"sqlite:///{tmp_path / 'kill.db'}"
    store = Store.open(store_url)
    store.upgrade()
    deal_id = _ids(env, DEAL_OBJECT[kind])[0]
    key = f"task:handoff:{kind}:{deal_id}"
    fields = {"subject": "Kick-off call", "deal_id": deal_id, "due_date": "2025-07-01", "crmsync_key": key}
    if kind == "hubspot":
        del fields["deal_id"]  # the HubSpot pusher does not turn deal_id into an association (yet)
    store.enqueue(OutboxItem(connection=env.conn.name, object_name="tasks", operation="create",
                             fields=fields, idempotency_key=key))
    conn = env.conn.model_dump(mode="json")
    conn["credentials"] = {k: v.get_secret_value() for k, v in env.conn.credentials.items()}
    conn["ca_bundle"] = str(env.conn.ca_bundle) if env.conn.ca_bundle else None
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"store_url": store_url, "conn": conn}), encoding="utf-8")
    child = subprocess.run([sys.executable, str(HERE / "drain_child.py"), str(args)],
                           env={**os.environ, KILL_ENV: "1"}, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    # the CRM has the task; our books still say in flight
    created = [r for r in env.sim.truth(TASK_OBJECT[kind]) if key in str(_key_of(env, r))]
    assert len(created) == 1
    assert [i.status for i in store.outbox_items()] == ["in_flight"]
    # restart: the orphaned item is pushed again and finds the task by its crmsync key
    result = _drain(store, env)
    assert result.recovered == 1 and result.done == 1, result
    after = [r for r in env.sim.truth(TASK_OBJECT[kind]) if key in str(_key_of(env, r))]
    assert len(after) == 1
    (item,) = store.outbox_items()
    assert item.status == "done" and item.attempts == 2
    assert item.result_id is not None and item.result_id[:15] == str(
        after[0]["Id" if kind == "salesforce" else "id"])[:15]
    # and a third drain has nothing to do
    assert _drain(store, env).claimed == 0


@pytest.mark.parametrize("kind", KINDS)
def test_human_edit_between_decision_and_push_is_not_overwritten(
        kind: str, sandbox: Callable[..., Env], store: Store) -> None:
    env = sandbox(kind, deals=30)
    _pull_deals(store, env)
    deals = list(store.iter_records(ObjectType.DEAL, connection=env.conn.name))
    edited, untouched = deals[0], deals[1]
    for deal in (edited, untouched):  # the decision: rename, based on the version we pulled
        store.enqueue(OutboxItem(connection=env.conn.name, object_name="deals", operation="update",
                                 source_id=deal.source_id, fields={"name": f"crmsync {deal.source_id}"},
                                 based_on_modified_at=deal.modified_at,
                                 idempotency_key=f"rename:{deal.source_id}"))
    human_field = {"salesforce": "Name", "hubspot": "dealname", "pipedrive": "title"}[kind]
    env.sim.edit(DEAL_OBJECT[kind], edited.source_id, {human_field: "Renamed by a human"})
    result = _drain(store, env)
    assert result.conflicts == 1 and result.done == 1, result
    by_id = {i.source_id: i for i in store.outbox_items()}
    assert by_id[edited.source_id].status == "parked"
    assert "conflict" in (by_id[edited.source_id].last_error or "")
    assert by_id[untouched.source_id].status == "done"
    names = {_row_id(env, r): _row_name(env, r) for r in env.sim.truth(DEAL_OBJECT[kind])}
    assert names[edited.source_id] == "Renamed by a human"
    assert names[untouched.source_id] == f"crmsync {untouched.source_id}"
    # the rules are asked to decide again for the edited record only
    assert [(r.source_id, r.object_type) for r in pending_reruns(store, env.conn.name)] == [
        (edited.source_id, "deal")]
    # the next pull brings our own write back: an echo, not a human change; the edit is not
    _pull_deals(store, env)
    back = {d.source_id: d for d in store.iter_records(ObjectType.DEAL, connection=env.conn.name)}
    assert is_echo(store, back[untouched.source_id])
    assert not is_echo(store, back[edited.source_id])
    assert [d.source_id for d in filter_echoes(store, [back[untouched.source_id], back[edited.source_id]])] == [
        edited.source_id]


def _row_id(env: Env, row: dict[str, Any]) -> str:
    return str(row["Id"] if env.kind == "salesforce" else row["id"])


def _row_name(env: Env, row: dict[str, Any]) -> Any:
    if env.kind == "salesforce":
        return row["Name"]
    if env.kind == "hubspot":
        return (row.get("properties") or row).get("dealname")
    return row.get("title")


@pytest.mark.parametrize("kind", KINDS)
def test_field_ownership_refuses_without_calling_the_crm(
        kind: str, sandbox: Callable[..., Env], store: Store) -> None:
    env = sandbox(kind, deals=10, writable_fields={"deals": ["owner_id"]})
    deal_id = _ids(env, DEAL_OBJECT[kind])[0]
    store.enqueue(OutboxItem(connection=env.conn.name, object_name="deals", operation="update",
                             source_id=deal_id, fields={"amount": "1.00"}, idempotency_key="amount"))
    before = env.calls()
    result = _drain(store, env)
    assert result.refused == 1 and result.batches == 0
    assert env.calls() - before <= 1  # at most a login; no write
    (item,) = store.outbox_items()
    assert item.status == "failed" and "amount" in (item.last_error or "") and "writable" in (item.last_error or "")


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_results_are_booked_per_item(kind: str, sandbox: Callable[..., Env], store: Store) -> None:
    env = sandbox(kind, deals=20)
    ids = _ids(env, DEAL_OBJECT[kind])[:3]
    missing = {"salesforce": "006000000000999AAA", "hubspot": "999999999", "pipedrive": "999999"}[kind]
    for n, deal_id in enumerate([*ids, missing]):
        store.enqueue(OutboxItem(connection=env.conn.name, object_name="deals", operation="update",
                                 source_id=deal_id, fields={"name": f"batch {n}"}, idempotency_key=f"b{n}"))
    result = _drain(store, env)
    assert result.done == 3 and result.failed == 1, result
    if kind == "hubspot":  # one batch call answered 207 Multi-Status with per-item errors
        assert env.sim.log.snapshot()["by_status"].get("207") == 1
    by_id = {i.source_id: i for i in store.outbox_items()}
    assert by_id[missing].status == "failed" and by_id[missing].last_error
    assert all(by_id[i].status == "done" for i in ids)
    names = {_row_id(env, r): _row_name(env, r) for r in env.sim.truth(DEAL_OBJECT[kind])}
    assert [names[i] for i in ids] == ["batch 0", "batch 1", "batch 2"]


@pytest.mark.parametrize("kind", KINDS)
def test_batches_use_the_crm_batch_size(kind: str, sandbox: Callable[..., Env], store: Store) -> None:
    env = sandbox(kind, deals=450)
    ids = _ids(env, DEAL_OBJECT[kind])[:450]
    for deal_id in ids:
        store.enqueue(OutboxItem(connection=env.conn.name, object_name="deals", operation="update",
                                 source_id=deal_id, fields={"name": f"n{deal_id}"}, idempotency_key=f"n{deal_id}"))
    connector = env.connector()
    try:
        before = connector.usage.calls
        result = drain(store, connector, env.conn)
        calls = connector.usage.calls - before
    finally:
        connector.close()
    size = {"salesforce": 200, "hubspot": 100, "pipedrive": 1}[kind]
    assert result.done == 450
    # records / batch size, plus at most one metadata read (Pipedrive's custom field names)
    assert -(-450 // size) <= calls <= -(-450 // size) + 1, (calls, result)
    stamp = dt.datetime.now(dt.UTC)
    assert all(i.updated_at is not None and i.updated_at <= stamp for i in store.outbox_items())


def test_writable_fields_may_name_native_fields(sandbox: Callable[..., Env], store: Store) -> None:
    """``writable_fields: {deals: [hubspot_owner_id]}`` allows the canonical ``owner_id`` write."""
    env = sandbox("hubspot", deals=10, writable_fields={"deals": ["hubspot_owner_id", "dealname"]})
    deal_id = _ids(env, "deals")[0]
    owner = str(env.sim.truth("owners")[0]["id"])
    store.enqueue(OutboxItem(connection=env.conn.name, object_name="deals", operation="update",
                             source_id=deal_id, fields={"owner_id": owner}, idempotency_key="owner"))
    store.enqueue(OutboxItem(connection=env.conn.name, object_name="deals", operation="update",
                             source_id=deal_id, fields={"amount": "5"}, idempotency_key="amount"))
    result = _drain(store, env)
    assert (result.done, result.refused) == (1, 1), result
    row = next(r for r in env.sim.truth("deals") if str(r["id"]) == deal_id)
    assert row["properties"]["hubspot_owner_id"] == owner


@pytest.mark.parametrize("kind", KINDS)
def test_retriable_failures_back_off_then_succeed_or_give_up(
        kind: str, sandbox: Callable[..., Env], store: Store) -> None:
    env = sandbox(kind, deals=10)
    env.conn.options["max_attempts"] = 1  # no transport-level retries: the outbox decides
    ids = _ids(env, DEAL_OBJECT[kind])[:2]
    for deal_id in ids:
        store.enqueue(OutboxItem(connection=env.conn.name, object_name="deals", operation="update",
                                 source_id=deal_id, fields={"name": f"retry {deal_id}"}, idempotency_key=deal_id))
    write_path = {"salesforce": "composite/sobjects", "hubspot": "batch/update", "pipedrive": "/api/v2/deals/"}[kind]
    env.sim.knobs.update({"faults": [{"path": write_path, "kind": "503", "method": "PATCH" if kind != "hubspot"
                                      else "POST"}]})
    first = _drain(store, env, backoff_base_s=0.3, max_attempts=3)
    assert first.done == 0 and first.retried + (2 if first.status == "paused" else 0) >= 2, first
    assert {i.status for i in store.outbox_items()} == {"pending"}
    assert all(i.last_error for i in store.outbox_items())
    store.set_state(PAUSE_NS, env.conn.name, None)
    assert _drain(store, env, backoff_base_s=0.3).claimed == 0  # backing off
    env.sim.knobs.update({"faults": []})
    # drains claim nothing until the backoff is over, then push both
    drains = []

    def drained() -> bool:
        drains.append(_drain(store, env, backoff_base_s=0.3))
        return bool(drains[-1].claimed)

    wait_until(drained, 10, "the backoff to end", interval=0.05)
    second = drains[-1]
    assert second.done == 2, second
    assert [i.attempts for i in store.outbox_items()] == [2, 2]
    # a write that keeps failing ends failed, with its error kept until someone acts
    store.enqueue(OutboxItem(connection=env.conn.name, object_name="deals", operation="update",
                             source_id=ids[0], fields={"name": "never"}, idempotency_key="never"))
    env.sim.knobs.update({"faults": [{"path": write_path, "kind": "503"}]})
    def given_up() -> bool:  # drain again each time the short backoff has passed, until it gives up
        store.set_state(PAUSE_NS, env.conn.name, None)
        _drain(store, env, backoff_base_s=0.01, max_attempts=3)
        return next(i for i in store.outbox_items() if i.idempotency_key == "never").status == "failed"

    wait_until(given_up, 10, "the write to be given up", interval=0.02)
    env.sim.knobs.update({"faults": []})
    never = next(i for i in store.outbox_items() if i.idempotency_key == "never")
    assert never.status == "failed" and never.attempts == 3 and "gave up after 3 attempts" in (never.last_error or "")


@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_after_a_mirror_create_leaves_one_copy_and_links_it(
        kind: str, sandbox: Callable[..., Env], tmp_path: Path) -> None:
    env = sandbox(kind, deals=5)
    store_url = f"sqlite:///{tmp_path / 'kill-mirror.db'}"
    store = Store.open(store_url)
    store.upgrade()
    key = "mirror:m1:other-crm:4711"
    stage = {"salesforce": "Qualification", "hubspot": "qualification", "pipedrive": None}[kind]
    fields: dict[str, Any] = {"name": "Mirrored deal 4711", "amount": "1234.50", "close_date": "2030-01-31"}
    if stage:
        fields["stage_id"] = stage
    store.enqueue(OutboxItem(connection=env.conn.name, object_name="deals", operation="create", fields=fields,
                             idempotency_key=key))
    conn = env.conn.model_dump(mode="json")
    conn["credentials"] = {k: v.get_secret_value() for k, v in env.conn.credentials.items()}
    conn["ca_bundle"] = str(env.conn.ca_bundle) if env.conn.ca_bundle else None
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"store_url": store_url, "conn": conn}), encoding="utf-8")
    child = subprocess.run([sys.executable, str(HERE / "drain_child.py"), str(args)],
                           env={**os.environ, KILL_ENV: "1"}, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert store.find_link("other-crm", "deal", "4711") is None  # killed before the bookkeeping
    result = _drain(store, env)
    assert result.recovered == 1 and result.done == 1, result
    copies = [r for r in env.sim.truth(DEAL_OBJECT[kind]) if _row_name(env, r) == "Mirrored deal 4711"]
    assert len(copies) == 1
    link = store.find_link("other-crm", "deal", "4711")
    assert link is not None and link.right[0] == env.conn.name
    assert link.right[2][:15] == _row_id(env, copies[0])[:15]
