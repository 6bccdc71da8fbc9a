"""Outbox (idempotency keys), run log, decision log and rule-set versions."""

from __future__ import annotations

import datetime as dt

import pytest

from crmsync.model import UTC, ModelError, now_utc
from crmsync.store import Decision, OutboxItem, OutboxStatus, Store, StoreError
from crmsync.store import outbox as store_outbox

T0 = dt.datetime(2025, 5, 1, tzinfo=UTC)


def item(key: str, *, connection: str = "hs", source_id: str | None = "D1", operation: str = "update") -> OutboxItem:
    return OutboxItem(
        connection=connection,
        object_name="deals",
        source_id=source_id,
        operation=operation,
        fields={"dealstage": "closedwon", "amount": "10.50", "nested": {"a": [1, 2]}},
        based_on_modified_at=T0,
        idempotency_key=key,
    )


def test_enqueue_is_idempotent_by_key(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.enqueue(item("rule:hygiene:D1:v1")) is True
        assert tx.enqueue(item("rule:hygiene:D1:v1")) is False
    assert store.enqueue(item("rule:hygiene:D1:v1")) is False
    assert store.enqueue(item("create:task:D1", source_id=None, operation="create")) is True
    pending = store.outbox_pending("hs", 10)
    assert [p.idempotency_key for p in pending] == ["rule:hygiene:D1:v1", "create:task:D1"]
    first = pending[0]
    assert first.id is not None and first.status == "pending" and first.attempts == 0
    assert first.fields == {"dealstage": "closedwon", "amount": "10.50", "nested": {"a": [1, 2]}}
    assert first.based_on_modified_at == T0 and first.based_on_modified_at.tzinfo is UTC
    assert first.created_at is not None and first.created_at.tzinfo is UTC
    assert pending[1].source_id is None
    assert store.outbox_counts() == {"pending": 2}


def test_duplicate_key_does_not_abort_the_transaction(store: Store) -> None:
    store.enqueue(item("k1"))
    with store.transaction() as tx:
        assert not tx.enqueue(item("k1"))
        tx.save_cursor("hs", "deals", {"after": 1})
    assert store.load_cursor("hs", "deals") == {"after": 1}
    assert store.outbox_counts() == {"pending": 1}


def test_outbox_lifecycle(store: Store) -> None:
    for i in range(5):
        store.enqueue(item(f"k{i}", source_id=f"D{i}"))
    store.enqueue(item("k5", source_id="D4"))  # a second write to D4 waits for the next claim
    store.enqueue(item("other", connection="sf"))
    assert [p.idempotency_key for p in store.outbox_pending("hs", 2)] == ["k0", "k1"]
    now = now_utc()
    with store.transaction() as tx:
        due = store_outbox.due(now, lambda attempts: 5.0 * attempts, 60.0)
        claimed, orphans = store_outbox.claim(tx.conn, "hs", 3, due_clause=due, exclude=set(), now=now)
    assert [c.idempotency_key for c in claimed] == ["k0", "k1", "k2"] and orphans == 0
    assert all(c.status == "in_flight" and c.attempts == 1 for c in claimed)
    with store.transaction() as tx:  # in_flight rows come first again (a killed drain's), unless excluded
        again, orphans = store_outbox.claim(tx.conn, "hs", 3, due_clause=due, exclude=set(), now=now)
        assert [c.idempotency_key for c in again] == ["k0", "k1", "k2"] and orphans == 3
    with store.transaction() as tx:
        rest, _ = store_outbox.claim(tx.conn, "hs", 3, due_clause=due, exclude={c.id or 0 for c in claimed}, now=now)
    assert [c.idempotency_key for c in rest] == ["k3", "k4"]
    assert [p.idempotency_key for p in store.outbox_pending("hs", 10)] == ["k5"]
    with store.transaction() as tx:  # back to pending: in_flight rows only, attempts reset
        assert store_outbox.reset(tx.conn, to=OutboxStatus.PENDING, item_id=rest[0].id,
                                  only=(OutboxStatus.IN_FLIGHT,), reset_attempts=True) == 1
        assert store_outbox.reset(tx.conn, to=OutboxStatus.PENDING, item_id=rest[0].id,
                                  only=(OutboxStatus.IN_FLIGHT,)) == 0
        tx.update_outbox(rest[1].id or 0, "pending", attempts=0)
    assert [p.idempotency_key for p in store.outbox_pending("hs", 10)] == ["k3", "k4", "k5"]
    assert store.update_outbox(claimed[0].id or 0, "done", attempts=1, result_id="0061")
    assert store.update_outbox(claimed[1].id or 0, "failed", attempts=3, last_error="HTTP 400 INVALID_FIELD")
    assert store.update_outbox(claimed[2].id or 0, "parked", last_error="conflict: changed in CRM")
    assert not store.update_outbox(999_999, "done")
    assert store.outbox_counts() == {"done": 1, "failed": 1, "parked": 1, "pending": 4}
    assert store.outbox_counts("hs") == {"done": 1, "failed": 1, "parked": 1, "pending": 3}
    done = store.outbox_items(status="done")
    assert len(done) == 1 and done[0].result_id == "0061" and done[0].attempts == 1
    failed = store.outbox_items(status="failed")[0]
    assert failed.last_error == "HTTP 400 INVALID_FIELD" and failed.attempts == 3
    with pytest.raises(ValueError):
        store.update_outbox(claimed[0].id or 0, "finished")


def test_outbox_item_validation() -> None:
    with pytest.raises(ValueError):
        item("k", operation="merge")
    with pytest.raises(ModelError, match="needs a source_id"):
        item("k", source_id=None, operation="update")
    with pytest.raises(ModelError, match="idempotency"):
        item("")
    with pytest.raises(ModelError, match="naive"):
        OutboxItem(connection="hs", object_name="deals", operation="create", fields={}, idempotency_key="k",
                   based_on_modified_at=dt.datetime(2025, 1, 1))


def test_run_log(store: Store) -> None:
    first = store.start_run("sync", "hs", "deals")
    second = store.start_run("sweep", "hs")
    store.finish_run(first, "ok", {"pulled": 120, "quarantined": 1})
    store.finish_run(second, "failed", {"live": 3}, "HTTP 503 after 5 retries")
    third = store.start_run("billing")
    runs = store.last_runs(10)
    assert [r.id for r in runs] == [third, second, first]
    assert runs[2].status == "ok" and runs[2].counts == {"pulled": 120, "quarantined": 1}
    assert runs[2].object_name == "deals" and runs[2].finished_at is not None
    assert runs[2].finished_at >= runs[2].started_at and runs[2].started_at.tzinfo is UTC
    assert runs[1].error == "HTTP 503 after 5 retries"
    assert runs[0].status == "running" and runs[0].finished_at is None and runs[0].connection is None
    assert [r.id for r in store.last_runs(10, kind="sweep")] == [second]
    assert [r.id for r in store.last_runs(1)] == [third]
    assert store.get_run(first) == runs[2]
    with pytest.raises(ValueError):
        store.start_run("import")
    with pytest.raises(StoreError):
        store.finish_run(third, "running", {})
    with pytest.raises(StoreError):
        store.finish_run(123_456, "ok", {})


def test_decision_log_and_rule_sets(store: Store) -> None:
    run_id = store.start_run("rules")
    with store.transaction() as tx:
        assert tx.record_rule_set("abc123", "routing:\n  pools: []\n", author="ops@example.com")
        assert not tx.record_rule_set("abc123", "routing:\n  pools: []\n")
        first = tx.log_decision(
            run_id=run_id, rule_set_hash="abc123", rule_kind="routing", rule_name="emea-pool",
            connection="hs", object_type="lead", source_id="L1", action="assign",
            fields={"owner_id": "42"}, reason="round robin: next in pool emea after 17",
        )
        n = tx.log_decisions([
            Decision(rule_kind="hygiene", rule_name="close-date-past", connection="hs", object_type="deal",
                     source_id=f"D{i}", action="create_task", fields={"due": "2025-05-02"},
                     reason="close date 2025-04-01 is in the past", run_id=run_id)
            for i in range(3)
        ])
        assert n == 3
    decisions = store.decisions(run_id=run_id)
    assert len(decisions) == 4 and decisions[-1].id == first
    lead = store.decisions(object_type="lead", source_id="L1")
    assert len(lead) == 1
    assert lead[0].fields == {"owner_id": "42"} and lead[0].rule_set_hash == "abc123"
    assert lead[0].reason == "round robin: next in pool emea after 17"
    assert lead[0].created_at is not None and lead[0].created_at.tzinfo is UTC
    assert store.decisions(connection="sf") == []
    sets = store.rule_sets()
    assert [(s.hash, s.author) for s in sets] == [("abc123", "ops@example.com")]
    assert sets[0].source.startswith("routing:")


def test_decision_run_id_must_exist(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), store.transaction() as tx:
        tx.log_decision(run_id=987_654, rule_kind="scoring", rule_name="s", connection="hs",
                        object_type="lead", source_id="L1", action="score")
