"""When did the server read what it answered? A lower bound from ``Date`` and the round trip.

The cursor rule (``connectors.cursor``) judges whether a stamp was settled by the CRM's own clock,
never the client's. ``Date`` is the server's time when it answered, truncated to the second; the
data was read at most one round trip before that. Transports note every answer here, per
thread (a read-ahead thread's answers are its own), and a pull asks for the earliest read time
of the requests that made one page.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
import time


def parse_date(date_header: str | None) -> float | None:
    """An HTTP ``Date`` as epoch seconds, or None when absent or malformed."""
    if not date_header:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def server_read_time(date_header: str | None, round_trip_s: float, client_sent_at: float) -> float:
    """A lower bound of the server time an answer was read at (epoch seconds); without a usable
    ``Date``, the client's send time."""
    stamp = parse_date(date_header)
    if stamp is None:
        return client_sent_at
    return stamp - max(0.0, round_trip_s)


class ReadTimes:
    """The earliest server read time of the answers this thread received since ``start``."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.offset_s = 0.0  # server clock minus client clock, as of the last answer with a Date

    def start(self) -> None:
        self._local.earliest = None

    def server_now(self) -> float:
        """An upper estimate of the server's time now (``Date`` is truncated to the second)."""
        return time.time() + self.offset_s

    def note(self, date_header: str | None, round_trip_s: float, client_sent_at: float) -> float:
        read_at = server_read_time(date_header, round_trip_s, client_sent_at)
        stamp = parse_date(date_header)
        if stamp is not None:
            self.offset_s = stamp + 1.0 - (client_sent_at + max(0.0, round_trip_s))
        current = getattr(self._local, "earliest", None)
        self._local.earliest = read_at if current is None else min(current, read_at)
        return read_at

    def earliest(self) -> float | None:
        return getattr(self._local, "earliest", None)
