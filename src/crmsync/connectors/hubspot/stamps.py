"""HubSpot timestamps as epoch milliseconds (the unit of its cursor)."""

from __future__ import annotations

import datetime as dt


def epoch_ms(value: str | None) -> int | None:
    """Epoch ms of a HubSpot timestamp (digits or ISO 8601); None when missing or malformed."""
    if not value:
        return None
    if not isinstance(value, str):
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if value.isdigit():
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return round(parsed.timestamp() * 1000)
