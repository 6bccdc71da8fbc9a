"""Upsert policy (last write by modified_at wins, equal timestamps update), validation, deletes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from crmsync.model import UTC, Deal, ModelError, ObjectType, Owner, Record
from crmsync.store import Store, content_hash

T0 = dt.datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def deal(source_id: str = "D1", *, at: dt.datetime = T0, connection: str = "hs", **kw: object) -> Deal:
    return Deal(connection=connection, source_object="deals", source_id=source_id, modified_at=at, **kw)  # type: ignore[arg-type]


def stored(store: Store, source_id: str = "D1", connection: str = "hs") -> Deal:
    record = store.get(ObjectType.DEAL, connection, source_id)
    assert isinstance(record, Deal)
    return record


def test_newer_modified_at_replaces(store: Store) -> None:
    with store.transaction() as tx:
        tx.upsert([deal(name="old", amount=Decimal("1"))])
    with store.transaction() as tx:
        assert tx.upsert([deal(at=T0 + dt.timedelta(seconds=1), name="new", amount=Decimal("2"))]) == 1
    assert stored(store).name == "new" and stored(store).amount == Decimal("2")


def test_older_modified_at_is_ignored(store: Store) -> None:
    with store.transaction() as tx:
        tx.upsert([deal(name="current")])
    with store.transaction() as tx:
        assert tx.upsert([deal(at=T0 - dt.timedelta(microseconds=1), name="stale")]) == 0
    assert stored(store).name == "current"
    assert stored(store).modified_at == T0


def test_equal_modified_at_still_updates_and_repull_is_idempotent(store: Store) -> None:
    with store.transaction() as tx:
        tx.upsert([deal(name="first")])
    with store.transaction() as tx:
        assert tx.upsert([deal(name="remapped")]) == 1
    assert stored(store).name == "remapped"
    for _ in range(2):
        with store.transaction() as tx:
            tx.upsert([deal(name="remapped")])
    assert store.count(ObjectType.DEAL) == 1
    assert stored(store) == deal(name="remapped")


def test_duplicates_in_one_batch_keep_the_newest(store: Store) -> None:
    batch = [
        deal(at=T0 + dt.timedelta(minutes=5), name="newest"),
        deal(at=T0, name="older"),
        deal("D2", name="a"),
        deal("D2", name="b"),  # equal timestamps: the later one wins
    ]
    with store.transaction() as tx:
        assert tx.upsert(batch) == 2
    assert stored(store).name == "newest"
    assert stored(store, "D2").name == "b"


def test_mixed_kinds_and_connections_in_one_call(store: Store, full_record: Callable[..., Record]) -> None:
    records = [full_record(kind, 3) for kind in ObjectType] + [deal(connection="hs"), deal(connection="sf")]
    with store.transaction() as tx:
        assert tx.upsert(records) == len(records)
    for record in records:
        assert store.get(record.object_type, record.connection, record.source_id) == record
    assert store.source_ids(ObjectType.DEAL, "hs") == {"D1"}
    assert store.count(ObjectType.DEAL) == 3


def test_content_hash_ignores_echo_noise_and_sees_field_changes(store: Store) -> None:
    base = deal(name="n", amount=Decimal("10.50"), currency="EUR", extra={"SystemModstamp": "a"})
    echo = dataclasses.replace(base, modified_at=T0 + dt.timedelta(hours=1), extra={"SystemModstamp": "b"})
    same_value = dataclasses.replace(base, amount=Decimal("10.5000"))
    changed = dataclasses.replace(base, amount=Decimal("10.51"))
    assert content_hash(base) == content_hash(echo) == content_hash(same_value)
    assert content_hash(changed) != content_hash(base)
    assert content_hash(dataclasses.replace(base, stage_id="s2")) != content_hash(base)
    with store.transaction() as tx:
        tx.upsert([base, deal("D2", name="other")])
        hashes = tx.content_hashes(ObjectType.DEAL, "hs", ["D1", "D2", "missing"])
    assert hashes["D1"] == content_hash(base)
    assert set(hashes) == {"D1", "D2"}
    assert store.content_hashes(ObjectType.DEAL, "hs", ["D1"]) == {"D1": content_hash(base)}


@pytest.mark.parametrize(
    "bad",
    [
        {"stage_changed_at": dt.datetime(2025, 1, 1, 12, 0)},  # naive
        {"last_activity_at": dt.datetime(2025, 1, 1)},  # naive
        {"amount": 10.5},  # float money
        {"currency": "EURO"},
        {"close_date": dt.datetime(2025, 1, 1, tzinfo=UTC)},  # a datetime for a date
    ],
    ids=["naive-stage-changed", "naive-activity", "float-amount", "bad-currency", "datetime-as-date"],
)
def test_invalid_values_are_refused_and_nothing_is_written(store: Store, bad: dict[str, object]) -> None:
    good = deal("OK")
    wrong = dataclasses.replace(deal("BAD"), **bad)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="BAD"), store.transaction() as tx:
        tx.upsert([good, wrong])
    assert store.count(ObjectType.DEAL) == 0


def test_naive_timestamps_are_refused_by_the_model_and_the_store(store: Store) -> None:
    with pytest.raises(ModelError, match="naive"):
        deal(at=dt.datetime(2025, 1, 1))
    sneaky = deal()
    sneaky.modified_at = dt.datetime(2025, 1, 1)  # mutated after validation
    with pytest.raises(ModelError, match="naive"), store.transaction() as tx:
        tx.upsert([sneaky])
    with pytest.raises(ModelError, match="naive"):
        list(store.iter_records(ObjectType.DEAL, modified_since=dt.datetime(2025, 1, 1)))
    with pytest.raises(ModelError, match="naive"), store.transaction() as tx:
        tx.mark_deleted(ObjectType.DEAL, "hs", ["D1"], dt.datetime(2025, 1, 1))


def test_offsets_are_normalised_to_utc(store: Store) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    with store.transaction() as tx:
        tx.upsert([deal(at=T0.astimezone(tokyo), stage_changed_at=T0.astimezone(tokyo))])
    loaded = stored(store)
    assert loaded.modified_at == T0 and loaded.modified_at.tzinfo is UTC
    assert loaded.stage_changed_at == T0 and loaded.stage_changed_at is not None
    assert loaded.stage_changed_at.tzinfo is UTC


def test_mark_deleted_and_resurrection_rules(store: Store) -> None:
    with store.transaction() as tx:
        tx.upsert([deal("D1"), deal("D2"), deal("D3")])
    swept_at = T0 + dt.timedelta(days=1)
    with store.transaction() as tx:
        assert tx.mark_deleted(ObjectType.DEAL, "hs", ["D1", "D2", "unknown"], swept_at) == 2
        assert tx.mark_deleted(ObjectType.DEAL, "other", ["D3"], swept_at) == 0
    assert store.count(ObjectType.DEAL) == 1
    assert store.count(ObjectType.DEAL, include_deleted=True) == 3
    assert store.source_ids(ObjectType.DEAL, "hs") == {"D3"}
    assert store.source_ids(ObjectType.DEAL, "hs", include_deleted=True) == {"D1", "D2", "D3"}
    gone = stored(store, "D1")
    assert gone.deleted and gone.modified_at == swept_at
    assert [r.source_id for r in store.iter_records(ObjectType.DEAL, include_deleted=True)] == ["D1", "D2", "D3"]
    # a stale re-pull (modified before the sweep) does not resurrect; a newer version does
    with store.transaction() as tx:
        tx.upsert([deal("D1", at=T0 + dt.timedelta(hours=1)), deal("D2", at=swept_at + dt.timedelta(seconds=1))])
    assert stored(store, "D1").deleted
    assert not stored(store, "D2").deleted
    # deleting with an older timestamp keeps the newer modified_at
    with store.transaction() as tx:
        tx.mark_deleted(ObjectType.DEAL, "hs", ["D3"], T0 - dt.timedelta(days=1))
    assert stored(store, "D3").deleted and stored(store, "D3").modified_at == T0


def test_upserted_deleted_flag_round_trips(store: Store) -> None:
    owner = Owner(connection="hs", source_object="owners", source_id="o1", modified_at=T0, deleted=True)
    store.upsert([owner])
    assert store.get(ObjectType.OWNER, "hs", "o1") == owner
    assert store.count(ObjectType.OWNER) == 0


def test_unknown_kind_is_an_error(store: Store) -> None:
    with pytest.raises(ModelError, match="unknown object type"):
        store.count("opportunity")


def test_deletion_time_is_stored_like_every_other_timestamp(store: Store) -> None:
    """mark_deleted's new modified_at must compare correctly with modified_since (SQLite keeps
    timestamps as ISO text, so one odd format would break ordering within a day)."""
    morning = T0.replace(hour=8)
    with store.transaction() as tx:
        tx.upsert([deal("A", at=morning.replace(hour=10)), deal("B", at=morning)])
        tx.mark_deleted(ObjectType.DEAL, "hs", ["B"], morning.replace(hour=9))
    since = morning.replace(minute=30)
    got = {r.source_id for r in store.iter_records(ObjectType.DEAL, modified_since=since, include_deleted=True)}
    assert got == {"A", "B"}
    assert store.count(ObjectType.DEAL, include_deleted=True, modified_since=morning.replace(hour=9)) == 2
    assert store.count(ObjectType.DEAL, include_deleted=True, modified_since=morning.replace(hour=9, second=1)) == 1
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT modified_at, synced_at, created_at FROM deals").all()
        for row in raw:
            for value in row:
                assert value is None or (len(value) == 32 and value[10] == "T" and value.endswith("+00:00")), value
