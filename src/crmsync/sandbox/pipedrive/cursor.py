"""Opaque page cursors: base64url JSON of the last item's sort value and id (like Pipedrive's).

A cursor names a position in the (sort value, id) order, never an offset, so records edited or
deleted while a client pages do not shift the pages after it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

import orjson

TIME_SORTS = ("update_time", "add_time")


class CursorError(ValueError):
    pass


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAYS: dict[int, str] = {}  # day number -> "YYYY-MM-DDT" (a world spans a few years)


def to_rfc3339(epoch: int) -> str:
    """Epoch seconds -> ``2024-01-02T03:04:05Z``: a per-day cache of the date part and integer
    arithmetic for the time (``strftime`` was the largest cost of serving a page of deals)."""
    day, rest = divmod(epoch, 86_400)
    prefix = _DAYS.get(day)
    if prefix is None:
        if len(_DAYS) >= 50_000:
            _DAYS.clear()
        prefix = _DAYS[day] = (_EPOCH + dt.timedelta(days=day)).date().isoformat() + "T"
    hours, rest_s = divmod(rest, 3600)
    minutes, seconds = divmod(rest_s, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}Z"


def parse_rfc3339(text: str) -> int:
    """RFC3339 (``Z`` or an offset) to epoch seconds; raises ValueError on anything else."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone")
    return int(parsed.timestamp())


def sort_key(sort_by: str, epoch: int, record_id: int) -> int:
    """One integer that orders like (sort value, id): time << 32 | id, or the id itself."""
    if sort_by in TIME_SORTS:
        return (epoch << 32) | record_id
    return record_id


def encode(sort_by: str, direction: str, key: int) -> str:
    record_id = key & 0xFFFFFFFF if sort_by in TIME_SORTS else key
    value: Any = to_rfc3339(key >> 32) if sort_by in TIME_SORTS else record_id
    raw = orjson.dumps({"field": sort_by, "fieldValue": value, "sortDirection": direction, "id": record_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, sort_by: str, direction: str) -> int:
    """The sort key after which the next page starts; the cursor must match the request's order."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        field, value, record_id = data["field"], data["fieldValue"], int(data["id"])
        cursor_direction = data["sortDirection"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise CursorError("Invalid cursor") from exc
    if field != sort_by or cursor_direction != direction:
        raise CursorError("Cursor does not match sort_by/sort_direction")
    if field in TIME_SORTS:
        try:
            return sort_key(field, parse_rfc3339(str(value)), record_id)
        except ValueError as exc:
            raise CursorError("Invalid cursor") from exc
    return record_id
