"""Backfill plans: how a connector will read an object, what it costs and how long the limits make it.

A connector that can choose between ways of reading (HubSpot list vs search, Salesforce Bulk 2.0
vs REST) offers ``plan_backfill(object, since=, until=) -> BackfillPlan``; the pull takes the same
choice. ``crmsync backfill --dry-run`` prints the plan: the calls, the wall time the CRM's limits
allow for them (``seconds``: the floor, from the limits the CRM reported in its headers) and the
share of the daily quota they spend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Option:
    """One way of reading an object: calls (by limit they count against) and the floor they imply."""

    strategy: str  # "list", "search", "bulk", "rest", "cursor list"
    calls: int  # requests in total
    seconds: float | None  # least wall time under the limits (None: the limits set no rate)
    quota_calls: int  # of those, the ones charged to the daily quota (Pipedrive: tokens)
    note: str = ""


@dataclass(frozen=True, slots=True)
class BackfillPlan:
    connection: str
    object_name: str
    records: int | None  # the source's count (None: the source cannot count cheaply)
    chosen: Option
    options: tuple[Option, ...] = ()
    limits: dict[str, str] = field(default_factory=dict)  # what the plan was computed from, as read
    daily_remaining: int | None = None  # quota left today (calls, or Pipedrive tokens)

    @property
    def quota_share(self) -> float | None:
        if self.daily_remaining is None or self.daily_remaining <= 0:
            return None
        return self.chosen.quota_calls / self.daily_remaining

    def as_dict(self) -> dict[str, object]:
        return {"connection": self.connection, "object": self.object_name, "records": self.records,
                "strategy": self.chosen.strategy, "calls": self.chosen.calls,
                "expected_seconds": None if self.chosen.seconds is None else round(self.chosen.seconds, 1),
                "quota_calls": self.chosen.quota_calls, "daily_remaining": self.daily_remaining,
                "quota_share": None if self.quota_share is None else round(self.quota_share, 4),
                "limits": dict(self.limits), "note": self.chosen.note,
                "alternatives": [{"strategy": o.strategy, "calls": o.calls,
                                  "expected_seconds": None if o.seconds is None else round(o.seconds, 1),
                                  "note": o.note} for o in self.options if o is not self.chosen]}


def pages(records: int, size: int) -> int:
    return max(1, math.ceil(records / size)) if records > 0 else 1


def fastest(options: list[Option]) -> Option:
    """The option with the least floor; one the limits do not bound counts by its calls."""
    return min(options, key=lambda o: (o.seconds if o.seconds is not None else 0.0, o.calls))
