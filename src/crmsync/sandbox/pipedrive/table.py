"""A lazy, indexed table of native rows: the World's records rendered on demand, edits materialised.

Rows built from the World are not stored: ``base_row(id)`` renders one when asked, so a
million-deal world costs two integer lists (ids and the (update_time, id) index), not a million
dicts. A row that is edited, created or deleted is materialised in ``rows``. Timestamps inside
rows are epoch seconds (ints); the HTTP layer formats them.

Pages walk a sorted index of integer keys (``cursor.sort_key``) from the position after the
cursor, so a page costs O(log n + page) when no filter needs to look at every row.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from crmsync.sandbox.pipedrive.cursor import TIME_SORTS, sort_key

Row = dict[str, Any]
DELETED_WINDOW_S = 30 * 86_400
_ID_MASK = 0xFFFFFFFF


@dataclass
class Query:
    sort_by: str = "id"
    direction: str = "asc"
    after: int | None = None  # the sort key of the last row of the previous page
    limit: int = 100
    since: int | None = None  # update_time >= since
    until: int | None = None  # update_time < until
    ids: set[int] | None = None
    deleted: str = "exclude"  # "exclude" | "only" | "include"
    match: Callable[[Row], bool] | None = None


class Table:
    def __init__(self, base_ids: list[int], base_row: Callable[[int], Row],
                 base_times: Callable[[int], tuple[int, int]]) -> None:
        """``base_ids`` sorted ascending; ``base_times(id) -> (add_time, update_time)`` in epoch seconds."""
        self._base_row = base_row
        self._base_times = base_times
        self._base = set(base_ids) if base_ids and base_ids[-1] != len(base_ids) else None
        self._base_max = base_ids[-1] if base_ids else 0
        self.rows: dict[int, Row] = {}
        self.gone: set[int] = set()  # hard-deleted (or purged) ids
        self.deleted: dict[int, int] = {}  # soft-deleted id -> delete time
        self._ids: list[int] = base_ids
        self._by_update: list[int] = sorted(sort_key("update_time", base_times(i)[1], i) for i in base_ids)
        self._by_add: list[int] | None = None
        self.next_id = self._base_max + 1

    # --- reading ------------------------------------------------------------------------------
    def _is_base(self, record_id: int) -> bool:
        if self._base is not None:
            return record_id in self._base
        return 1 <= record_id <= self._base_max

    def exists(self, record_id: int) -> bool:
        return record_id not in self.gone and (record_id in self.rows or self._is_base(record_id))

    def get(self, record_id: int) -> Row | None:
        """The current row (a copy for base rows; the stored dict for materialised ones)."""
        if record_id in self.gone:
            return None
        row = self.rows.get(record_id)
        if row is not None:
            return row
        if self._is_base(record_id):
            return self._base_row(record_id)
        return None

    def times(self, record_id: int) -> tuple[int, int]:
        row = self.rows.get(record_id)
        if row is not None:
            return int(row["add_time"]), int(row["update_time"])
        return self._base_times(record_id)

    def key(self, sort_by: str, record_id: int) -> int:
        if sort_by not in TIME_SORTS:
            return record_id
        add, update = self.times(record_id)
        return sort_key(sort_by, update if sort_by == "update_time" else add, record_id)

    def __len__(self) -> int:
        return len(self._ids)

    def all_ids(self) -> list[int]:
        return list(self._ids)

    # --- writing ------------------------------------------------------------------------------
    def materialise(self, record_id: int) -> Row:
        row = self.get(record_id)
        if row is None:
            raise KeyError(record_id)
        self.rows[record_id] = row
        return row

    def put(self, record_id: int, row: Row) -> None:
        """Insert or replace a row; keeps the indexes in step with its times."""
        existed = self.exists(record_id)
        if existed:
            old_add, old_update = self.times(record_id)
            _remove(self._by_update, sort_key("update_time", old_update, record_id))
            if self._by_add is not None:
                _remove(self._by_add, sort_key("add_time", old_add, record_id))
        else:
            bisect.insort(self._ids, record_id)
            self.next_id = max(self.next_id, record_id + 1)
        self.gone.discard(record_id)
        self.rows[record_id] = row
        bisect.insort(self._by_update, sort_key("update_time", int(row["update_time"]), record_id))
        if self._by_add is not None:
            bisect.insort(self._by_add, sort_key("add_time", int(row["add_time"]), record_id))

    def soft_delete(self, record_id: int, at: int, changes: Row) -> None:
        row = dict(self.materialise(record_id))
        row.update(changes)
        row["update_time"] = at
        self.put(record_id, row)
        self.deleted[record_id] = at

    def restore(self, record_id: int, at: int, changes: Row) -> None:
        """A soft-deleted row is live again (Pipedrive keeps deleted deals 30 days)."""
        if record_id not in self.deleted:
            raise KeyError(record_id)
        row = dict(self.materialise(record_id))
        row.update(changes)
        row["update_time"] = at
        self.put(record_id, row)
        del self.deleted[record_id]

    def hard_delete(self, record_id: int) -> None:
        if not self.exists(record_id):
            raise KeyError(record_id)
        add, update = self.times(record_id)
        _remove(self._by_update, sort_key("update_time", update, record_id))
        if self._by_add is not None:
            _remove(self._by_add, sort_key("add_time", add, record_id))
        _remove(self._ids, record_id)
        self.rows.pop(record_id, None)
        self.deleted.pop(record_id, None)
        self.gone.add(record_id)

    def purge_expired(self, now: int) -> None:
        """Soft-deleted rows older than the 30-day window are gone for good (as in Pipedrive)."""
        for record_id, at in list(self.deleted.items()):
            if at < now - DELETED_WINDOW_S:
                self.hard_delete(record_id)

    def changes_from(self, since: int, skip: int = 0) -> Iterator[tuple[int, int]]:
        """(update_time, id) in that order from ``update_time >= since``, the first ``skip`` passed
        over in O(log n); soft-deleted rows included."""
        keys = self._by_update
        for pos in range(bisect.bisect_left(keys, sort_key("update_time", since, 0)) + skip, len(keys)):
            yield keys[pos] >> 32, keys[pos] & _ID_MASK

    # --- paging -------------------------------------------------------------------------------
    def _index(self, sort_by: str) -> list[int]:
        if sort_by == "update_time":
            return self._by_update
        if sort_by == "add_time":
            if self._by_add is None:
                self._by_add = sorted(self.key("add_time", i) for i in self._ids)
            return self._by_add
        return self._ids

    def _keys(self, q: Query) -> list[int]:
        if q.ids is not None:
            return sorted(self.key(q.sort_by, i) for i in q.ids if self.exists(i))
        if q.deleted == "only":
            return sorted(self.key(q.sort_by, i) for i in self.deleted)
        return self._index(q.sort_by)

    def _walk(self, q: Query) -> Iterator[int]:
        keys = self._keys(q)
        by_update = q.sort_by == "update_time"
        lo_key = sort_key("update_time", q.since, 0) if by_update and q.since is not None else None
        hi_key = sort_key("update_time", q.until, 0) if by_update and q.until is not None else None
        if q.direction == "desc":
            if q.after is not None:
                pos = bisect.bisect_left(keys, q.after) - 1
            elif hi_key is not None:
                pos = bisect.bisect_left(keys, hi_key) - 1
            else:
                pos = len(keys) - 1
            while pos >= 0:
                k = keys[pos]
                if lo_key is not None and k < lo_key:
                    return
                yield k
                pos -= 1
        else:
            if q.after is not None:
                pos = bisect.bisect_right(keys, q.after)
            elif lo_key is not None:
                pos = bisect.bisect_left(keys, lo_key)
            else:
                pos = 0
            while pos < len(keys):
                k = keys[pos]
                if hi_key is not None and k >= hi_key:
                    return
                yield k
                pos += 1

    def _accept(self, q: Query, record_id: int) -> Row | None:
        is_deleted = record_id in self.deleted
        if q.deleted == "exclude" and is_deleted:
            return None
        if q.deleted == "only" and not is_deleted:
            return None
        if q.sort_by != "update_time" and (q.since is not None or q.until is not None):
            update = self.times(record_id)[1]
            if q.since is not None and update < q.since:
                return None
            if q.until is not None and update >= q.until:
                return None
        row = self.get(record_id)
        if row is None or (q.match is not None and not q.match(row)):
            return None
        return row

    def page(self, q: Query) -> tuple[list[Row], int | None]:
        """Rows of one page and the key to continue after (None when nothing follows)."""
        out: list[Row] = []
        last: int | None = None
        time_sort = q.sort_by in TIME_SORTS
        for k in self._walk(q):
            record_id = k & _ID_MASK if time_sort else k
            row = self._accept(q, record_id)
            if row is None:
                continue
            if len(out) == q.limit:
                return out, last  # one more row exists: hand out a cursor
            out.append(row)
            last = k
        return out, None


def _remove(keys: list[int], key: int) -> None:
    pos = bisect.bisect_left(keys, key)
    if pos < len(keys) and keys[pos] == key:
        del keys[pos]


def ids_of(values: Iterable[str]) -> set[int]:
    return {int(v) for v in values if v.strip()}
