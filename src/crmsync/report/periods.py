"""``--since`` values: a span back from now (``90d``, ``12w``, ``36h``) or an ISO date/timestamp."""

from __future__ import annotations

import datetime as dt
import re

from crmsync.model import ModelError, parse_timestamp

_SPAN = re.compile(r"\s*(\d+)\s*([hdw])\s*")
_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """The instant ``text`` names (UTC); a bare date is 00:00 UTC of that day. Raises ValueError."""
    match = _SPAN.fullmatch(text)
    if match:
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        day = dt.date.fromisoformat(value)
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    try:
        parsed = parse_timestamp(value, field_name="--since")
    except ModelError as exc:
        raise ValueError(f"{text!r}: expected e.g. 90d, 12w, 36h, 2026-01-31 or an ISO timestamp") from exc
    if parsed is None:
        raise ValueError("--since: empty value")
    return parsed
