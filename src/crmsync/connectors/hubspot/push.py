"""Writes to HubSpot: batched (100 per call), conflict-checked, idempotent creates, per-item results.

- update: a fresh batch read of ``hs_lastmodifieddate`` for items that carry
  ``based_on_modified_at``; a record changed since then comes back ``conflict=True`` and is not
  written. The rest go in batch updates; a 207's ``errors`` are matched to items by id.
- create / upsert with an idempotency key: batch **upsert** with ``idProperty=crmsync_key`` (the
  sandbox, like a HubSpot portal where crmsync created it, declares ``crmsync_key`` unique), so a
  retried create finds the record it made the first time instead of making a second one.
- delete: batch archive.

Own writes: a batch update answers each record with its new ``hs_lastmodifieddate``; a later
update of the same record in this session (another field, decided separately) that reads exactly
that value is not a conflict: the change since the decision was crmsync's own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from crmsync.connectors.base import BudgetExhausted, ConnectorError, PushItem, PushResult, RetriableError
from crmsync.connectors.hubspot.host import HubSpotHost
from crmsync.connectors.hubspot.mapping import MAPPINGS

BATCH = 100
KEY_PROPERTY = "crmsync_key"
# canonical field -> (associated HubSpot object, HUBSPOT_DEFINED type id): written as associations
LINKS: dict[tuple[str, str], tuple[str, int]] = {
    ("tasks", "deal_id"): ("deals", 216), ("notes", "deal_id"): ("deals", 214),
    ("deals", "account_id"): ("companies", 5), ("contacts", "account_id"): ("companies", 1),
}
# canonical fields the field tables do not cover, per object
RENAMES: dict[tuple[str, str], str] = {("tasks", "body"): "hs_task_body", ("notes", "body"): "hs_note_body",
                                       ("notes", "owner_id"): "hubspot_owner_id"}
NEEDS_TIMESTAMP = frozenset({"tasks", "notes"})  # HubSpot requires hs_timestamp on engagements
PUSH_NATIVE = {"deals": "deals", "accounts": "companies", "companies": "companies", "contacts": "contacts",
               "line_items": "line_items", "products": "products", "tasks": "tasks", "notes": "notes"}


def wire_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal | int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _ms(value: str | None) -> int | None:
    if not value:
        return None
    return round(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


class Pusher:
    def __init__(self, connector: HubSpotHost) -> None:
        self.connector = connector
        self._own: dict[tuple[str, str], int] = {}  # (object, id) -> hs_lastmodifieddate (ms) of our last update

    def _native_props(self, object_name: str, fields: dict[str, Any]) -> tuple[dict[str, str], list[tuple[str, int, str]]]:
        """Canonical field names (or ``extra.x``) -> HubSpot properties, plus associations to write."""
        mapping = self.connector.mappings.get(object_name) or MAPPINGS.get(object_name)
        reverse = {f.target: f.source for f in mapping.fields} if mapping else {}
        allowed = self.connector.conn.writable_fields.get(object_name)
        out: dict[str, str] = {}
        links: list[tuple[str, int, str]] = []
        for key, value in fields.items():
            if (object_name, key) in LINKS:
                if value not in (None, ""):
                    target, type_id = LINKS[(object_name, key)]
                    links.append((target, type_id, str(value)))
                continue
            if key == "lead_id":
                if value not in (None, ""):
                    raise ValueError("HubSpot has no lead object in crmsync: lead_id cannot be written")
                continue
            native = RENAMES.get((object_name, key)) or reverse.get(key) or (key[6:] if key.startswith("extra.") else key)
            if allowed is not None and key not in allowed and native not in allowed:
                raise PermissionError(f"{object_name}.{key} is not in writable_fields")
            if object_name == "tasks" and key == "done":
                out[native] = "COMPLETED" if value else "NOT_STARTED"
                continue
            if object_name == "tasks" and key == "priority":  # canonical low | normal | high
                out["hs_task_priority"] = {"normal": "MEDIUM"}.get(str(value), str(value).upper())
                continue
            out[native] = wire_value(value)
        return out, links

    def _batch(self, native: str, op: str, body: dict[str, Any]) -> Any:
        api = self.connector.crm.objects.batch_api
        return self.connector.call(f"batch {op} {native}", getattr(api, op), native, body, push=True)

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        results: list[PushResult | None] = [None] * len(items)
        groups: dict[tuple[str, str], list[int]] = {}
        for n, item in enumerate(items):
            native = PUSH_NATIVE.get(item.object_name)
            if native is None:
                results[n] = PushResult(item.ref, False, item.source_id, error=f"unknown object {item.object_name}")
                continue
            op = item.operation
            if op in ("create", "upsert"):
                op = "upsert" if item.idempotency_key else "create"
            groups.setdefault((native, op), []).append(n)
        for (native, op), indexes in groups.items():
            for start in range(0, len(indexes), BATCH):
                chunk = indexes[start:start + BATCH]
                try:
                    if op == "update":
                        self._update(native, items, chunk, results)
                    elif op in ("upsert", "create"):
                        self._create(native, op, items, chunk, results)
                    elif op == "delete":
                        self._batch(native, "archive", {"inputs": [{"id": items[i].source_id} for i in chunk]})
                        for i in chunk:
                            results[i] = PushResult(items[i].ref, True, items[i].source_id)
                    else:
                        for i in chunk:
                            results[i] = PushResult(items[i].ref, False, items[i].source_id,
                                                    error=f"unknown operation {items[i].operation}")
                except BudgetExhausted:
                    raise
                except ConnectorError as exc:
                    for i in chunk:
                        if results[i] is None:
                            results[i] = PushResult(items[i].ref, False, items[i].source_id, error=str(exc),
                                                    retriable=isinstance(exc, RetriableError))
        return [r if r is not None else PushResult(items[n].ref, False, items[n].source_id, error="not pushed")
                for n, r in enumerate(results)]

    def _props_or_fail(self, item: PushItem, results: list[PushResult | None], n: int,
                       links: dict[int, list[tuple[str, int, str]]]) -> dict[str, str] | None:
        try:
            props, wanted = self._native_props(item.object_name, item.fields)
        except (PermissionError, ValueError) as exc:
            results[n] = PushResult(item.ref, False, item.source_id, error=str(exc))
            return None
        if wanted:
            links[n] = wanted
        return props

    def _associate(self, native: str, items: Sequence[PushItem], links: dict[int, list[tuple[str, int, str]]],
                   results: list[PushResult | None]) -> None:
        """v4 batch create for the associations the written items asked for (one call per target type)."""
        by_target: dict[str, list[tuple[int, int, str]]] = {}
        for i, wanted in links.items():
            result = results[i]
            if result is None or not result.ok or not result.source_id:
                continue
            for target, type_id, to_id in wanted:
                by_target.setdefault(target, []).append((i, type_id, to_id))
        api = self.connector.crm.associations.v4.batch_api
        for target, pairs in by_target.items():
            for start in range(0, len(pairs), BATCH):
                chunk = pairs[start:start + BATCH]
                body = {"inputs": [{"from": {"id": results[i].source_id}, "to": {"id": to_id},  # type: ignore[union-attr]
                                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": t}]}
                                   for i, t, to_id in chunk]}
                try:
                    answer = self.connector.call(f"associate {native}->{target}", api.create, native, target, body,
                                                 push=True) or {}
                except ConnectorError as exc:
                    for i, _, _ in chunk:
                        results[i] = PushResult(items[i].ref, False, results[i].source_id,  # type: ignore[union-attr]
                                                error=f"written, association failed: {exc}",
                                                retriable=isinstance(exc, RetriableError))
                    continue
                for error in answer.get("errors") or []:
                    for index in (error.get("context") or {}).get("inputIndex") or []:
                        if str(index).isdigit() and int(index) < len(chunk):
                            i = chunk[int(index)][0]
                            results[i] = PushResult(items[i].ref, False, results[i].source_id,  # type: ignore[union-attr]
                                                    error=f"written, association failed: {error.get('category')}")

    def _update(self, native: str, items: Sequence[PushItem], chunk: list[int],
                results: list[PushResult | None]) -> None:
        checked = [i for i in chunk if items[i].based_on_modified_at is not None]
        current: dict[str, int | None] = {}
        if checked:
            read = self.connector.batch_read(native, [str(items[i].source_id) for i in checked],
                                             ["hs_lastmodifieddate"], push=True)
            for obj in read.get("results") or []:
                current[str(obj["id"])] = _ms((obj.get("properties") or {}).get("hs_lastmodifieddate"))
        inputs: list[dict[str, Any]] = []
        by_id: dict[str, int] = {}
        links: dict[int, list[tuple[str, int, str]]] = {}
        for i in chunk:
            item = items[i]
            if item.based_on_modified_at is not None:
                seen = current.get(str(item.source_id))
                if str(item.source_id) not in current:
                    results[i] = PushResult(item.ref, False, item.source_id, error="not found (deleted or merged)")
                    continue
                based = round(item.based_on_modified_at.timestamp() * 1000)
                if seen is not None and seen > based and seen != self._own.get((native, str(item.source_id))):
                    results[i] = PushResult(item.ref, False, item.source_id, conflict=True,
                                            error="changed in HubSpot since the decision")
                    continue
            props = self._props_or_fail(item, results, i, links)
            if props is None:
                continue
            by_id[str(item.source_id)] = i
            inputs.append({"id": str(item.source_id), "properties": props})
        if not inputs:
            return
        answer = self._batch(native, "update", {"inputs": inputs}) or {}
        for obj in answer.get("results") or []:
            i = by_id.pop(str(obj["id"]), -1)
            written = _ms((obj.get("properties") or {}).get("hs_lastmodifieddate") or obj.get("updatedAt"))
            if written is not None:
                self._own[(native, str(obj["id"]))] = written
            if i >= 0:
                results[i] = PushResult(items[i].ref, True, str(obj["id"]))
        self._errors(answer, items, by_id, results, inputs)
        self._associate(native, items, links, results)

    def _create(self, native: str, op: str, items: Sequence[PushItem], chunk: list[int],
                results: list[PushResult | None]) -> None:
        inputs: list[dict[str, Any]] = []
        by_key: dict[str, int] = {}
        links: dict[int, list[tuple[str, int, str]]] = {}
        for i in chunk:
            item = items[i]
            props = self._props_or_fail(item, results, i, links)
            if props is None:
                continue
            if native in NEEDS_TIMESTAMP and not props.get("hs_timestamp"):
                props["hs_timestamp"] = wire_value(dt.datetime.now(dt.UTC))
            if op == "upsert":
                key = str(item.idempotency_key)
                props[KEY_PROPERTY] = key
                by_key[key] = i
                inputs.append({"id": key, "idProperty": KEY_PROPERTY, "properties": props})
            else:
                by_key[str(len(inputs))] = i
                inputs.append({"properties": props})
        if not inputs:
            return
        answer = self._batch(native, op, {"inputs": inputs}) or {}
        for position, obj in enumerate(answer.get("results") or []):
            found = (obj.get("properties") or {}).get(KEY_PROPERTY) if op == "upsert" else position
            i = by_key.pop(str(found), -1)
            if i >= 0:
                created = bool(obj.get("new", op == "create"))
                results[i] = PushResult(items[i].ref, True, str(obj["id"]), created=created)
        self._errors(answer, items, by_key, results, inputs)
        self._associate(native, items, links, results)

    def _errors(self, answer: dict[str, Any], items: Sequence[PushItem], pending: dict[str, int],
                results: list[PushResult | None], inputs: list[dict[str, Any]]) -> None:
        """A 207's errors, matched to the items by id (or input index); leftovers fail generically."""
        for error in answer.get("errors") or []:
            context = error.get("context") or {}
            keys = [str(k) for k in context.get("ids") or []]
            for index in context.get("inputIndex") or []:
                if str(index).isdigit() and int(index) < len(inputs):
                    keys.append(str(inputs[int(index)].get("id", index)))
            details = error.get("errors") or []
            code = error.get("subCategory") or (details[0].get("code") if details else None) or ""
            message = f"{error.get('category', 'ERROR')}: {code}".rstrip(": ")
            names = context.get("propertyName")
            if names:
                message += f" ({', '.join(names)})"
            for key in keys:
                i = pending.pop(key, -1)
                if i >= 0:
                    results[i] = PushResult(items[i].ref, False, items[i].source_id, error=message)
        for i in pending.values():
            if results[i] is None:
                results[i] = PushResult(items[i].ref, False, items[i].source_id, error="no result in the answer")
