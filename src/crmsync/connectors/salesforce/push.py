"""Writing: sObject Collections in batches of 200, idempotent creates, conflict-safe updates.

- update: ``PATCH composite/sobjects`` (allOrNone=false), one call per 200 records.
- create with an idempotency key (or ``upsert``): ``PATCH composite/sobjects/{Name}/Crmsync_Key__c``;
  a retried batch matches the records it already created instead of duplicating them.
- create without a key: ``POST composite/sobjects``; delete: ``DELETE composite/sobjects?ids=``.

Conflict safety: when any update in a batch carries ``based_on_modified_at``, one SOQL read of
``LastModifiedDate`` for the whole batch (``Id IN (...)``, up to 200 ids) comes first; a record
edited after the decision becomes ``PushResult(conflict=True)`` and is not written. That costs
2 calls per 200 records instead of 200 conditional PATCHes (``If-Unmodified-Since``). The window
left between the read and the write is the latency of one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crmsync.connectors.base import BudgetExhausted, ConnectorError, PushItem, PushResult, RetriableError
from crmsync.connectors.salesforce.mapping import OBJECTS, SOBJECT_TO_NAME
from crmsync.connectors.salesforce.soql import ident, soql
from crmsync.model import parse_timestamp

if TYPE_CHECKING:
    from crmsync.connectors.salesforce.connector import SalesforceConnector

BATCH = 200
EXTERNAL_ID = "Crmsync_Key__c"
RETRIABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"})


def native_object(name: str) -> str:
    spec = OBJECTS.get(name)
    return spec.sobject if spec else ident(name)


def native_fields(object_name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Canonical field names (``stage_id``, ``extra.Handoff_Done__c``) to Salesforce's; others pass as-is."""
    spec = OBJECTS.get(object_name) or OBJECTS.get(SOBJECT_TO_NAME.get(object_name.lower(), ""))
    reverse = {f.target: f.source for f in spec.mapping.fields} if spec else {}
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = reverse.get(key) or (key[6:] if key.startswith("extra.") else key)
        out[ident(name)] = _wire(value)
    return out


def _wire(value: Any) -> Any:
    import datetime as dt
    from decimal import Decimal

    if isinstance(value, Decimal):
        return value  # sent as a JSON number by the session's encoder
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _errors(item: dict[str, Any]) -> tuple[str, bool]:
    errors = item.get("errors") or []
    codes = [str(e.get("statusCode", "")) for e in errors]
    text = "; ".join(f"{e.get('statusCode')}: {str(e.get('message', ''))[:160]}" for e in errors) or "failed"
    return text, any(code in RETRIABLE_CODES for code in codes)


class Pusher:
    def __init__(self, connector: SalesforceConnector) -> None:
        self.c = connector

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        groups: dict[tuple[str, str], list[int]] = {}
        for n, item in enumerate(items):
            problem = self._refuse(item)
            if problem:
                results[n] = PushResult(item.ref, False, item.source_id, error=problem)
                continue
            op = item.operation
            if op == "create" and item.idempotency_key:
                op = "upsert"
            groups.setdefault((native_object(item.object_name), op), []).append(n)
        for (sobject, op), indexes in groups.items():
            for start in range(0, len(indexes), BATCH):
                chunk = indexes[start:start + BATCH]
                try:
                    results.update(self._batch(sobject, op, [items[i] for i in chunk], chunk))
                except BudgetExhausted:
                    raise
                except ConnectorError as exc:
                    retriable = isinstance(exc, RetriableError)
                    for i in chunk:
                        results[i] = PushResult(items[i].ref, False, items[i].source_id, error=str(exc),
                                                retriable=retriable)
        return [results[n] for n in range(len(items))]

    def _refuse(self, item: PushItem) -> str | None:
        if item.operation not in ("update", "create", "upsert", "delete"):
            return f"unknown operation {item.operation!r}"
        if item.operation in ("update", "delete") and not item.source_id:
            return f"{item.operation} needs a source_id"
        if item.operation == "upsert" and not item.idempotency_key:
            return "upsert needs an idempotency_key"
        allowed = self.c.conn.writable_fields.get(item.object_name)
        if allowed is not None:
            outside = sorted(k for k in item.fields if k not in allowed)
            if outside:
                return f"fields not writable for {item.object_name}: {', '.join(outside)}"
        return None

    def _batch(self, sobject: str, op: str, batch: list[PushItem], indexes: list[int]) -> dict[int, PushResult]:
        self.c.check_budget(push=True)
        out: dict[int, PushResult] = {}
        if op == "delete":
            answer = self.c.call(lambda: self.c.sf.restful(
                "composite/sobjects", method="DELETE",
                params={"ids": ",".join(str(i.source_id) for i in batch), "allOrNone": "false"}))
            return self._results(batch, indexes, answer, created=False)
        if op == "update":
            batch, indexes, out = self._drop_conflicts(sobject, batch, indexes)
            if not batch:
                return out
            records = [{"attributes": {"type": sobject}, "id": i.source_id,
                        **native_fields(i.object_name, i.fields)} for i in batch]
            answer = self.c.call(lambda: self.c.sf.restful("composite/sobjects", method="PATCH",
                                                           data=self.c.dumps({"allOrNone": False, "records": records})))
            out.update(self._results(batch, indexes, answer, created=False))
            return out
        if op == "upsert":
            records = [{"attributes": {"type": sobject}, **native_fields(i.object_name, i.fields),
                        EXTERNAL_ID: i.idempotency_key} for i in batch]
            answer = self.c.call(lambda: self.c.sf.restful(
                f"composite/sobjects/{ident(sobject)}/{EXTERNAL_ID}", method="PATCH",
                data=self.c.dumps({"allOrNone": False, "records": records})))
            return self._results(batch, indexes, answer, created=None)
        records = [{"attributes": {"type": sobject}, **native_fields(i.object_name, i.fields)} for i in batch]
        answer = self.c.call(lambda: self.c.sf.restful("composite/sobjects", method="POST",
                                                       data=self.c.dumps({"allOrNone": False, "records": records})))
        return self._results(batch, indexes, answer, created=True)

    def _drop_conflicts(self, sobject: str, batch: list[PushItem], indexes: list[int]
                        ) -> tuple[list[PushItem], list[int], dict[int, PushResult]]:
        guarded = [i for i in batch if i.based_on_modified_at is not None]
        if not guarded:
            return batch, indexes, {}
        rows = self.c.query(soql("SELECT Id, LastModifiedDate FROM {:ident} WHERE Id IN {}", sobject,
                                 sorted({str(i.source_id) for i in guarded})), include_deleted=False)
        current = {str(r["Id"]): parse_timestamp(r["LastModifiedDate"]) for r in rows}
        current.update({k[:15]: v for k, v in list(current.items())})
        keep, keep_idx, out = [], [], {}
        for item, index in zip(batch, indexes, strict=True):
            if item.based_on_modified_at is not None:
                sid = str(item.source_id)
                modified = current.get(sid) or current.get(sid[:15])
                if modified is None:
                    out[index] = PushResult(item.ref, False, sid, error="record not found or deleted")
                    continue
                if modified > item.based_on_modified_at:
                    out[index] = PushResult(item.ref, False, sid, conflict=True,
                                            error=f"changed at {modified.isoformat()} after the decision")
                    continue
            keep.append(item)
            keep_idx.append(index)
        return keep, keep_idx, out

    @staticmethod
    def _results(batch: list[PushItem], indexes: list[int], answer: Any, *, created: bool | None
                 ) -> dict[int, PushResult]:
        out: dict[int, PushResult] = {}
        if not isinstance(answer, list) or len(answer) != len(batch):
            for item, index in zip(batch, indexes, strict=True):
                out[index] = PushResult(item.ref, False, item.source_id, error="unexpected collection reply",
                                        retriable=True)
            return out
        for item, index, res in zip(batch, indexes, answer, strict=True):
            if res.get("success"):
                was_created = bool(res.get("created")) if created is None else created
                out[index] = PushResult(item.ref, True, str(res.get("id") or item.source_id), created=was_created)
            else:
                text, retriable = _errors(res)
                out[index] = PushResult(item.ref, False, res.get("id") or item.source_id, error=text,
                                        retriable=retriable)
        return out
