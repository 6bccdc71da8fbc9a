"""Transactions: a page of records and its cursor commit together or not at all; quarantine,
state and the other transactional writes."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy.exc import IntegrityError

from crmsync.model import UTC, Deal, ObjectType
from crmsync.store import Store

T0 = dt.datetime(2025, 5, 1, tzinfo=UTC)


def page(n: int, start: int = 0) -> list[Deal]:
    return [
        Deal(connection="hs", source_object="deals", source_id=f"D{i:05d}", modified_at=T0 + dt.timedelta(seconds=i))
        for i in range(start, start + n)
    ]


class Boom(Exception):
    pass


def test_page_and_cursor_commit_together(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.upsert(page(50)) == 50
        tx.save_cursor("hs", "deals", {"after": "2025-05-01T00:00:49Z", "ids": ["D00049"]})
    assert store.count(ObjectType.DEAL) == 50
    assert store.load_cursor("hs", "deals") == {"after": "2025-05-01T00:00:49Z", "ids": ["D00049"]}


def test_failure_inside_the_transaction_leaves_neither_records_nor_cursor(store: Store) -> None:
    with store.transaction() as tx:
        tx.upsert(page(10))
        tx.save_cursor("hs", "deals", {"page": 1})
    with pytest.raises(Boom), store.transaction() as tx:
        tx.upsert(page(10, start=10))
        tx.save_cursor("hs", "deals", {"page": 2})
        tx.quarantine("hs", "deals", "D99999", {"raw": 1}, "unparseable amount")
        tx.set_state("routing", "pool-a", {"next": 3})
        raise Boom("connector died mid-page")
    assert store.count(ObjectType.DEAL) == 10
    assert store.load_cursor("hs", "deals") == {"page": 1}
    assert store.quarantine_count() == 0
    assert store.get_state("routing", "pool-a") is None


def test_database_error_rolls_back_the_whole_page(store: Store) -> None:
    with pytest.raises(IntegrityError), store.transaction() as tx:
        tx.upsert(page(5))
        tx.save_cursor("hs", "deals", {"page": 1})
        tx.link(("hs", "deals", "D1"), ("sf", "Opportunity", "006A"))
        tx.link(("hs", "deals", "D1"), ("sf", "Opportunity", "006B"))  # left side already linked
    assert store.count(ObjectType.DEAL) == 0
    assert store.load_cursor("hs", "deals") is None
    assert store.find_link("hs", "deals", "D1") is None


def test_cursor_overwrite_listing_and_delete(store: Store) -> None:
    store.save_cursor("hs", "deals", {"v": 1})
    with store.transaction() as tx:
        tx.save_cursor("hs", "deals", {"v": 2, "nested": {"ts": "2025-01-01T00:00:00Z"}})
        tx.save_cursor("sf", "Opportunity", {"v": 1})
        assert tx.load_cursor("hs", "deals") == {"v": 2, "nested": {"ts": "2025-01-01T00:00:00Z"}}
    cursors = store.cursors()
    assert [(c.connection, c.object_name, c.cursor) for c in cursors] == [
        ("hs", "deals", {"v": 2, "nested": {"ts": "2025-01-01T00:00:00Z"}}),
        ("sf", "Opportunity", {"v": 1}),
    ]
    assert all(c.updated_at.tzinfo is UTC for c in cursors)
    assert [c.object_name for c in store.cursors("sf")] == ["Opportunity"]
    with store.transaction() as tx:
        assert tx.delete_cursor("hs", "deals")
        assert not tx.delete_cursor("hs", "deals")
    assert store.load_cursor("hs", "deals") is None


def test_quarantine(store: Store) -> None:
    with store.transaction() as tx:
        first = tx.quarantine("hs", "deals", "D1", {"amount": "12,5", "nested": {"x": [1]}}, "amount: not a number")
        tx.quarantine("hs", "deals", None, {"id": None}, "missing source id")
        tx.quarantine("sf", "Opportunity", "006", {}, "naive timestamp")
    assert store.quarantine_count() == 3
    assert store.quarantine_count("hs") == 2
    entries = store.quarantined("hs")
    assert [e.source_id for e in entries] == ["D1", None]
    assert entries[0].payload == {"amount": "12,5", "nested": {"x": [1]}}
    assert entries[0].reason == "amount: not a number"
    assert entries[0].created_at.tzinfo is UTC and not entries[0].resolved
    with store.transaction() as tx:
        assert tx.resolve_quarantine(first)
    assert store.quarantine_count("hs") == 1
    assert store.quarantine_count("hs", include_resolved=True) == 2


def test_state_values(store: Store) -> None:
    assert store.get_state("budget", "hs:2025-05-01") is None
    store.set_state("budget", "hs:2025-05-01", {"calls": 10})
    with store.transaction() as tx:
        current = tx.get_state("budget", "hs:2025-05-01", for_update=True)
        tx.set_state("budget", "hs:2025-05-01", {"calls": current["calls"] + 5})
        tx.set_state("rr", "pool", [1, 2, 3])
        tx.set_state("rr", "scalar", 7)
    assert store.get_state("budget", "hs:2025-05-01") == {"calls": 15}
    assert store.get_state("rr", "pool") == [1, 2, 3]
    assert store.get_state("rr", "scalar") == 7
    with store.transaction() as tx:
        assert tx.delete_state("rr", "scalar")
    assert store.get_state("rr", "scalar") is None


def test_concurrent_read_modify_write_loses_no_increment(store: Store) -> None:
    """Writers serialise (SQLite: BEGIN IMMEDIATE; PostgreSQL: SELECT .. FOR UPDATE)."""
    store.set_state("counter", "n", 0)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                with store.transaction() as tx:
                    value = tx.get_state("counter", "n", for_update=True)
                    tx.set_state("counter", "n", value + 1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.get_state("counter", "n") == 100


def test_links_are_unique_on_both_sides(store: Store) -> None:
    with store.transaction() as tx:
        link_id = tx.link(("hs", "deals", "D1"), ("sf", "Opportunity", "006A"))
    link = store.find_link("sf", "Opportunity", "006A")
    assert link is not None and link.id == link_id
    assert link.left == ("hs", "deals", "D1") and link.right == ("sf", "Opportunity", "006A")
    assert store.find_link("hs", "deals", "D1") == link
    with pytest.raises(IntegrityError), store.transaction() as tx:
        tx.link(("hs", "deals", "D2"), ("sf", "Opportunity", "006A"))
