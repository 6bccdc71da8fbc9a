"""One HubSpot object type in memory: compact rows, an id order and a (modified, id) search index.

Rows seeded from the World keep a reference to their World object and build their properties on
demand; a written row holds its own dict. Two sorted sequences make the hot paths cheap on a
million rows: ``live_ids`` (list ``after`` paging by id) and ``index`` (keys
``modified_ms << 32 | id`` for hs_lastmodifieddate ranges, what incremental search uses).

Search lag: with ``lag_s > 0`` a write reaches the search index only ``lag_s`` seconds later;
until then search still sees the previous version (or nothing, for a new record).
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

ID_BITS = 32
ID_MASK = (1 << ID_BITS) - 1

Props = dict[str, str | None]


def index_key(ms: int, record_id: int) -> int:
    return (ms << ID_BITS) | record_id


class Row:
    __slots__ = ("archived_ms", "created_ms", "id", "pending", "props", "src", "updated_ms", "visible_at")

    def __init__(self, record_id: int, created_ms: int, updated_ms: int, src: Any = None,
                 props: Props | None = None) -> None:
        self.id = record_id
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.archived_ms: int | None = None
        self.src = src  # the World object this row was seeded from (props built on demand)
        self.props = props  # own properties once written
        # What search still sees while a write is lagging: (updated_ms, props, archived) or None if new
        self.pending: tuple[int, Props, bool] | None = None
        self.visible_at = 0.0


class ObjectTable:
    def __init__(self, name: str, base_props: Callable[[Any], Props] | None = None) -> None:
        self.name = name
        self.base_props = base_props
        self.rows: dict[int, Row] = {}
        self.live_ids: list[int] = []
        self.archived_ids: list[int] = []
        self.index: list[int] = []
        self.next_id = 1
        self.lag_s = 0.0
        self.clock: Callable[[], float] = time.time  # the simulator's clock (search lag is on it)
        self._lagging: deque[int] = deque()
        self.merged_into: dict[int, int] = {}

    # --- seeding ------------------------------------------------------------------------------
    def seed(self, rows: list[Row]) -> None:
        """Bulk load (ids ascending or not); builds the sorted sequences once."""
        for row in rows:
            self.rows[row.id] = row
        self.live_ids = sorted(self.rows)
        self.index = sorted(index_key(r.updated_ms, r.id) for r in rows)
        self.next_id = max(self.next_id, (self.live_ids[-1] + 1) if self.live_ids else 1)

    # --- reads --------------------------------------------------------------------------------
    def props(self, row: Row) -> Props:
        """The row's stored properties (without the computed ones); never mutate the result."""
        if row.props is not None:
            return row.props
        assert self.base_props is not None
        return self.base_props(row.src)

    def get(self, record_id: int) -> Row | None:
        return self.rows.get(record_id)

    def page_ids(self, after: int, limit: int, *, archived: bool) -> tuple[list[int], bool]:
        """Up to ``limit`` ids >= ``after`` (HubSpot's list cursor is the next id) and whether more follow."""
        ids = self.archived_ids if archived else self.live_ids
        start = bisect_left(ids, after)
        chunk = ids[start:start + limit]
        return chunk, start + limit < len(ids)

    def count_live(self) -> int:
        return len(self.live_ids)

    # --- writes -------------------------------------------------------------------------------
    def new_id(self) -> int:
        record_id = self.next_id
        self.next_id += 1
        return record_id

    def _remember_for_search(self, row: Row) -> None:
        """Before a write: keep the searchable version if search lags, else unindex now."""
        if self.lag_s > 0:
            if row.visible_at == 0.0:  # search sees the current version until the lag passes
                row.pending = (row.updated_ms, dict(self.props(row)), row.archived_ms is not None)
            row.visible_at = self.clock() + self.lag_s
            self._lagging.append(row.id)
        elif row.archived_ms is None:
            self._unindex(row.updated_ms, row.id)

    def insert(self, row: Row) -> None:
        if self.lag_s > 0:
            row.visible_at = self.clock() + self.lag_s
            row.pending = None
            self._lagging.append(row.id)
        else:
            self._index_add(row.updated_ms, row.id)
        self.rows[row.id] = row
        insort(self.live_ids, row.id)
        self.next_id = max(self.next_id, row.id + 1)

    def write(self, row: Row, props: Props, updated_ms: int) -> None:
        """Replace a row's properties and modification time (the caller merged the values)."""
        self._remember_for_search(row)
        row.props = props
        row.src = None if row.props is not None else row.src
        row.updated_ms = updated_ms
        if self.lag_s <= 0 and row.archived_ms is None:
            self._index_add(updated_ms, row.id)

    def touch(self, row: Row, updated_ms: int) -> None:
        self.write(row, dict(self.props(row)), updated_ms)

    def archive(self, row: Row, at_ms: int) -> None:
        if row.archived_ms is not None:
            return
        self._remember_for_search(row)
        row.archived_ms = at_ms
        _remove(self.live_ids, row.id)
        insort(self.archived_ids, row.id)

    def restore(self, row: Row, updated_ms: int) -> None:
        if row.archived_ms is None:
            return
        self._remember_for_search(row)
        row.archived_ms = None
        row.updated_ms = updated_ms
        _remove(self.archived_ids, row.id)
        insort(self.live_ids, row.id)
        if self.lag_s <= 0:
            self._index_add(updated_ms, row.id)

    def hard_delete(self, row: Row) -> None:
        if row.archived_ms is None:
            _remove(self.live_ids, row.id)
        else:
            _remove(self.archived_ids, row.id)
        self._unindex(row.updated_ms, row.id)  # whichever version search holds goes (no-op if absent)
        if row.pending is not None:
            self._unindex(row.pending[0], row.id)
        del self.rows[row.id]

    def _index_add(self, ms: int, record_id: int) -> None:
        key = index_key(ms, record_id)
        pos = bisect_left(self.index, key)
        if pos == len(self.index) or self.index[pos] != key:
            self.index.insert(pos, key)

    def _unindex(self, ms: int, record_id: int) -> None:
        _remove(self.index, index_key(ms, record_id))

    # --- search view --------------------------------------------------------------------------
    def settle(self) -> None:
        """Move writes whose lag has passed into the search index."""
        now = self.clock()
        keep: deque[int] = deque()
        while self._lagging:
            record_id = self._lagging.popleft()
            row = self.rows.get(record_id)
            if row is None or row.visible_at == 0.0:
                continue
            if row.visible_at > now:
                keep.append(record_id)
                continue
            if row.pending is not None and not row.pending[2]:
                self._unindex(row.pending[0], row.id)
            if row.archived_ms is None:
                self._index_add(row.updated_ms, row.id)
            row.pending = None
            row.visible_at = 0.0
        self._lagging = deque(dict.fromkeys(keep))

    def scan_ids(self) -> list[int]:
        """Ids a full search scan must look at: live rows plus archived ones search still shows."""
        lagging = [i for i in self._lagging if i in self.rows and self.rows[i].archived_ms is not None]
        if not lagging:
            return list(self.live_ids)
        return sorted({*self.live_ids, *lagging})

    def searchable(self, row: Row) -> tuple[int, Props] | None:
        """The (modified ms, props) search sees for a row, or None when search cannot see it."""
        if row.visible_at and row.visible_at > self.clock():
            if row.pending is None or row.pending[2]:
                return None
            return row.pending[0], row.pending[1]
        if row.archived_ms is not None:
            return None
        return row.updated_ms, self.props(row)

    def _bounds(self, lo_ms: int | None, hi_ms: int | None) -> tuple[int, int]:
        start = 0 if lo_ms is None else bisect_left(self.index, index_key(lo_ms, 0))
        stop = len(self.index) if hi_ms is None else bisect_right(self.index, index_key(hi_ms, ID_MASK))
        return start, max(start, stop)

    def index_range(self, lo_ms: int | None, hi_ms: int | None, *, descending: bool = False) -> Iterator[int]:
        """Ids whose indexed modification time is within [lo_ms, hi_ms], by (time, id)."""
        start, stop = self._bounds(lo_ms, hi_ms)
        positions = range(stop - 1, start - 1, -1) if descending else range(start, stop)
        index = self.index
        for pos in positions:
            yield index[pos] & ID_MASK

    def index_count(self, lo_ms: int | None, hi_ms: int | None) -> int:
        start, stop = self._bounds(lo_ms, hi_ms)
        return stop - start


def _remove(seq: list[int], value: int) -> None:
    pos = bisect_left(seq, value)
    if pos < len(seq) and seq[pos] == value:
        del seq[pos]
