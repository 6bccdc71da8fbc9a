"""Stage history read from a CRM, per deal, separate from the deal pull (and its cursor).

A connector that can read its CRM's own stage history offers ``stage_histories(deals)``; the sync
engine calls it for each page of deals (backfill and incremental alike: a deal that changed is
read again, and the stage events it implies are idempotent), outside the page's transaction.

Each CRM keeps history its own way (docs/crm-history.md): Salesforce ``OpportunityHistory`` and
``OpportunityFieldHistory``; HubSpot ``propertiesWithHistory=dealstage`` on batch read (and the
``hs_v2_date_entered_*``/``hs_v2_date_exited_*`` properties); Pipedrive's deal changelog. The
readers turn each into the same thing: the stages a deal entered, oldest first, and what the CRM
says about a loss (reason, competitor) when it keeps that beside the history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from crmsync.model import Deal

LOSS_REASON = "loss_reason"  # canonical extra keys the loss review reads
COMPETITOR = "competitor"


@dataclass(frozen=True, slots=True)
class StageEntry:
    """A deal entering ``stage_id`` at ``at`` (tz-aware UTC)."""

    stage_id: str
    at: dt.datetime


@dataclass
class HistoryBatch:
    """Histories of some deals (deal id -> entries, oldest first), extra fields to keep on the deals
    (deal id -> {key: value}) and the API calls it took."""

    histories: dict[str, list[StageEntry]] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_calls: int = 0


@runtime_checkable
class StageHistorySource(Protocol):
    def stage_histories(self, deals: Sequence[Deal]) -> HistoryBatch: ...


def collapse(entries: Iterable[StageEntry]) -> list[StageEntry]:
    """Sorted by time (stable), consecutive repeats of one stage dropped (the same stay)."""
    out: list[StageEntry] = []
    for entry in sorted(entries, key=lambda e: e.at):
        if not out or out[-1].stage_id != entry.stage_id:
            out.append(entry)
    return out


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def attach_extra(deals: Sequence[Any], batch: HistoryBatch) -> None:
    """Merge the batch's extra fields (loss reason, competitor) into the deals' ``extra``."""
    for deal in deals:
        extra = batch.extra.get(deal.source_id) if isinstance(deal, Deal) else None
        if extra:
            deal.extra = {**(deal.extra or {}), **{k: v for k, v in extra.items() if v not in (None, "")}}


__all__ = ["COMPETITOR", "LOSS_REASON", "HistoryBatch", "StageEntry", "StageHistorySource", "attach_extra", "chunks",
           "collapse"]
