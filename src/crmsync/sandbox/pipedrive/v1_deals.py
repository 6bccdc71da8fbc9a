"""``GET /v1/deals`` ("Get all deals", API v1): deals by id, offset-paged with ``start``/``limit``.

Facts (Pipedrive API reference, Deals, "Get all deals"; ``docs/api-facts.md``): ``status`` is one of
``open``, ``won``, ``lost``, ``deleted``, ``all_not_deleted`` (the default when absent); ``start``
(default 0) and ``limit`` (default 100, at most 500) page; ``additional_data.pagination`` carries
``start``, ``limit``, ``more_items_in_collection`` and ``next_start`` when more follow; ``user_id``
and ``stage_id`` filter. Deals are in their v1 shape (``recents.v1_deal``: ``user_id``, custom
fields at top level). A comma list of statuses (what Singer's tap-pipedrive sends) is served as
their union; archived deals are not listed (they have their own endpoint). ``filter_id``,
``owned_by_you`` and ``sort`` are not served by the sandbox and answer 400 rather than being ignored.

Offset paging over a table that may change: the page ending at ``start + limit`` remembers the key
it stopped at, so the next page of the same query continues from there in O(log n) instead of
walking ``start`` rows again; an unknown ``start`` walks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from crmsync.sandbox.pipedrive.rows import Row
from crmsync.sandbox.pipedrive.table import Query, Table

STATUSES = ("open", "won", "lost", "deleted", "all_not_deleted")
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
UNSERVED = ("filter_id", "owned_by_you", "sort")
_REMEMBERED = 256  # continuation keys kept (queries x pages)


class V1DealsError(ValueError):
    pass


class DealHost(Protocol):
    """What the listing needs of the simulator (typed narrowly: no import cycle with it)."""

    deals: Table

    def now_epoch(self) -> int: ...


def _int(params: Any, name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise V1DealsError(f"{name} must be an integer") from None


class V1Deals:
    def __init__(self, sim: DealHost, shape: Callable[[Row], Row]) -> None:
        """``shape``: a native deal row in its v1 form (``recents.v1_deal``, handed in by the routes)."""
        self.sim = sim
        self.shape = shape
        self._lock = threading.Lock()
        self._after: dict[tuple[Any, ...], int] = {}  # (query signature, start) -> key to continue after

    def _query(self, params: Any) -> tuple[Query, tuple[Any, ...]]:
        for name in UNSERVED:
            if params.get(name) not in (None, ""):
                raise V1DealsError(f"the sandbox does not serve {name} on GET /v1/deals")
        statuses = tuple(sorted({s.strip() for s in (params.get("status") or "all_not_deleted").split(",")
                                 if s.strip()})) or ("all_not_deleted",)
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise V1DealsError(f"status must be one of {', '.join(STATUSES)}")
        live = {"open", "won", "lost"} if "all_not_deleted" in statuses else {s for s in statuses if s != "deleted"}
        with_deleted = "deleted" in statuses
        user_id, stage_id = _int(params, "user_id"), _int(params, "stage_id")

        def match(row: Row) -> bool:
            if row.get("is_archived"):
                return False
            if not row.get("is_deleted") and row.get("status") not in live:
                return False
            if user_id is not None and row.get("owner_id") != user_id:
                return False
            return stage_id is None or row.get("stage_id") == stage_id

        deleted = "include" if with_deleted and live else "only" if with_deleted else "exclude"
        return Query(sort_by="id", deleted=deleted, match=match), (statuses, user_id, stage_id)

    def page(self, params: Any) -> tuple[list[Row], dict[str, Any]]:
        start = _int(params, "start", 0)
        limit = _int(params, "limit", DEFAULT_LIMIT)
        assert start is not None and limit is not None
        if start < 0 or not 1 <= limit <= MAX_LIMIT:
            raise V1DealsError(f"start must be >= 0 and limit between 1 and {MAX_LIMIT}")
        q, signature = self._query(params)
        table = self.sim.deals
        table.purge_expired(self.sim.now_epoch())
        with self._lock:
            after = self._after.get((signature, start))
        if after is not None or start == 0:
            q.after, q.limit = after, limit
            rows, last = table.page(q)
        else:  # no remembered position: walk past ``start`` rows
            q.limit = start + limit
            rows, last = table.page(q)
            rows = rows[start:]
        more = last is not None
        if more and last is not None:
            with self._lock:
                if len(self._after) >= _REMEMBERED:
                    self._after.pop(next(iter(self._after)))
                self._after[(signature, start + limit)] = last
        pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return [self.shape(r) for r in rows], {"pagination": pagination}
