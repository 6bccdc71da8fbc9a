"""Compact per-sObject storage: rows built lazily, an Id list and a (SystemModstamp, Id) index.

A million opportunities are registered as (id, modstamp, builder, source) without building a
dict each; a row dict is materialised on first read and kept from then on (edits apply to it).
Both indexes stay sorted, so keyset queries start with a bisect instead of a scan.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from typing import Any

from crmsync.sandbox.salesforce.evaluate import Predicate, compile_condition, lower_bound, resolve, sort_rows
from crmsync.sandbox.salesforce.schema import SObjectType
from crmsync.sandbox.salesforce.soql import Query, SoqlError

Row = dict[str, Any]
Builder = Callable[[Any], Row]


class Table:
    def __init__(self, sobj: SObjectType) -> None:
        self.sobj = sobj
        # A dict value is a built row; anything else is the source its row is built from on first read.
        self.rows: dict[str, Any] = {}
        self._builder: Builder | None = None
        self.ids: list[str] = []
        self.order: list[tuple[str, str]] = []
        self.next_number = 1
        self.deleted_log: list[tuple[str, str]] = []  # (id, deletedDate) for getDeleted
        self._ext: dict[str, dict[str, set[str]]] = {f: {} for f in sobj.external_ids}

    # --- building -------------------------------------------------------------------------
    def add_lazy(self, record_id: str, modstamp: str, builder: Builder, source: Any) -> None:
        """Register a row without building it (call ``seal`` once all are added)."""
        if self._builder is None:
            self._builder = builder
        elif builder != self._builder:
            raise ValueError("one builder per table")
        self.rows[record_id] = source
        self.ids.append(record_id)
        self.order.append((modstamp, record_id))

    def seal(self, next_number: int) -> None:
        self.ids.sort()
        self.order.sort()
        self.next_number = max(self.next_number, next_number)

    # --- reads ----------------------------------------------------------------------------
    def get(self, record_id: str) -> Row | None:
        row = self.rows.get(record_id)
        if row is None or type(row) is dict:
            return row
        assert self._builder is not None
        built = self._builder(row)
        self.rows[record_id] = built
        return built

    def __len__(self) -> int:
        return len(self.rows)

    def iter_rows(self) -> Iterator[Row]:
        for record_id in list(self.ids):
            row = self.get(record_id)
            if row is not None:
                yield row

    def find_external(self, field: str, value: str) -> list[str]:
        return sorted(self._ext.get(field, {}).get(value.casefold(), ()))

    # --- writes ---------------------------------------------------------------------------
    def insert(self, row: Row) -> None:
        record_id = row["Id"]
        self.rows[record_id] = row
        insort(self.ids, record_id)
        insort(self.order, (row["SystemModstamp"], record_id))
        self._index_ext(record_id, None, row)

    def reindex(self, record_id: str, old: Row, new_modstamp: str) -> None:
        """Move a row in the (SystemModstamp, Id) index after it changed."""
        key = (old["SystemModstamp"], record_id)
        pos = bisect_left(self.order, key)
        if pos < len(self.order) and self.order[pos] == key:
            del self.order[pos]
        insort(self.order, (new_modstamp, record_id))

    def update_ext(self, record_id: str, before: Row | None, after: Row) -> None:
        self._index_ext(record_id, before, after)

    def _index_ext(self, record_id: str, before: Row | None, after: Row | None) -> None:
        for field, index in self._ext.items():
            old = before.get(field) if before else None
            new = after.get(field) if after else None
            if old == new:
                continue
            if old:
                index.get(str(old).casefold(), set()).discard(record_id)
            if new:
                index.setdefault(str(new).casefold(), set()).add(record_id)

    def remove(self, record_id: str) -> Row | None:
        row = self.get(record_id)
        if row is None:
            return None
        del self.rows[record_id]
        pos = bisect_left(self.ids, record_id)
        if pos < len(self.ids) and self.ids[pos] == record_id:
            del self.ids[pos]
        key = (row["SystemModstamp"], record_id)
        pos = bisect_left(self.order, key)
        if pos < len(self.order) and self.order[pos] == key:
            del self.order[pos]
        self._index_ext(record_id, row, None)
        return row

    # --- SOQL -----------------------------------------------------------------------------
    def select(self, query: Query, *, include_deleted: bool) -> list[Row]:
        """Rows matching ``query`` in its order, LIMIT/OFFSET applied (index scans where possible)."""
        sobj = self.sobj
        for name in query.fields:
            resolve(sobj, name)
        where = compile_condition(sobj, query.where)
        if include_deleted or "IsDeleted" not in sobj.fields:
            pred: Predicate = where
        else:
            def pred(row: Row) -> bool:
                return not row.get("IsDeleted") and where(row)
        wanted = None if query.limit is None else query.limit + (query.offset or 0)
        order = tuple((resolve(sobj, o.field), o.descending) for o in query.order_by)
        if query.limit == 0:
            return []
        if order in ((("SystemModstamp", False),), (("SystemModstamp", False), ("Id", False))):
            start = lower_bound(sobj, query.where, "SystemModstamp")
            first = bisect_left(self.order, (start,)) if start else 0
            order_index = self.order
            rows = self._scan((order_index[i][1] for i in range(first, len(order_index))), pred, wanted)
        elif order in ((), (("Id", False),)):
            start = lower_bound(sobj, query.where, "Id")
            first = bisect_left(self.ids, start) if start else 0
            ids = self.ids
            rows = self._scan((ids[i] for i in range(first, len(ids))), pred, wanted)
        else:
            rows = sort_rows(sobj, self._scan(iter(self.ids), pred, None), query.order_by)
            if wanted is not None:
                rows = rows[:wanted]
        return rows[query.offset or 0:]

    def _scan(self, keys: Iterator[str], pred: Predicate, wanted: int | None) -> list[Row]:
        out: list[Row] = []
        get = self.get
        for record_id in keys:
            row = get(record_id)
            if row is not None and pred(row):
                out.append(row)
                if wanted is not None and len(out) >= wanted:
                    break
        return out


def check_query(query: Query) -> None:
    if query.offset is not None and query.offset > 2000:
        raise SoqlError("Maximum SOQL offset allowed is 2000", "NUMBER_OUTSIDE_VALID_RANGE")
