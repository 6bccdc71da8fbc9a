"""Deal stage history from HubSpot: ``propertiesWithHistory=dealstage`` on the deals batch read.

Each version of ``dealstage`` is a stage the deal entered (``value``, ``timestamp``; HubSpot lists
them newest first). A batch read that asks for property histories takes at most 50 ids (HubSpot
answers 400 above that), so deals go 50 to a call. When a deal's ``dealstage`` history comes back
empty, the ``hs_v2_date_entered_<stage id>`` properties (the last time it entered each stage) give
what is left of it; the stage ids come from the deal pipelines, read once per connector.
``closed_lost_reason`` and ``competitor`` are read in the same call (the loss review's fields).
A list-based backfill asks for the same properties and history in its list call (50 a page) and
hands what it read over with ``keep``, so those deals need no second read.
"""

from __future__ import annotations

import datetime as dt
import threading
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
KEEP_MAX = 20_000  # histories a list backfill keeps for the engine's read (a few pages ahead at most)
ENTERED = "hs_v2_date_entered_"
LOSS_PROPERTIES = {"closed_lost_reason": LOSS_REASON, "competitor": COMPETITOR}


class HubSpotStageHistory:
    def __init__(self, connector: HubSpotHost) -> None:
        self.c = connector
        self._stage_ids: list[str] | None = None
        self._lock = threading.Lock()
        self._kept: set[str] = set()  # deals whose history a list page carried
        self._kept_batch = HistoryBatch()

    def stage_ids(self) -> tuple[list[str], int]:
        """Every deal stage id of the portal (one pipelines call, the first time)."""
        if self._stage_ids is not None:
            return self._stage_ids, 0
        ids = [str(s["id"]) for p in self.c._pipelines_raw() for s in p.get("stages") or []]
        self._stage_ids = list(dict.fromkeys(ids))
        return self._stage_ids, 1

    def properties(self) -> tuple[list[str], int]:
        """The properties a history read asks for, and the calls it took to know them."""
        stage_ids, calls = self.stage_ids()
        return ["dealstage", *LOSS_PROPERTIES, *(ENTERED + s for s in stage_ids)], calls

    def read(self, deals: Sequence[Deal]) -> HistoryBatch:
        """Histories of ``deals``: the ones a list page already carried (``keep``), the rest by
        batch read, 50 a call."""
        batch = HistoryBatch()
        wanted: list[str] = []
        with self._lock:
            for deal in deals:
                if deal.source_id in self._kept:
                    self._kept.discard(deal.source_id)
                    if deal.source_id in self._kept_batch.histories:
                        batch.histories[deal.source_id] = self._kept_batch.histories.pop(deal.source_id)
                    if deal.source_id in self._kept_batch.extra:
                        batch.extra[deal.source_id] = self._kept_batch.extra.pop(deal.source_id)
                else:
                    wanted.append(deal.source_id)
        if not wanted:
            return batch
        properties, calls = self.properties()
        batch.api_calls += calls
        for chunk in chunks(wanted, HISTORY_BATCH):
            answer = self.c.batch_read("deals", chunk, properties, with_history=["dealstage"])
            batch.api_calls += 1
            self.parse(answer.get("results") or [], batch)
        return batch

    def keep(self, objects: list[dict[str, Any]]) -> None:
        """A list page read these deals with their histories: the engine's read takes them from here."""
        with self._lock:
            if len(self._kept) > KEEP_MAX:  # nobody is reading them (a dry run): read again if asked
                self._kept.clear()
                self._kept_batch = HistoryBatch()
            self.parse(objects, self._kept_batch)
            self._kept.update(str(o.get("id")) for o in objects)

    def parse(self, objects: list[dict[str, Any]], batch: HistoryBatch) -> None:
        stage_ids = self._stage_ids or []
        for obj in objects:
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


def _at(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else None
    return parse_timestamp(value, field_name="dealstage history timestamp") if value else None
