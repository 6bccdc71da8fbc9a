"""Fast epoch-ms -> HubSpot timestamp text, for the serving hot path.

Same text as ``schema.iso_ms`` (``2024-03-31T12:00:00.000Z``), built from a per-day cache of the
date part and integer arithmetic for the time of day: a search page of 200 deals renders several
timestamps per deal, and ``strftime`` was the largest single cost of serving it.
"""

from __future__ import annotations

import datetime as dt

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAY_MS = 86_400_000
_DAYS: dict[int, str] = {}
_MAX_DAYS = 50_000  # a simulated world spans a few years; the cache is reset if anything runs wild


def iso_ms(ms: int) -> str:
    day, rest = divmod(ms, _DAY_MS)
    prefix = _DAYS.get(day)
    if prefix is None:
        if len(_DAYS) >= _MAX_DAYS:
            _DAYS.clear()
        prefix = _DAYS[day] = (_EPOCH + dt.timedelta(days=day)).date().isoformat() + "T"
    seconds, millis = divmod(rest, 1000)
    hours, rest_s = divmod(seconds, 3600)
    minutes, secs = divmod(rest_s, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"
