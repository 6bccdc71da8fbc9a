"""iter_records streams in batches (constant memory) and filters correctly."""

from __future__ import annotations

import datetime as dt
import gc
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal

from crmsync.model import UTC, Deal, ObjectType, Record
from crmsync.store import Store

T0 = dt.datetime(2025, 1, 1, tzinfo=UTC)
N = 6000


def deals(n: int, connection: str = "hs") -> list[Deal]:
    return [
        Deal(
            connection=connection, source_object="deals", source_id=f"D{i:06d}",
            modified_at=T0 + dt.timedelta(minutes=i), amount=Decimal(i) / 100, currency="USD",
            name=f"deal {i} " + "x" * 200, extra={"blob": "y" * 300, "i": i},
        )
        for i in range(n)
    ]


def test_filters_and_order(store: Store) -> None:
    with store.transaction() as tx:
        tx.upsert(deals(300) + deals(20, connection="sf"))
        tx.mark_deleted(ObjectType.DEAL, "hs", ["D000005"], T0)
    since = T0 + dt.timedelta(minutes=250)
    got = list(store.iter_records(ObjectType.DEAL, connection="hs", modified_since=since, batch_size=7))
    assert [r.source_id for r in got] == [f"D{i:06d}" for i in range(250, 300)]  # inclusive bound
    assert store.count(ObjectType.DEAL, "hs", modified_since=since) == 50
    everything = list(store.iter_records(ObjectType.DEAL, batch_size=64))
    assert len(everything) == 319 and "D000005" not in {r.source_id for r in everything if r.connection == "hs"}
    assert [r.connection for r in everything] == ["hs"] * 299 + ["sf"] * 20
    assert len(list(store.iter_records(ObjectType.DEAL, include_deleted=True))) == 320
    assert list(store.iter_records(ObjectType.LEAD)) == []


def _peak(fn: object) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_iteration_does_not_materialise_the_table(store: Store) -> None:
    for start in range(0, N, 2000):
        with store.transaction() as tx:
            tx.upsert(deals(N)[start : start + 2000])

    def stream() -> None:
        seen = 0
        records: Iterator[Record] = store.iter_records(ObjectType.DEAL, batch_size=200)
        for record in records:
            seen += 1
            assert record.modified_at.tzinfo is UTC
        assert seen == N

    def materialise() -> None:
        assert len(list(store.iter_records(ObjectType.DEAL, batch_size=200))) == N

    streamed, listed = _peak(stream), _peak(materialise)
    # a buffered fetch of all rows would need at least as much as the list of records
    assert streamed * 4 < listed, (streamed, listed)


def test_early_close_releases_the_connection(store: Store) -> None:
    with store.transaction() as tx:
        tx.upsert(deals(50))
    for _ in range(20):  # more than the pool holds; leaked connections would exhaust it
        iterator = store.iter_records(ObjectType.DEAL, batch_size=10)
        assert next(iterator).source_id == "D000000"
        iterator.close()  # type: ignore[attr-defined]
    with store.transaction() as tx:
        tx.upsert(deals(1))
