"""``GET /v1/recents``: every item changed since a timestamp, oldest change first, offset-paged.

Shapes follow the v1 spec (PDSPEC ``/recents``): ``since_timestamp`` (``YYYY-MM-DD HH:MM:SS``,
UTC) is required; ``items`` picks item types (a comma list; Airbyte's source sends one);
``start``/``limit`` page (limit at most 500, 100 when absent). Each entry is
``{"item": <type>, "id": <id>, "data": <the item in its v1 form>}``; ``additional_data`` carries
``since_timestamp``, ``last_timestamp_on_page`` and ``pagination`` (``next_start`` when more
follow). An item changed at ``since_timestamp`` itself is included, so a client that resumes from
``last_timestamp_on_page`` loses nothing at the boundary. Soft-deleted deals are listed with
``deleted: true`` and status ``deleted`` (a change like any other); item types the sandbox does
not hold (activityType, file, filter) have no entries.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from crmsync.sandbox.pipedrive.rows import TIME_FIELDS, Row, render, v1_time
from crmsync.sandbox.pipedrive.table import Table

if TYPE_CHECKING:
    from crmsync.sandbox.pipedrive.simulator import PipedriveSimulator

ITEM_TYPES = ("activity", "activityType", "deal", "file", "filter", "note", "person", "organization", "pipeline",
              "product", "stage", "user")
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
# v1 deal fields that the spec types as non-nullable strings/integers: absent rather than null
_DEAL_NULLABLE = frozenset({"probability", "next_activity_id", "last_activity_id", "last_activity_date",
                            "lost_reason", "close_time", "rotten_time", "origin_id", "channel", "channel_id"})

Entry = tuple[int, int, int, str]  # (update_time, type order, id, type)


class RecentsError(ValueError):
    pass


def parse_since(raw: str | None) -> int:
    if not raw:
        raise RecentsError("since_timestamp is required (UTC, format YYYY-MM-DD HH:MM:SS)")
    try:
        moment = dt.datetime.strptime(raw.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        raise RecentsError("since_timestamp must be UTC in the format YYYY-MM-DD HH:MM:SS") from None
    return int(moment.timestamp())


def parse_items(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ITEM_TYPES
    wanted = tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    bad = [w for w in wanted if w not in ITEM_TYPES]
    if bad:
        raise RecentsError(f"items must be one or more of {', '.join(ITEM_TYPES)} (got {', '.join(bad)})")
    return wanted


def v1_deal(row: Row) -> Row:
    """A native deal row in API v1's shape: ``user_id``, ``active``/``deleted``, custom fields at top level."""
    out: Row = {}
    for key, value in render(row).items():
        if key in ("custom_fields", "owner_id", "is_deleted", "label_ids", "archive_time"):
            continue
        if key in TIME_FIELDS:
            value = v1_time(row.get(key))
        elif key == "visible_to" and value is not None:
            value = str(value)
        if value is None and key not in _DEAL_NULLABLE:
            continue
        out[key] = value
    deleted = bool(row.get("is_deleted"))
    out.update({"user_id": row["owner_id"], "deleted": deleted, "active": row.get("status") == "open" and not deleted,
                "status": "deleted" if deleted else row.get("status")})
    out.update(render({"c": row.get("custom_fields") or {}})["c"])
    return out


def v1_generic(row: Row) -> Row:
    """Other items: their wire form with v1 timestamps."""
    return {k: (v1_time(row.get(k)) if k in TIME_FIELDS and isinstance(row.get(k), int) else v)
            for k, v in render(row).items()}


class Recents:
    def __init__(self, sim: PipedriveSimulator) -> None:
        self.sim = sim

    def _tables(self) -> dict[str, tuple[Table, Callable[[Row], Row]]]:
        sim = self.sim
        return {"deal": (sim.deals, v1_deal), "person": (sim.persons, v1_generic),
                "organization": (sim.organizations, v1_generic), "product": (sim.products, v1_generic),
                "activity": (sim.activities, v1_generic)}

    def _small(self, item: str) -> list[tuple[int, Row]]:
        """(update epoch, v1 row) of the item types kept as short lists."""
        sim = self.sim
        if item == "note":
            return [(int(r["update_time"]), sim.notes.render(r)) for r in sim.notes.rows.values()]
        if item == "user":
            return [(parse_since(u["modified"]), u) for u in sim.users.values() if u.get("modified")]
        if item in ("stage", "pipeline"):
            rows = sim.stages if item == "stage" else sim.pipelines
            return [(int(r["update_time"]), v1_generic(r)) for r in rows if isinstance(r.get("update_time"), int)]
        return []

    def _stream(self, order: int, item: str, since: int, skip: int = 0) -> Iterator[Entry]:
        tables = self._tables()
        if item in tables:
            for stamp, record_id in tables[item][0].changes_from(since, skip):
                yield stamp, order, record_id, item
            return
        rows = sorted((stamp, int(row["id"])) for stamp, row in self._small(item) if stamp >= since)
        for stamp, record_id in rows[skip:]:
            yield stamp, order, record_id, item

    def page(self, params: Any) -> tuple[list[Row], dict[str, Any]]:
        since = parse_since(params.get("since_timestamp"))
        items = parse_items(params.get("items"))
        try:
            start = int(params.get("start") or 0)
            limit = int(params.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            raise RecentsError("start and limit must be integers") from None
        if start < 0 or not 1 <= limit <= MAX_LIMIT:
            raise RecentsError(f"start must be >= 0 and limit between 1 and {MAX_LIMIT}")
        if len(items) == 1:  # one item type (Airbyte's streams): its index skips to ``start`` directly
            merged: Iterator[Entry] = self._stream(0, items[0], since, skip=start)
            skip = 0
        else:
            merged = heapq.merge(*(self._stream(n, item, since) for n, item in enumerate(items)))
            skip = start
        entries: list[Entry] = []
        more = False
        for n, entry in enumerate(merged):
            if n < skip:
                continue
            if len(entries) == limit:
                more = True
                break
            entries.append(entry)
        data = [self._entry(e) for e in entries]
        pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        additional: dict[str, Any] = {"since_timestamp": v1_time(since),
                                      "last_timestamp_on_page": v1_time(entries[-1][0] if entries else since),
                                      "pagination": pagination}
        return data, additional

    def _entry(self, entry: Entry) -> Row:
        _, _, record_id, item = entry
        tables = self._tables()
        if item in tables:
            table, shape = tables[item]
            row = table.get(record_id)
            assert row is not None
            return {"item": item, "id": record_id, "data": shape(row)}
        found = next(r for _, r in self._small(item) if int(r["id"]) == record_id)
        return {"item": item, "id": record_id, "data": found}
