"""Deal stage history from Pipedrive's deal changelog (``GET /v1/deals/{id}/changelog``).

The changelog lists field changes newest first (``field_key``, ``old_value``, ``new_value``,
``time`` as ``YYYY-MM-DD HH:MM:SS`` UTC), cursor-paged, 20 tokens a call, one deal per call. A
deal's creation is not a change, so the stage it was created in is the ``old_value`` of its first
``stage_id`` change (or its current stage when it never moved), entered at ``add_time``. A deal
whose ``stage_change_time`` is not after its ``add_time`` never moved: its history is known
without a call. Pipedrive keeps the loss reason on the deal (``lost_reason``); it is copied to the
loss review's key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from crmsync.connectors.pipedrive.host import PipedriveHost
from crmsync.connectors.stage_history import LOSS_REASON, HistoryBatch, StageEntry, collapse
from crmsync.model import Deal

CHANGELOG_COST = 20
CHANGELOG_LIMIT = 500


def read_histories(connector: PipedriveHost, deals: Sequence[Deal]) -> HistoryBatch:
    batch = HistoryBatch()
    for deal in deals:
        if deal.stage_id is None:
            continue
        reason = (deal.extra or {}).get("lost_reason")
        if reason:
            batch.extra[deal.source_id] = {LOSS_REASON: reason}
        created = deal.created_at or deal.modified_at
        if deal.stage_changed_at is None or deal.stage_changed_at <= created:
            batch.histories[deal.source_id] = [StageEntry(deal.stage_id, created)]
            continue
        changes, calls = _stage_changes(connector, deal.source_id)
        batch.api_calls += calls
        first = changes[0][1] if changes else deal.stage_id
        entries = [StageEntry(first, created), *(StageEntry(new, at) for at, _, new in changes)]
        batch.histories[deal.source_id] = collapse(entries)
    return batch


def _stage_changes(connector: PipedriveHost, deal_id: str) -> tuple[list[tuple[dt.datetime, str, str]], int]:
    """``stage_id`` changes of one deal, oldest first: (time, old stage, new stage)."""
    changes: list[tuple[dt.datetime, str, str]] = []
    cursor: str | None = None
    calls = 0
    while True:
        params: dict[str, Any] = {"limit": CHANGELOG_LIMIT}
        if cursor:
            params["cursor"] = cursor
        answer = connector.call("GET", f"/v1/deals/{int(deal_id)}/changelog", params=params, cost=CHANGELOG_COST)
        calls += 1
        for item in answer.get("data") or []:
            if item.get("field_key") != "stage_id" or not item.get("new_value"):
                continue
            at = _v1_time(item.get("time"))
            if at is not None:
                changes.append((at, str(item.get("old_value") or ""), str(item["new_value"])))
        cursor = (answer.get("additional_data") or {}).get("next_cursor")
        if not cursor:
            break
    changes.reverse()  # the changelog is newest first; changes within one second keep their order
    changes.sort(key=lambda c: c[0])
    return changes, calls


def _v1_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
