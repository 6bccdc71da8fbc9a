"""The one cursor rule of every incremental pull (pure: no I/O, no clock of its own).

Every connector pages a CRM's records in (modification stamp, id) order from a closed lower
bound. What makes that safe is knowing when a stamp is *settled*: when no record can still get
that stamp, change under it, or become visible with it. A stamp is open until one unit after it
ended plus ``settle_s``:

- the unit is the stamp's resolution (Pipedrive ``update_time`` and Salesforce ``SystemModstamp``
  are whole seconds, so a second edit inside the same second keeps the stamp; HubSpot has ms);
- ``settle_s`` covers what arrives late: writes committed after they were stamped, HubSpot's
  search index lag, and the gap between the clock that stamps and the one in ``Date``.

Times are the *server's*: ``read_at`` is a lower bound of the server time at which a page was read
(``connectors.server_time``: the response's ``Date`` minus the round trip), so a client whose clock
is off, or a simulator whose clock a test froze, is judged by the CRM's own time.

The rule, in three parts:
1. ``remember``: a version may be remembered as already emitted only once its stamp is settled
   (a later version can still carry the same stamp while it is open);
2. ``reached_open``: a page whose newest stamp is open moved the cursor into the open region, so
   the next pass must start no later than the lowest open stamp (``open_floor``);
3. ``next_start``: the next pass starts at the saved position unless an open region was passed,
   then at that region's floor (closed bound: the whole unit is read again; already remembered
   versions are skipped by the caller's dedupe).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StampRule:
    unit_s: float  # resolution of the modification stamp, in seconds
    settle_s: float  # after a unit ends: how long records may still appear in it or change within it

    def __post_init__(self) -> None:
        if self.unit_s <= 0 or self.settle_s < 0:
            raise ValueError("unit_s must be > 0 and settle_s >= 0")

    def boundary(self, read_at: float) -> float:
        """Stamps above this were open at ``read_at``."""
        return read_at - self.unit_s - self.settle_s

    def is_settled(self, stamp: float, read_at: float | None) -> bool:
        """True when the version stamped ``stamp`` was final when read (``read_at`` unknown: open)."""
        return read_at is not None and stamp <= self.boundary(read_at)

    def remember(self, stamp: float, read_at: float | None) -> bool:
        """May this version be remembered as emitted (so the next pass skips it)?"""
        return self.is_settled(stamp, read_at)

    def floor(self, read_at: float) -> float:
        """The lowest stamp a pass must restart from after reading into the open region at ``read_at``:
        the boundary rounded down to the unit (re-reading one settled unit is harmless)."""
        units = math.floor(self.boundary(read_at) / self.unit_s)
        return units * self.unit_s

    def reached_open(self, newest_stamp: float | None, read_at: float | None) -> float | None:
        """The open floor a page leaves behind, or None when everything it read was settled."""
        if newest_stamp is None:
            return None
        if read_at is None:
            return newest_stamp  # no server time: treat the newest stamp read as still open
        if newest_stamp > self.boundary(read_at):
            return min(self.floor(read_at), newest_stamp)
        return None


def settle_seconds(options: Mapping[str, Any], default: float) -> float:
    """``options.settle_seconds`` (``lookback_seconds`` is its older name), else the CRM's default."""
    for key in ("settle_seconds", "lookback_seconds"):
        if options.get(key) is not None:
            return max(0.0, float(options[key]))
    return default


def lower(a: float | None, b: float | None) -> float | None:
    """The smaller of two optional floors (None = no floor)."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def next_start(watermark: float | None, open_floor: float | None) -> float | None:
    """Where the next pass starts (closed bound): the watermark, or the open floor below it."""
    if open_floor is not None and (watermark is None or open_floor < watermark):
        return open_floor
    return watermark
