"""Writing: sObject Collections in batches of 200, idempotent creates, conflict-safe updates.

- update: ``PATCH composite/sobjects`` (allOrNone=false), one call per 200 records.
- create with an idempotency key (or ``upsert``): ``PATCH composite/sobjects/{Name}/Crmsync_Key__c``;
  a retried batch matches the records it already created instead of duplicating them.
- create without a key: ``POST composite/sobjects``; delete: ``DELETE composite/sobjects?ids=``.

Conflict safety: when any update in a batch carries ``based_on_modified_at``, one SOQL read of
``LastModifiedDate`` for the whole batch (``Id IN (...)``, up to 200 ids) comes first; a record
edited after the decision becomes ``PushResult(conflict=True)`` and is not written. That costs
2 calls per 200 records instead of 200 conditional PATCHes (``If-Unmodified-Since``). The window
left between the read and the write is the latency of one call. The read also takes
``LastModifiedById``: a change made by crmsync's own API user (known from the OAuth identity URL;
e.g. an earlier write of this drain to another field of the same record) is not a conflict.

Field names: canonical names go through the connection's field table (``OBJECTS`` plus the
connection's ``field_mappings`` overrides) back to native names; ``extra.X`` becomes ``X``. A
canonical field with no Salesforce column (e.g. ``pipeline_id``, which is a constant here) is
dropped when it only repeats the constant, refused otherwise. ``writable_fields`` may list either
the canonical or the native name. Notes go to the classic ``Note`` sObject (``notes`` module).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from crmsync.connectors.base import BudgetExhausted, ConnectorError, PushItem, PushResult, RetriableError
from crmsync.connectors.mapping import ObjectMapping
from crmsync.connectors.salesforce.host import SalesforceHost
from crmsync.connectors.salesforce.mapping import OBJECTS, SOBJECT_TO_NAME
from crmsync.connectors.salesforce.notes import push_notes
from crmsync.connectors.salesforce.soql import ident, soql
from crmsync.model import RECORD_TYPES, parse_timestamp

BATCH = 200
EXTERNAL_ID = "Crmsync_Key__c"
# canonical task fields whose Salesforce column is written differently from how it is read
TASK_WRITES: dict[tuple[str, str], tuple[str, Callable[[Any], Any]]] = {
    ("tasks", "done"): ("Status", lambda done: "Completed" if done else "Not Started"),  # IsClosed is derived
    ("tasks", "body"): ("Description", lambda body: body),
    ("tasks", "priority"): ("Priority", lambda priority: str(priority).capitalize()),  # High | Normal | Low
}
RETRIABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"})


def native_object(name: str) -> str:
    spec = OBJECTS.get(name)
    return spec.sobject if spec else ident(name)


def native_fields(object_name: str, fields: dict[str, Any], mapping: ObjectMapping | None = None) -> dict[str, Any]:
    """Canonical field names (``stage_id``, ``extra.Handoff_Done__c``) to Salesforce's; others pass as-is.

    ``mapping`` is the connection's field table (with its ``field_mappings``); the built-in one
    when not given. Raises ValueError for a canonical field Salesforce has no column for."""
    if mapping is None:
        spec = OBJECTS.get(object_name) or OBJECTS.get(SOBJECT_TO_NAME.get(object_name.lower(), ""))
        mapping = spec.mapping if spec else None
    reverse = {f.target: f.source for f in mapping.fields} if mapping else {}
    canonical = RECORD_TYPES[mapping.object_type].__dataclass_fields__ if mapping else {}
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if mapping is not None and (mapping.object_name, key) in TASK_WRITES:
            native, convert = TASK_WRITES[(mapping.object_name, key)]
            out[native] = convert(value)
            continue
        name = reverse.get(key)
        if name is None and key.startswith("extra."):
            name = key[6:]
        elif name is None and mapping is not None and key in canonical:
            if key in mapping.defaults and value == mapping.defaults[key]:
                continue  # a constant on Salesforce (the one opportunity pipeline): nothing to write
            raise ValueError(f"{object_name}.{key} has no Salesforce field on {mapping.source_object} "
                             "(map one in field_mappings)")
        out[ident(name or key)] = _wire(value)
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
    def __init__(self, connector: SalesforceHost) -> None:
        self.c = connector
        self.mappings: dict[str, ObjectMapping] = {
            name: spec.mapping.with_overrides(connector.conn.field_mappings.get(name, {}))
            for name, spec in OBJECTS.items()}

    def mapping(self, object_name: str) -> ObjectMapping | None:
        name = object_name if object_name in self.mappings else SOBJECT_TO_NAME.get(object_name.lower(), "")
        return self.mappings.get(name)

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        groups: dict[tuple[str, str], list[int]] = {}
        notes: list[int] = []
        for n, item in enumerate(items):
            problem = self._refuse(item)
            if problem:
                results[n] = PushResult(item.ref, False, item.source_id, error=problem)
                continue
            if item.object_name == "notes":
                notes.append(n)
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
        if notes:
            try:
                results.update(push_notes(self, [items[i] for i in notes], notes))
            except BudgetExhausted:
                raise
            except ConnectorError as exc:
                for i in notes:
                    results.setdefault(i, PushResult(items[i].ref, False, items[i].source_id, error=str(exc),
                                                     retriable=isinstance(exc, RetriableError)))
        return [results[n] for n in range(len(items))]

    def _refuse(self, item: PushItem) -> str | None:
        if item.operation not in ("update", "create", "upsert", "delete"):
            return f"unknown operation {item.operation!r}"
        if item.operation in ("update", "delete") and not item.source_id:
            return f"{item.operation} needs a source_id"
        if item.operation == "upsert" and not item.idempotency_key:
            return "upsert needs an idempotency_key"
        allowed = self.c.conn.writable_fields.get(item.object_name)
        if allowed is not None and item.operation != "delete":
            mapping = self.mapping(item.object_name)
            reverse = {f.target: f.source for f in mapping.fields} if mapping else {}
            outside = sorted(k for k in item.fields if k not in allowed and k.removeprefix("extra.") not in allowed
                             and reverse.get(k) not in allowed)
            if outside:
                return f"fields not writable for {item.object_name}: {', '.join(outside)}"
        return None

    def native(self, item: PushItem) -> dict[str, Any]:
        return native_fields(item.object_name, item.fields, self.mapping(item.object_name))

    def collection(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self.c.call(lambda: self.c.sf.restful(path, method=method, data=self.c.dumps(body)))

    def _batch(self, sobject: str, op: str, batch: list[PushItem], indexes: list[int]) -> dict[int, PushResult]:
        self.c.check_budget(push=True)
        out: dict[int, PushResult] = {}
        if op != "delete":  # fields Salesforce has no column for fail here, without a call
            kept = []
            for item, index in zip(batch, indexes, strict=True):
                try:
                    self.native(item)
                    kept.append((item, index))
                except ValueError as exc:
                    out[index] = PushResult(item.ref, False, item.source_id, error=str(exc))
            if not kept:
                return out
            batch, indexes = [k[0] for k in kept], [k[1] for k in kept]
        if op == "delete":
            answer = self.c.call(lambda: self.c.sf.restful(
                "composite/sobjects", method="DELETE",
                params={"ids": ",".join(str(i.source_id) for i in batch), "allOrNone": "false"}))
            return self.results(batch, indexes, answer, created=False)
        if op == "update":
            batch, indexes, dropped = self._drop_conflicts(sobject, batch, indexes)
            out.update(dropped)
            if not batch:
                return out
            records = [{"attributes": {"type": sobject}, "id": i.source_id, **self.native(i)} for i in batch]
            answer = self.collection("PATCH", "composite/sobjects", {"allOrNone": False, "records": records})
            out.update(self.results(batch, indexes, answer, created=False))
            return out
        if op == "upsert":
            records = [{"attributes": {"type": sobject}, **self.native(i), EXTERNAL_ID: i.idempotency_key}
                       for i in batch]
            answer = self.collection("PATCH", f"composite/sobjects/{ident(sobject)}/{EXTERNAL_ID}",
                                     {"allOrNone": False, "records": records})
            out.update(self.results(batch, indexes, answer, created=None))
            return out
        records = [{"attributes": {"type": sobject}, **self.native(i)} for i in batch]
        answer = self.collection("POST", "composite/sobjects", {"allOrNone": False, "records": records})
        out.update(self.results(batch, indexes, answer, created=True))
        return out

    def _drop_conflicts(self, sobject: str, batch: list[PushItem], indexes: list[int]
                        ) -> tuple[list[PushItem], list[int], dict[int, PushResult]]:
        guarded = [i for i in batch if i.based_on_modified_at is not None]
        if not guarded:
            return batch, indexes, {}
        rows = self.c.query(soql("SELECT Id, LastModifiedDate, LastModifiedById FROM {:ident} WHERE Id IN {}",
                                 sobject, sorted({str(i.source_id) for i in guarded})), include_deleted=False)
        current = {str(r["Id"]): parse_timestamp(r["LastModifiedDate"]) for r in rows}
        current.update({k[:15]: v for k, v in list(current.items())})
        own = (self.c.session.user_id or "")[:15]
        by_us = {str(r["Id"])[:15] for r in rows if own and str(r.get("LastModifiedById") or "")[:15] == own}
        keep, keep_idx, out = [], [], {}
        for item, index in zip(batch, indexes, strict=True):
            if item.based_on_modified_at is not None:
                sid = str(item.source_id)
                modified = current.get(sid) or current.get(sid[:15])
                if modified is None:
                    out[index] = PushResult(item.ref, False, sid, error="record not found or deleted")
                    continue
                if modified > item.based_on_modified_at and sid[:15] not in by_us:
                    out[index] = PushResult(item.ref, False, sid, conflict=True,
                                            error=f"changed at {modified.isoformat()} after the decision")
                    continue
            keep.append(item)
            keep_idx.append(index)
        return keep, keep_idx, out

    @staticmethod
    def results(batch: list[PushItem], indexes: list[int], answer: Any, *, created: bool | None
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
