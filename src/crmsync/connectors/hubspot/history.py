"""Deal stage history from HubSpot: ``propertiesWithHistory=dealstage`` on the deals batch read.

Each version of ``dealstage`` is a stage the deal entered (``value``, ``timestamp``; HubSpot lists
them newest first). A batch read that asks for property histories takes at most 50 ids (HubSpot
answers 400 above that), so deals go 50 to a call. When a deal's ``dealstage`` history comes back
empty, the ``hs_v2_date_entered_<stage id>`` properties (the last time it entered each stage) give
what is left of it; the stage ids come from the deal pipelines, read once per connector.
``closed_lost_reason`` and ``competitor`` are read in the same call (the loss review's fields).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from crmsync.connectors.hubspot.host import HubSpotHost
from crmsync.connectors.stage_history import (
    COMPETITOR,
    LOSS_REASON,
    HistoryBatch,
    StageEntry,
    chunks,
    collapse,
)
from crmsync.model import Deal, parse_timestamp

HISTORY_BATCH = 50
ENTERED = "hs_v2_date_entered_"
LOSS_PROPERTIES = {"closed_lost_reason": LOSS_REASON, "competitor": COMPETITOR}


class HubSpotStageHistory:
    def __init__(self, connector: HubSpotHost) -> None:
        self.c = connector
        self._stage_ids: list[str] | None = None

    def stage_ids(self) -> tuple[list[str], int]:
        """Every deal stage id of the portal (one pipelines call, the first time)."""
        if self._stage_ids is not None:
            return self._stage_ids, 0
        ids = [str(s["id"]) for p in self.c._pipelines_raw() for s in p.get("stages") or []]
        self._stage_ids = list(dict.fromkeys(ids))
        return self._stage_ids, 1

    def read(self, deals: Sequence[Deal]) -> HistoryBatch:
        stage_ids, calls = self.stage_ids()
        properties = ["dealstage", *LOSS_PROPERTIES, *(ENTERED + s for s in stage_ids)]
        batch = HistoryBatch(api_calls=calls)
        for chunk in chunks([d.source_id for d in deals], HISTORY_BATCH):
            answer = self.c.batch_read("deals", chunk, properties, with_history=["dealstage"])
            batch.api_calls += 1
            for obj in answer.get("results") or []:
                deal_id = str(obj.get("id"))
                props = obj.get("properties") or {}
                history = ((obj.get("propertiesWithHistory") or {}).get("dealstage")) or []
                entries = [StageEntry(str(v["value"]), at) for v in reversed(history)  # oldest first: ties keep order
                           if v.get("value") and (at := _at(v.get("timestamp"))) is not None]
                if not entries:
                    entries = [StageEntry(s, at) for s in stage_ids if (at := _at(props.get(ENTERED + s))) is not None]
                if entries:
                    batch.histories[deal_id] = collapse(entries)
                loss = {key: props.get(name) for name, key in LOSS_PROPERTIES.items() if props.get(name)}
                if loss:
                    batch.extra[deal_id] = loss
        return batch


def _at(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else None
    return parse_timestamp(value, field_name="dealstage history timestamp") if value else None
