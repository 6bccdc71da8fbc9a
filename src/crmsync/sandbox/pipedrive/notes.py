"""Notes as Pipedrive serves them: API v1 only (``/v1/notes``), offset-paged, v1 timestamps.

Shapes follow the v1 spec (PDSPEC ``/notes``): ``content`` is required on create, and so is one
of ``deal_id``/``lead_id``/``person_id``/``org_id``/``project_id``/``task_id``; a note on a deal
that does not exist is refused. Rows answer with ``add_time``/``update_time`` as
``YYYY-MM-DD HH:MM:SS`` (UTC), ``active_flag`` and the ``deal: {title}`` summary. A deleted note
(``DELETE /v1/notes/{id}``) is gone from listings. Notes take no custom fields, so an integration
keeps its idempotency key inside ``content`` and looks it up (crmsync: ``[crmsync:KEY]``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from crmsync.sandbox.pipedrive.rows import Row, v1_time

ANCHORS = ("deal_id", "lead_id", "person_id", "org_id", "project_id", "task_id")
PINS = tuple(f"pinned_to_{k}_flag" for k in ("lead", "deal", "organization", "person", "project", "task"))
WRITABLE = frozenset({"content", "user_id", "add_time", *ANCHORS, *PINS})
INT_FIELDS = frozenset({"deal_id", "person_id", "org_id", "project_id", "task_id", "user_id"})
MAX_LIMIT = 500


class NoteStore:
    """The company's notes; ``deal_title(id)`` answers None for a deal that does not exist (or is deleted)."""

    def __init__(self, now: Callable[[], int], deal_title: Callable[[int], str | None]) -> None:
        self.rows: dict[int, Row] = {}
        self.next_id = 1
        self._now = now
        self._deal_title = deal_title

    def add(self, body: dict[str, Any], *, user_id: int = 1) -> Row:
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValueError("content is required")
        if not any(body.get(k) not in (None, "") for k in ANCHORS):
            raise ValueError("one of deal_id, lead_id, person_id, org_id, project_id or task_id is required")
        now = self._now()
        row: Row = {"id": self.next_id, "active_flag": True, "add_time": now, "update_time": now, "content": "",
                    "user_id": user_id, "last_update_user_id": user_id,
                    **{k: None for k in ANCHORS}, **{p: False for p in PINS}}
        self._apply(row, body)
        self.rows[row["id"]] = row
        self.next_id += 1
        return row

    def update(self, note_id: int, body: dict[str, Any], *, user_id: int = 1) -> Row:
        row = self.get(note_id)
        if row is None:
            raise KeyError(note_id)
        if "content" in body and (not isinstance(body["content"], str) or not body["content"].strip()):
            raise ValueError("content cannot be empty")
        self._apply(row, body)
        row["update_time"] = self._now()
        row["last_update_user_id"] = user_id
        return row

    def delete(self, note_id: int) -> None:
        row = self.get(note_id)
        if row is None:
            raise KeyError(note_id)
        row["active_flag"] = False
        row["update_time"] = self._now()

    def get(self, note_id: int) -> Row | None:
        row = self.rows.get(note_id)
        return row if row is not None and row["active_flag"] else None

    def _apply(self, row: Row, body: dict[str, Any]) -> None:
        unknown = set(body) - WRITABLE
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        for key, value in body.items():
            if key in INT_FIELDS and value not in (None, ""):
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{key} must be an integer") from None
            if key == "deal_id" and value is not None and self._deal_title(value) is None:
                raise ValueError(f"Deal with id {value} not found")
            if key == "add_time" and value:
                value = int(dt.datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC).timestamp())
            if key in PINS:
                value = bool(value)
            row[key] = value

    # --- reading ----------------------------------------------------------------------------------
    def listing(self, filters: dict[str, Any], *, updated_since: int | None, start: int,
                limit: int) -> tuple[list[Row], dict[str, Any]]:
        """Live notes matching ``filters`` (field -> value), oldest first, one offset page."""
        limit = max(1, min(MAX_LIMIT, limit))
        wanted = [r for _, r in sorted(self.rows.items()) if r["active_flag"]
                  and all(r.get(k) == v for k, v in filters.items() if v is not None)
                  and (updated_since is None or r["update_time"] >= updated_since)]
        chunk = wanted[start:start + limit]
        more = start + limit < len(wanted)
        pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return chunk, {"pagination": pagination}

    def render(self, row: Row) -> Row:
        out = {k: (v1_time(v) if k in ("add_time", "update_time") else v) for k, v in row.items()}
        title = self._deal_title(row["deal_id"]) if row.get("deal_id") is not None else None
        if title is not None:
            out["deal"] = {"title": title}
        return out
