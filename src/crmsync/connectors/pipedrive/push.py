"""Writes to Pipedrive: one PATCH per record (there is no batch update), conflict-checked and budgeted.

* Updates: a fresh read of ``update_time`` with ``GET /api/v2/{deals|activities}?ids=`` (≤100 ids,
  one call per 100 items) first; a record changed after ``based_on_modified_at`` (or gone) is a
  conflict and is not written. Pipedrive has no conditional write, so a change landing between the
  read and the PATCH cannot be detected here.
* Creates with an ``idempotency_key`` look for an earlier create first: deals by the ``crmsync_key``
  custom field, activities (which take no custom fields in v2) by a ``[crmsync:<key>]`` marker in
  ``note``, among records updated inside ``idempotency_window_hours`` (default 72). A retried create
  finds the first one and answers it with ``created=False``.
* Notes (API v1 only: ``POST /v1/notes`` with ``content`` and ``deal_id``) take no custom fields
  either: the key is a ``[crmsync:<key>]`` marker on the last line of ``content``, looked up first
  among the deal's notes (``GET /v1/notes?deal_id=``, offset-paged).
* Tokens: every write is checked against the budget floor (the share of the daily budget that is
  not ours); once spent, the rest of the batch answers ``retriable`` without calling.
* Own writes: a PATCH answers the record with its new ``update_time``; a later update of the same
  record in this session (another field, decided separately) that finds exactly that
  ``update_time`` is not a conflict: the change since the decision was crmsync's own. The memory
  lives as long as the connector (one drain); ``update_time`` has one-second resolution, so a
  human edit in the same second as crmsync's PATCH cannot be told apart from it.

Field names: canonical names go through the connection's field table (``MAPPINGS`` with the
connection's ``field_mappings``) back to native ones; ``extra.X`` is ``X``; a deal field that is
not a standard one must be a custom field, named as ``/v1/dealFields`` names it (or its 40-hex
key), and is sent under ``custom_fields`` by key. ``writable_fields`` may list either form.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from crmsync.connectors.base import BudgetExhausted, FatalError, PushItem, PushResult, RetriableError
from crmsync.connectors.mapping import ObjectMapping
from crmsync.connectors.pipedrive.host import PipedriveHost
from crmsync.connectors.pipedrive.http import NotFoundError
from crmsync.connectors.pipedrive.mapping import key_marker
from crmsync.model import parse_timestamp

V2 = "/api/v2"
V1_NOTES = "/v1/notes"
HEX_KEY = re.compile(r"^[0-9a-f]{40}$")
PATHS = {"deals": "/deals", "tasks": "/activities", "activities": "/activities", "notes": V1_NOTES}
# canonical fields read from a native one they cannot be written back to (derived, or a list)
READ_ONLY_TARGETS = frozenset({"is_closed", "is_won", "contact_ids", "stage_changed_at", "crmsync_key"})
# canonical task fields the activity table does not read back
ACTIVITY_OUT = {"body": "note"}
NOTE_OUT = {"body": "content", "owner_id": "user_id", "deal_id": "deal_id", "lead_id": "lead_id"}
DEAL_NATIVE = frozenset({
    "title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value", "currency", "status",
    "probability", "lost_reason", "visible_to", "close_time", "won_time", "lost_time", "expected_close_date",
    "label_ids", "is_archived", "archive_time",
})
ACTIVITY_NATIVE = frozenset({
    "subject", "type", "owner_id", "deal_id", "lead_id", "person_id", "org_id", "project_id", "due_date", "due_time",
    "duration", "busy", "done", "location", "participants", "attendees", "public_description", "priority", "note",
})
ID_FIELDS = frozenset({"owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "deal_id", "project_id"})
COST_WRITE = 5
COST_DELETE = 3
COST_LIST = 10
COST_NOTE_LIST = 20
COST_NOTE_ADD = 10


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Pusher:
    def __init__(self, connector: PipedriveHost) -> None:
        self.c = connector
        self.window = dt.timedelta(hours=float(connector.conn.options.get("idempotency_window_hours", 72)))
        self._own: dict[tuple[str, str], dt.datetime] = {}  # (path, id) -> update_time of our last PATCH

    def _reverse(self, object_name: str) -> dict[str, str]:
        """canonical field -> native field of the connection's table (with ``field_mappings``)."""
        mapping: ObjectMapping | None = self.c.mappings.get(object_name)
        if mapping is None:
            return {}
        return {f.target: f.source for f in mapping.fields if f.target not in READ_ONLY_TARGETS}

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        results: list[PushResult] = []
        try:
            fresh = self._fresh_times(items)
        except BudgetExhausted as exc:
            return [PushResult(i.ref, False, i.source_id, error=str(exc), retriable=True) for i in items]
        for n, item in enumerate(items):
            try:
                results.append(self._one(item, fresh))
            except BudgetExhausted as exc:
                results += [PushResult(i.ref, False, i.source_id, error=str(exc), retriable=True) for i in items[n:]]
                break
            except RetriableError as exc:
                results.append(PushResult(item.ref, False, item.source_id, error=str(exc), retriable=True))
            except (FatalError, ValueError) as exc:
                results.append(PushResult(item.ref, False, item.source_id, error=str(exc)))
        return results

    # --- fresh reads ----------------------------------------------------------------------------
    def _fresh_times(self, items: Sequence[PushItem]) -> dict[tuple[str, str], dt.datetime | None]:
        """(path, id) -> update_time now, for every update that carries ``based_on_modified_at``."""
        wanted: dict[str, list[str]] = {}
        for item in items:
            if item.operation == "update" and item.source_id and item.based_on_modified_at is not None:
                path = self._path(item.object_name)
                if item.source_id not in wanted.setdefault(path, []):
                    wanted[path].append(item.source_id)
        out: dict[tuple[str, str], dt.datetime | None] = {}
        for path, ids in wanted.items():
            for start in range(0, len(ids), 100):
                chunk = ids[start:start + 100]
                for record_id in chunk:
                    out[(path, record_id)] = None
                params = {"ids": ",".join(chunk), "limit": 500}
                data = self.c.call("GET", V2 + path, params=params, cost=COST_LIST, for_push=True)
                for row in data.get("data") or []:
                    out[(path, str(row["id"]))] = parse_timestamp(row.get("update_time"), field_name="update_time")
        return out

    @staticmethod
    def _path(object_name: str) -> str:
        if object_name not in PATHS:
            raise ValueError(f"pipedrive: cannot write {object_name!r} (expected deals, tasks or notes)")
        return PATHS[object_name]

    # --- one item -------------------------------------------------------------------------------
    def _one(self, item: PushItem, fresh: dict[tuple[str, str], dt.datetime | None]) -> PushResult:
        path = self._path(item.object_name)
        self._check_writable(item)
        if item.operation == "update":
            if not item.source_id:
                raise ValueError("update needs source_id")
            if item.based_on_modified_at is not None:
                current = fresh.get((path, item.source_id))
                if current is None:
                    return PushResult(item.ref, False, item.source_id, conflict=True,
                                      error="record deleted or not visible since the decision")
                if current > item.based_on_modified_at and current != self._own.get((path, item.source_id)):
                    return PushResult(item.ref, False, item.source_id, conflict=True,
                                      error=f"record changed at {current.isoformat()} after the decision")
            body = self._body(item)
            data = self.c.call("PATCH", f"{V2}{path}/{int(item.source_id)}", body=body, cost=COST_WRITE, for_push=True)
            row = data.get("data") or {}
            written = parse_timestamp(row.get("update_time"), field_name="update_time")
            if written is not None:
                self._own[(path, item.source_id)] = written
            return PushResult(item.ref, True, str(row.get("id", item.source_id)))
        if item.operation in ("create", "upsert") and path == V1_NOTES:
            return self._create_note(item)
        if item.operation in ("create", "upsert"):
            return self._create(item, path)
        if item.operation == "delete":
            if not item.source_id:
                raise ValueError("delete needs source_id")
            with contextlib.suppress(NotFoundError):  # already gone: the goal is reached
                self.c.call("DELETE", f"{V2}{path}/{int(item.source_id)}", cost=COST_DELETE, for_push=True)
            return PushResult(item.ref, True, item.source_id)
        raise ValueError(f"unknown operation {item.operation!r}")

    def _check_writable(self, item: PushItem) -> None:
        allowed = self.c.conn.writable_fields.get(item.object_name)
        if allowed is None or item.operation == "delete":
            return
        reverse = self._reverse(item.object_name)
        refused = sorted(k for k in item.fields if k not in allowed and k.removeprefix("extra.") not in allowed
                         and reverse.get(k) not in allowed)
        if refused:
            raise ValueError(f"fields not writable for {item.object_name}: {', '.join(refused)}")

    def _create(self, item: PushItem, path: str) -> PushResult:
        key = item.idempotency_key
        if key:
            existing = self._find_by_key(item, path, key)
            if existing is not None:
                return PushResult(item.ref, True, existing, created=False)
        body = self._body(item)
        if key and path == "/activities":
            body["note"] = f"{body.get('note') or ''}\n{key_marker(key)}".lstrip("\n")
        elif key:
            body.setdefault("custom_fields", {})[self._deal_key_field()] = key
        data = self.c.call("POST", V2 + path, body=body, cost=COST_WRITE, for_push=True)
        new_id = (data.get("data") or {}).get("id")
        return PushResult(item.ref, True, str(new_id) if new_id is not None else None, created=True)

    def _create_note(self, item: PushItem) -> PushResult:
        body: dict[str, Any] = {}
        for name, value in item.fields.items():
            if name not in NOTE_OUT:
                raise ValueError(f"notes: unknown field {name!r}")
            if value is not None:
                body[NOTE_OUT[name]] = int(value) if NOTE_OUT[name] in ID_FIELDS | {"user_id"} else value
        if not str(body.get("content") or "").strip():
            raise ValueError("notes: body is required")
        if body.get("deal_id") is None and body.get("lead_id") is None:
            raise ValueError("notes: a Pipedrive note needs deal_id (or lead_id)")
        key = item.idempotency_key
        if key:
            existing = self._find_note(body, key_marker(key))
            if existing is not None:
                return PushResult(item.ref, True, existing, created=False)
            body["content"] = f"{body['content']}\n{key_marker(key)}"
        data = self.c.call("POST", V1_NOTES, body=body, cost=COST_NOTE_ADD, for_push=True)
        new_id = (data.get("data") or {}).get("id")
        return PushResult(item.ref, True, str(new_id) if new_id is not None else None, created=True)

    def _find_note(self, body: dict[str, Any], marker: str) -> str | None:
        """The note of this deal (or lead) whose content carries ``marker``, if any."""
        anchor = "deal_id" if body.get("deal_id") is not None else "lead_id"
        start = 0
        while True:
            params = {anchor: body[anchor], "start": start, "limit": 500}
            data = self.c.call("GET", V1_NOTES, params=params, cost=COST_NOTE_LIST, for_push=True)
            for row in data.get("data") or []:
                if marker in str(row.get("content") or ""):
                    return str(row["id"])
            pagination = (data.get("additional_data") or {}).get("pagination") or {}
            if not pagination.get("more_items_in_collection"):
                return None
            start = int(pagination.get("next_start", start + 500))

    def _deal_key_field(self) -> str:
        key = self.c.field_keys("deals").get("crmsync_key")
        if key is None:
            raise FatalError("deal field 'crmsync_key' does not exist; create it (text) for idempotent creates")
        return key

    def _find_by_key(self, item: PushItem, path: str, key: str) -> str | None:
        since = dt.datetime.now(dt.UTC) - self.window
        params: dict[str, Any] = {"updated_since": _rfc3339(since), "limit": 500}
        anchor = "deal_id" if path == "/activities" and item.fields.get("deal_id") else "owner_id"
        if item.fields.get(anchor) is not None:
            params[anchor] = int(item.fields[anchor])
        marker = key_marker(key) if path == "/activities" else None
        field = None if marker else self._deal_key_field()
        next_cursor: str | None = None
        while True:
            query = {**params, **({"cursor": next_cursor} if next_cursor else {})}
            data = self.c.call("GET", V2 + path, params=query, cost=COST_LIST, for_push=True)
            for row in data.get("data") or []:
                if marker and marker in str(row.get("note") or ""):
                    return str(row["id"])
                if field and (row.get("custom_fields") or {}).get(field) == key:
                    return str(row["id"])
            next_cursor = (data.get("additional_data") or {}).get("next_cursor")
            if next_cursor is None:
                return None

    # --- canonical/native -> wire ---------------------------------------------------------------
    def _body(self, item: PushItem) -> dict[str, Any]:
        is_deal = item.object_name == "deals"
        native = DEAL_NATIVE if is_deal else ACTIVITY_NATIVE
        keys = self.c.field_keys("deals") if is_deal else {}
        reverse = self._reverse(item.object_name)
        body: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for name, value in item.fields.items():
            if not is_deal and name == "priority":
                continue  # Pipedrive priorities are per-company option ids; the task's note states the priority
            target = reverse.get(name) or (ACTIVITY_OUT.get(name) if not is_deal else None) or name.removeprefix("extra.")
            if target in native:
                body[target] = self._value(target, value)
            elif is_deal and (target in keys or HEX_KEY.match(target)):
                custom[keys.get(target, target)] = self._custom(value)
            else:
                raise ValueError(f"{item.object_name}: unknown field {name!r}")
        if custom:
            body["custom_fields"] = custom
        return body

    @staticmethod
    def _custom(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.date) else value

    @staticmethod
    def _value(target: str, value: Any) -> Any:
        if value is None:
            return None
        if target in ID_FIELDS:
            return int(value)
        if target == "probability":
            return Decimal(str(value)) * 100  # canonical 0..1 -> Pipedrive's percent
        if isinstance(value, dt.datetime):
            return _rfc3339(value)  # Pipedrive's own form: whole seconds, Z
        return value
