"""Deal changelogs (``GET /v1/deals/{id}/changelog``): field changes, newest first, cursor-paged.

Pipedrive logs a change of a deal field as ``field_key``, ``old_value``, ``new_value``, ``time``
(``YYYY-MM-DD HH:MM:SS`` UTC) and the actor; a deal's creation is not a change. Seeded deals derive
theirs from ``world.stage_history`` (``stage_id`` moves, then ``status`` open -> won/lost when it
closed); a deal written through the API or the user handle records its changes here from then on.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from crmsync.sandbox.pipedrive.rows import epoch, status_of_stage, v1_time
from crmsync.sandbox.world import STAGES, World

Entry = dict[str, Any]
TRACKED = ("stage_id", "status", "lost_reason", "value", "owner_id", "expected_close_date", "title")
MAX_LIMIT = 500


def _entry(field_key: str, old: Any, new: Any, at: int, actor: int) -> Entry:
    return {"field_key": field_key, "old_value": None if old is None else str(old),
            "new_value": None if new is None else str(new), "actor_user_id": actor, "_at": at,
            "change_source": "app", "change_source_user_agent": None, "is_bulk_update_flag": False}


class Changelog:
    def __init__(self, world: World) -> None:
        self.world = world
        self._written: dict[int, list[Entry]] = {}  # oldest first

    def _seeded(self, deal_id: int) -> list[Entry]:
        if not 1 <= deal_id <= len(self.world.deals):
            return []
        deal = self.world.deals[deal_id - 1]
        history = self.world.stage_history(deal)
        out = [_entry("stage_id", STAGES.index(a) + 1, STAGES.index(b) + 1, epoch(at), deal.owner_id)
               for (a, _), (b, at) in itertools.pairwise(history)]
        status = status_of_stage(deal.stage)
        if status != "open":
            at = epoch(deal.stage_changed_at)
            out.append(_entry("status", "open", status, at, deal.owner_id))
            loss = self.world.loss(deal)
            if loss is not None:
                out.append(_entry("lost_reason", None, loss[0], at, deal.owner_id))
        return out

    def entries(self, deal_id: int) -> list[Entry]:
        """Oldest first."""
        own = self._written.get(deal_id)
        return own if own is not None else self._seeded(deal_id)

    def record(self, deal_id: int, before: dict[str, Any] | None, after: dict[str, Any], at: int,
               actor: int) -> None:
        """Log the tracked fields that differ between ``before`` and ``after`` (None: a new deal)."""
        log = self._written.setdefault(deal_id, self._seeded(deal_id))
        if before is None:
            return
        for key in TRACKED:
            if before.get(key) != after.get(key):
                log.append(_entry(key, before.get(key), after.get(key), at, actor))

    def forget(self, deal_id: int) -> None:
        self._written.pop(deal_id, None)

    def page(self, deal_id: int, cursor: str | None, limit: int | None) -> tuple[list[Entry], str | None]:
        """Newest first from ``cursor`` (an opaque offset), at most ``limit`` (default and cap 500)."""
        newest_first = list(reversed(self.entries(deal_id)))
        start = decode_cursor(cursor)
        size = max(1, min(MAX_LIMIT, limit or MAX_LIMIT))
        chunk = newest_first[start:start + size]
        following = start + size if start + size < len(newest_first) else None
        return [render(e) for e in chunk], (encode_cursor(following) if following is not None else None)


def render(entry: Entry) -> Entry:
    out = {k: v for k, v in entry.items() if not k.startswith("_")}
    out["time"] = v1_time(entry["_at"])
    return out


def encode_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
        kind, _, value = text.partition(":")
        if kind != "offset" or int(value) < 0:
            raise ValueError(cursor)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not valid") from None
