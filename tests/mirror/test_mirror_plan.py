"""Mirror planning is pure: changed deals + links + the other side's records -> outbox items."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from crmsync.mirror.keys import mirror_key, parse_mirror_key
from crmsync.mirror.plan import link_index, plan_mirror
from crmsync.model import Deal
from crmsync.settings import MirrorSettings

T0 = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)


def deal(conn: str, source_id: str, **kw: Any) -> Deal:
    values: dict[str, Any] = {"name": f"Deal {source_id}", "amount": Decimal("100.00"), "stage_id": "s1",
                              "close_date": dt.date(2025, 6, 30), "owner_id": "o1"}
    values.update(kw)
    return Deal(connection=conn, source_object="deals", source_id=source_id, modified_at=T0, **values)


def mirror(**kw: Any) -> MirrorSettings:
    base: dict[str, Any] = {"name": "hs2sf", "source": "hs", "target": "sf", "direction": "two_way",
                            "stage_map": {"s1": "Prospecting", "s2": "Closed Won"},
                            "owner_map": {"o1": "005A", "o2": "005B"},
                            "field_owner": {"close_date": "target"}}
    base.update(kw)
    return MirrorSettings(**base)


def test_unlinked_source_deal_becomes_one_create_with_the_mirror_key() -> None:
    plan = plan_mirror(mirror(), changed_source=[deal("hs", "1")], links={}, records={})
    assert [i.operation for i in plan.items] == ["create"]
    item = plan.items[0]
    assert item.connection == "sf"
    assert item.idempotency_key == mirror_key("hs2sf", "hs", "1") == "mirror:hs2sf:hs:1"
    assert item.fields["stage_id"] == "Prospecting" and item.fields["owner_id"] == "005A"
    assert item.fields["amount"] == "100.00" and item.fields["close_date"] == "2025-06-30"
    assert parse_mirror_key(item.idempotency_key) is not None


def test_linked_pair_in_sync_plans_nothing() -> None:
    s = deal("hs", "1")
    t = deal("sf", "A", name="Deal 1", stage_id="Prospecting", owner_id="005A", amount=Decimal("100"))
    links = link_index([(("hs", "1"), ("sf", "A"))])
    plan = plan_mirror(mirror(), changed_source=[s], changed_target=[t], links=links,
                       records={("hs", "1"): s, ("sf", "A"): t})
    assert plan.items == [] and plan.in_sync == 1


def test_each_field_flows_only_from_its_owner() -> None:
    s = deal("hs", "1", amount=Decimal("250"), close_date=dt.date(2025, 1, 1))
    t = deal("sf", "A", name="Deal 1", stage_id="Prospecting", owner_id="005A", close_date=dt.date(2025, 9, 9))
    links = link_index([(("hs", "1"), ("sf", "A"))])
    plan = plan_mirror(mirror(), changed_source=[s], links=links, records={("sf", "A"): t})
    by_conn = {i.connection: i for i in plan.items}
    assert by_conn["sf"].fields == {"amount": "250"}  # source owns amount
    assert by_conn["sf"].based_on_modified_at == T0 and by_conn["sf"].source_id == "A"
    assert by_conn["hs"].fields == {"close_date": "2025-09-09"}  # target owns close_date


def test_one_way_never_writes_the_source_nor_creates_from_the_target() -> None:
    s = deal("hs", "1")
    t = deal("sf", "A", name="Deal 1", stage_id="Closed Won", owner_id="005A", close_date=dt.date(2025, 9, 9))
    orphan = deal("sf", "B", stage_id="Prospecting", owner_id="005A")
    links = link_index([(("hs", "1"), ("sf", "A"))])
    plan = plan_mirror(mirror(direction="one_way"), changed_source=[], changed_target=[t, orphan], links=links,
                       records={("hs", "1"): s})
    assert [(i.connection, i.fields) for i in plan.items] == [
        ("sf", {"stage_id": "Prospecting", "close_date": "2025-06-30"})]


def test_mirror_copies_in_flight_are_not_created_back() -> None:
    copy = deal("sf", "A", name="Deal 1", stage_id="Prospecting", owner_id="005A",
                extra={"Crmsync_Key__c": "mirror:hs2sf:hs:1"})
    plan = plan_mirror(mirror(), changed_source=[], changed_target=[copy], links={}, records={})
    assert plan.items == [] and plan.copies_skipped == 1
    human = deal("sf", "B", stage_id="Closed Won", owner_id="005B")
    plan = plan_mirror(mirror(), changed_source=[], changed_target=[human], links={}, records={})
    assert [(i.connection, i.operation, i.fields["stage_id"], i.fields["owner_id"]) for i in plan.items] == [
        ("hs", "create", "s2", "o2")]


def test_unmapped_stage_is_reported_not_guessed() -> None:
    plan = plan_mirror(mirror(), changed_source=[deal("hs", "1", stage_id="weird")], links={}, records={})
    assert plan.items == [] and "weird" in plan.issues[0]


def test_update_keys_dedupe_the_same_plan() -> None:
    s = deal("hs", "1", amount=Decimal("250"))
    t = deal("sf", "A", name="Deal 1", stage_id="Prospecting", owner_id="005A")
    links = link_index([(("hs", "1"), ("sf", "A"))])
    first = plan_mirror(mirror(), changed_source=[s], links=links, records={("sf", "A"): t})
    again = plan_mirror(mirror(), changed_source=[s], links=links, records={("sf", "A"): t})
    assert [i.idempotency_key for i in first.items] == [i.idempotency_key for i in again.items]
