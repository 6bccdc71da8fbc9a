"""Writes to HubSpot: batched (100 per call), conflict-checked, idempotent creates, per-item results.

- update: a fresh batch read of ``hs_lastmodifieddate`` for items that carry
  ``based_on_modified_at``; a record changed since then comes back ``conflict=True`` and is not
  written. The rest go in batch updates; a 207's ``errors`` are matched to items by id.
- create / upsert with an idempotency key: batch **upsert** with ``idProperty=crmsync_key`` (the
  sandbox, like a HubSpot portal where crmsync created it, declares ``crmsync_key`` unique), so a
  retried create finds the record it made the first time instead of making a second one.
- delete: batch archive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crmsync.connectors.base import BudgetExhausted, ConnectorError, PushItem, PushResult, RetriableError
from crmsync.connectors.hubspot.mapping import MAPPINGS

if TYPE_CHECKING:
    from crmsync.connectors.hubspot.connector import HubSpotConnector

BATCH = 100
KEY_PROPERTY = "crmsync_key"
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
    return int(round(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000))


class Pusher:
    def __init__(self, connector: HubSpotConnector) -> None:
        self.connector = connector

    def _native_props(self, object_name: str, fields: dict[str, Any]) -> dict[str, str]:
        """Canonical field names (or ``extra.x``) -> HubSpot property names; native names pass."""
        mapping = self.connector.mappings.get(object_name) or MAPPINGS.get(object_name)
        reverse = {f.target: f.source for f in mapping.fields} if mapping else {}
        allowed = self.connector.conn.writable_fields.get(object_name)
        out: dict[str, str] = {}
        for key, value in fields.items():
            native = reverse.get(key) or (key[6:] if key.startswith("extra.") else key)
            if allowed is not None and key not in allowed and native not in allowed:
                raise PermissionError(f"{object_name}.{key} is not in writable_fields")
            out[native] = wire_value(value)
        return out

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

    def _props_or_fail(self, item: PushItem, results: list[PushResult | None], n: int) -> dict[str, str] | None:
        try:
            return self._native_props(item.object_name, item.fields)
        except (PermissionError, ValueError) as exc:
            results[n] = PushResult(item.ref, False, item.source_id, error=str(exc))
            return None

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
        for i in chunk:
            item = items[i]
            if item.based_on_modified_at is not None:
                seen = current.get(str(item.source_id))
                if str(item.source_id) not in current:
                    results[i] = PushResult(item.ref, False, item.source_id, error="not found (deleted or merged)")
                    continue
                based = int(round(item.based_on_modified_at.timestamp() * 1000))
                if seen is not None and seen > based:
                    results[i] = PushResult(item.ref, False, item.source_id, conflict=True,
                                            error="changed in HubSpot since the decision")
                    continue
            props = self._props_or_fail(item, results, i)
            if props is None:
                continue
            by_id[str(item.source_id)] = i
            inputs.append({"id": str(item.source_id), "properties": props})
        if not inputs:
            return
        answer = self._batch(native, "update", {"inputs": inputs}) or {}
        for obj in answer.get("results") or []:
            i = by_id.pop(str(obj["id"]), -1)
            if i >= 0:
                results[i] = PushResult(items[i].ref, True, str(obj["id"]))
        self._errors(answer, items, by_id, results, inputs)

    def _create(self, native: str, op: str, items: Sequence[PushItem], chunk: list[int],
                results: list[PushResult | None]) -> None:
        inputs: list[dict[str, Any]] = []
        by_key: dict[str, int] = {}
        for i in chunk:
            item = items[i]
            props = self._props_or_fail(item, results, i)
            if props is None:
                continue
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
