"""Incremental search by (hs_lastmodifieddate, hs_object_id): pure cursor logic, no I/O.

Every search starts at offset 0 (keyset paging), so no query ever pages towards HubSpot's
10,000-result cap and a record that changes mid-pull cannot shift the others out of a page:
- range step: ``modified >= T`` (``> T`` once every record at T is known) and ``<= hi``, sorted
  ascending, 200 per page; records at T already emitted are skipped (id tie-break dedupe);
- tie step: when a whole page shares one timestamp (a bulk import), walk that timestamp by id:
  ``modified == T and hs_object_id > last``, sorted by id.
A new pull resumes where the last one stopped, or at the open floor it left (``restart``): the
cursor rule of ``connectors.cursor`` with ms stamps and the search index lag as settle time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from crmsync.connectors.cursor import lower

MAX_SEEN = 1_000


@dataclass(frozen=True, slots=True)
class KeysetState:
    ts: int | None = None  # ms of the newest record emitted
    seen: tuple[str, ...] = ()  # ids at ``ts`` already emitted
    tie: int | None = None  # in a tie walk at ``ts``: the last id read
    strict: bool = False  # every record at ``ts`` is emitted: continue with ``> ts``
    extra: dict[str, Any] = field(default_factory=dict)  # archived_ms, assoc_refreshed_ms, refreshing, open_ms, carried_ms

    def to_cursor(self) -> dict[str, Any]:
        return {"ts": self.ts, "seen": list(self.seen), "tie": self.tie, "strict": self.strict, **self.extra}

    @classmethod
    def from_cursor(cls, cursor: dict[str, Any] | None) -> KeysetState:
        if not cursor:
            return cls()
        known = {"ts", "seen", "tie", "strict"}
        return cls(ts=cursor.get("ts"), seen=tuple(str(s) for s in cursor.get("seen") or ()),
                   tie=cursor.get("tie"), strict=bool(cursor.get("strict")),
                   extra={k: v for k, v in cursor.items() if k not in known})

    def restart(self) -> KeysetState:
        """Start of a new pull under the cursor rule (``connectors.cursor``).

        When the last pull read into stamps that were still open (search index lag, writes
        committed late), the new pull starts at that open floor, closed, with nothing skipped, and
        carries the floor (``carried_ms``) until it has read past it. A tie walk in progress goes
        on first. Otherwise the pull resumes exactly where the last one stopped.
        """
        floor = _floor(self.extra.get("open_ms"), self.extra.get("carried_ms"))
        if floor is None or self.tie is not None:
            return self
        if self.ts is not None and floor > self.ts:
            return replace(self, extra={k: v for k, v in self.extra.items() if k not in ("open_ms", "carried_ms")})
        extra = {k: v for k, v in self.extra.items() if k != "open_ms"}
        return KeysetState(int(floor), (), None, False, {**extra, "carried_ms": int(floor)})

    def reached(self, floor_ms: int | None) -> KeysetState:
        """The page just read moved the cursor into the open region above ``floor_ms``."""
        if floor_ms is None:
            return self
        return replace(self, extra={**self.extra, "open_ms": int(_floor(self.extra.get("open_ms"), floor_ms) or 0)})

    def finished(self) -> KeysetState:
        """A pass is over: the floor it carried has been re-read."""
        return replace(self, extra={k: v for k, v in self.extra.items() if k != "carried_ms"})


def query(state: KeysetState, prop: str, hi: int, limit: int, properties: list[str]) -> dict[str, Any]:
    """The search body for the next page."""
    if state.tie is not None:
        filters = [{"propertyName": prop, "operator": "EQ", "value": str(state.ts)},
                   {"propertyName": "hs_object_id", "operator": "GT", "value": str(state.tie)}]
        sorts = [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    else:
        filters = [{"propertyName": prop, "operator": "LTE", "value": str(hi)}]
        if state.ts is not None:
            lo = state.extra.get("lo", state.ts)
            filters.insert(0, {"propertyName": prop, "operator": "GT" if state.strict else "GTE",
                               "value": str(min(lo, state.ts))})
        sorts = [{"propertyName": prop, "direction": "ASCENDING"}]
    return {"filterGroups": [{"filters": filters}], "sorts": sorts, "limit": limit, "after": "0",
            "properties": properties}


def advance(state: KeysetState, rows: list[tuple[int, str]], limit: int
            ) -> tuple[KeysetState, list[int], bool]:
    """Given a page's (modified ms, id) rows: the next state, which rows to emit, and whether done."""
    extra = {k: v for k, v in state.extra.items() if k != "lo"}
    if state.tie is not None:
        assert state.ts is not None
        seen = set(state.seen)
        emit = [n for n, (_, rid) in enumerate(rows) if rid not in seen]
        if len(rows) < limit:  # the tie at ts is fully read: go on strictly after it
            return KeysetState(state.ts, (), None, True, extra), emit, False
        return KeysetState(state.ts, state.seen, int(rows[-1][1]), False, extra), emit, False
    seen_at = set(state.seen)
    emit = [n for n, (ts, rid) in enumerate(rows) if not (ts == state.ts and rid in seen_at)]
    if not rows:
        return replace(state, extra=extra), [], True
    last = rows[-1][0]
    at_last = tuple(rid for ts, rid in rows if ts == last)
    now_seen = tuple(dict.fromkeys((*state.seen, *at_last))) if last == state.ts else at_last
    full = len(rows) >= limit
    if full and (not emit or len(now_seen) > MAX_SEEN):  # one timestamp fills whole pages: walk it by id
        return KeysetState(last, now_seen if len(now_seen) <= MAX_SEEN else (), 0, False, extra), emit, False
    return KeysetState(last, now_seen, None, False, extra), emit, not full


def _floor(a: Any, b: Any) -> int | None:
    """The lower of two optional ms floors kept in a cursor (as ints)."""
    low = lower(None if a is None else int(a), None if b is None else int(b))
    return None if low is None else int(low)
