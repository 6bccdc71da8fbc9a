"""The REST API: query/queryAll with locators, sObject rows, upsert, updated/deleted, collections."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from crmsync.sandbox.salesforce.data import WriteError
from crmsync.sandbox.salesforce.describe import describe, object_flags
from crmsync.sandbox.salesforce.evaluate import resolve, sf_datetime
from crmsync.sandbox.salesforce.host import OrgHost
from crmsync.sandbox.salesforce.ids import PREFIX_OF, make_id
from crmsync.sandbox.salesforce.responses import sf_error, sf_json
from crmsync.sandbox.salesforce.soql import SoqlError, parse
from crmsync.sandbox.salesforce.tables import check_query

Row = dict[str, Any]
MAX_BATCH = 2000
COLLECTION_LIMIT = 200
UPDATED_WINDOW = dt.timedelta(days=30)
DELETED_WINDOW = dt.timedelta(days=15)


@dataclass
class QueryCursor:
    object_name: str
    fields: list[str]
    ids: list[str]
    batch: int


class QueryCursors:
    """Open query locators (``nextRecordsUrl``); the oldest are dropped past ``keep``."""

    def __init__(self, keep: int = 500) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[str, QueryCursor] = OrderedDict()
        self._n = 0
        self.keep = keep

    def add(self, cursor: QueryCursor) -> str:
        with self._lock:
            self._n += 1
            locator = make_id("01g", self._n)
            self._open[locator] = cursor
            while len(self._open) > self.keep:
                self._open.popitem(last=False)
            return locator

    def get(self, locator: str) -> QueryCursor | None:
        with self._lock:
            return self._open.get(locator)


def parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError as exc:
        raise WriteError("JSON_PARSER_ERROR", f"The request body is not valid JSON: {str(exc)[:80]}") from exc


def project(sim: OrgHost, object_name: str, row: Row, fields: list[str], version: str) -> Row:
    out: Row = {"attributes": {"type": object_name,
                               "url": f"/services/data/{version}/sobjects/{object_name}/{row['Id']}"}}
    for name in fields:
        out[name] = row.get(name)
    return out


class RestApi:
    def __init__(self, sim: OrgHost) -> None:
        self.sim = sim
        self.cursors = QueryCursors()

    # --- query ----------------------------------------------------------------------------
    def query(self, request: Request, version: str, tail: list[str], include_deleted: bool) -> Response:
        sim = self.sim
        if tail:  # query/{locator}-{offset}
            return self.query_more(tail[0], version)
        text = request.query_params.get("q")
        if text is None:
            return sf_error("MALFORMED_QUERY", "A query string has to be specified", 400)
        try:
            query = parse(text)
            check_query(query)
            table = sim.data.table(query.object_name)
            with sim.lock:
                rows = table.select(query, include_deleted=include_deleted)
                fields = [resolve(table.sobj, f) for f in query.fields]
                if query.count_only:
                    return sf_json({"totalSize": len(rows), "done": True, "records": []})
                batch = _batch_size(request)
                records = [project(sim, table.sobj.name, r, fields, version) for r in rows[:batch]]
        except SoqlError as exc:
            return sf_error(exc.code, str(exc), 400)
        except WriteError as exc:
            if exc.http_status == 404:
                return sf_error("INVALID_TYPE", f"sObject type '{query.object_name}' is not supported. If you "
                                "are attempting to use a custom object, be sure to append the '__c' after the "
                                "entity name.", 400)
            raise
        body: Row = {"totalSize": len(rows), "done": len(rows) <= batch, "records": records}
        if len(rows) > batch:
            locator = self.cursors.add(QueryCursor(table.sobj.name, fields, [r["Id"] for r in rows], batch))
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{batch}"
        return sf_json(body)

    def query_more(self, token: str, version: str) -> Response:
        locator, _, offset_text = token.rpartition("-")
        cursor = self.cursors.get(locator)
        if cursor is None or not offset_text.isdigit():
            return sf_error("INVALID_QUERY_LOCATOR", "invalid query locator", 400)
        offset = int(offset_text)
        table = self.sim.data.tables[cursor.object_name]
        with self.sim.lock:
            chunk = [table.get(i) for i in cursor.ids[offset:offset + cursor.batch]]
            records = [project(self.sim, cursor.object_name, r, cursor.fields, version) for r in chunk if r]
        end = offset + cursor.batch
        body: Row = {"totalSize": len(cursor.ids), "done": end >= len(cursor.ids), "records": records}
        if end < len(cursor.ids):
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{end}"
        return sf_json(body)

    # --- sObject rows ---------------------------------------------------------------------
    async def sobjects(self, request: Request, version: str, tail: list[str]) -> Response:
        sim, data = self.sim, self.sim.data
        method = request.method
        if not tail:
            return sf_json({"encoding": "UTF-8", "maxBatchSize": 200,
                            "sobjects": [object_flags(t.sobj, version) for t in data.tables.values()]})
        name = tail[0]
        table = data.table(name)
        object_name = table.sobj.name
        if len(tail) == 1:
            if method == "POST":
                body = parse_body(await request.body()) or {}
                with sim.lock:
                    record_id = data.create(object_name, body)
                return sf_json({"id": record_id, "success": True, "errors": []}, 201)
            return sf_json({"objectDescribe": {"name": object_name, "keyPrefix": table.sobj.prefix},
                            "recentItems": []})
        if tail[1] == "describe" and len(tail) == 2 and method == "GET":
            return sf_json(describe(table.sobj, version))
        if tail[1] in ("updated", "deleted") and len(tail) == 2 and method == "GET":
            return self.replication(request, object_name, tail[1])
        if len(tail) == 2:
            record_id = tail[1]
            if method == "GET":
                with sim.lock:
                    row = data.get_live(object_name, record_id)
                    wanted = request.query_params.get("fields")
                    fields = [resolve(table.sobj, f.strip()) for f in wanted.split(",")] if wanted \
                        else list(table.sobj.fields)
                    return sf_json(project(sim, object_name, row, fields, version))
            if method == "PATCH":
                body = parse_body(await request.body()) or {}
                since = request.headers.get("if-unmodified-since")
                when = parsedate_to_datetime(since).astimezone(dt.UTC) if since else None
                with sim.lock:
                    data.update(object_name, record_id, body, if_unmodified_since=when)
                return Response(status_code=204)
            if method == "DELETE":
                with sim.lock:
                    data.delete(object_name, record_id)
                return Response(status_code=204)
        if len(tail) == 3:
            field, value = tail[1], tail[2]
            if method == "PATCH":
                body = parse_body(await request.body()) or {}
                update_only = request.query_params.get("updateOnly", "false").lower() == "true"
                try:
                    with sim.lock:
                        record_id, created = data.upsert(object_name, field, value, body, update_only=update_only)
                except WriteError as exc:
                    if exc.http_status == 300:
                        matches = table.find_external(resolve(table.sobj, field), value)
                        return sf_json([f"/services/data/{version}/sobjects/{object_name}/{m}" for m in matches], 300)
                    raise
                return sf_json({"id": record_id, "success": True, "errors": [], "created": created},
                               201 if created else 200)
            if method == "GET":
                with sim.lock:
                    resolved = resolve(table.sobj, field)
                    matches = [m for m in table.find_external(resolved, value)
                               if not (table.get(m) or {}).get("IsDeleted")]
                    if not matches:
                        raise WriteError("NOT_FOUND", "The requested resource does not exist", http_status=404)
                    found = table.get(matches[0])
                    assert found is not None
                    return sf_json(project(sim, object_name, found, list(table.sobj.fields), version))
        return sf_error("METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.", 405)

    def replication(self, request: Request, object_name: str, kind: str) -> Response:
        table = self.sim.data.tables[object_name]
        if not table.sobj.replicable:
            return sf_error("INVALID_TYPE", f"sObject type '{object_name}' does not support replication", 400)
        try:
            start = _minute(_iso(request.query_params.get("start", "")))
            end = _minute(_iso(request.query_params.get("end", "")))
        except ValueError:
            return sf_error("INVALID_REPLICATION_DATE", "start and end must be ISO 8601 datetimes with a "
                            "time zone", 400)
        now = self.sim.clock.now()
        window = UPDATED_WINDOW if kind == "updated" else DELETED_WINDOW
        earliest = _minute(now - window)
        if start < earliest:
            return sf_error("INVALID_REPLICATION_DATE", f"startDate cannot be more than {window.days} days ago",
                            400)
        if end < start:
            return sf_error("INVALID_REPLICATION_DATE", "endDate must chronologically follow the startDate", 400)
        end = min(end, _minute(now))
        lo, hi = sf_datetime(start), sf_datetime(end)
        with self.sim.lock:
            if kind == "updated":
                ids = [rid for stamp, rid in table.order if lo <= stamp < hi
                       and not (table.get(rid) or {}).get("IsDeleted")]
                return sf_json({"ids": ids, "latestDateCovered": hi})
            deleted = [{"id": rid, "deletedDate": stamp} for rid, stamp in table.deleted_log if lo <= stamp < hi]
        return sf_json({"deletedRecords": deleted, "earliestDateAvailable": sf_datetime(earliest),
                        "latestDateCovered": hi})

    # --- sObject collections --------------------------------------------------------------
    async def composite(self, request: Request, version: str, tail: list[str]) -> Response:
        if not tail or tail[0] != "sobjects":
            return sf_error("NOT_FOUND", "The requested resource does not exist", 404)
        method = request.method
        data = self.sim.data
        if method == "DELETE":
            ids = [i for i in request.query_params.get("ids", "").split(",") if i]
            all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"
            if not ids or len(ids) > COLLECTION_LIMIT:
                return _too_many(len(ids))
            return self._collection(ids, all_or_none, lambda i: _delete_check(data, i),
                                    lambda i: _delete_apply(data, i))
        body = parse_body(await request.body())
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return sf_error("JSON_PARSER_ERROR", "Expected a body {\"allOrNone\": bool, \"records\": [...]}", 400)
        records: list[Row] = body["records"]
        all_or_none = bool(body.get("allOrNone", False))
        if not records or len(records) > COLLECTION_LIMIT:
            return _too_many(len(records))
        if method == "POST" and len(tail) == 1:
            return self._collection(records, all_or_none, lambda r: _create_check(data, r),
                                    lambda r: _create_apply(data, r))
        if method == "PATCH" and len(tail) == 1:
            return self._collection(records, all_or_none, lambda r: _update_check(data, r),
                                    lambda r: _update_apply(data, r))
        if method == "PATCH" and len(tail) == 3:
            object_name, field = tail[1], tail[2]
            return self._collection(records, all_or_none, lambda r: _upsert_check(data, object_name, field, r),
                                    lambda r: _upsert_apply(data, object_name, field, r))
        return sf_error("METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.", 405)

    def _collection(self, items: list[Any], all_or_none: bool, check: Callable[[Any], Row | None],
                    apply: Callable[[Any], Row]) -> Response:
        results: list[Row] = []
        with self.sim.lock:
            if all_or_none:
                failures = [check(item) for item in items]
                if any(f is not None for f in failures):
                    for failure in failures:
                        results.append(failure if failure is not None else {
                            "success": False, "errors": [{
                                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                "message": "Record rolled back because not all records were valid and the "
                                           "request was using AllOrNone header", "fields": []}]})
                    return sf_json(results)
            for item in items:
                failure = check(item)
                results.append(failure if failure is not None else _guarded(apply, item))
        return sf_json(results)


def _guarded(apply: Callable[[Any], Row], item: Any) -> Row:
    try:
        return apply(item)
    except WriteError as exc:
        return {"success": False, "errors": [exc.as_item()]}


def _fail(exc: WriteError, record_id: str | None = None) -> Row:
    out: Row = {"success": False, "errors": [exc.as_item()]}
    if record_id:
        out["id"] = record_id
    return out


def _record_type(record: Any) -> str:
    if not isinstance(record, dict):
        raise WriteError("JSON_PARSER_ERROR", "each record must be a JSON object")
    kind = (record.get("attributes") or {}).get("type")
    if not kind:
        raise WriteError("INVALID_TYPE", "Must send a concrete entity type.")
    return str(kind)


def _fields(record: Row) -> Row:
    return {k: v for k, v in record.items() if k not in ("attributes", "id", "Id")}


def _create_check(data: Any, record: Any) -> Row | None:
    try:
        kind = _record_type(record)
        if record.get("id") or record.get("Id"):
            raise WriteError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        data.clean(data.table(kind).sobj, _fields(record), insert=True)
    except WriteError as exc:
        return _fail(exc)
    return None


def _create_apply(data: Any, record: Row) -> Row:
    return {"id": data.create(_record_type(record), _fields(record)), "success": True, "errors": []}


def _update_check(data: Any, record: Any) -> Row | None:
    record_id = record.get("id") or record.get("Id") if isinstance(record, dict) else None
    try:
        kind = _record_type(record)
        if not record_id:
            raise WriteError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        data.get_live(kind, str(record_id))
        data.clean(data.table(kind).sobj, _fields(record), insert=False)
    except WriteError as exc:
        return _fail(exc, str(record_id) if record_id else None)
    return None


def _update_apply(data: Any, record: Row) -> Row:
    record_id = str(record.get("id") or record.get("Id"))
    data.update(_record_type(record), record_id, _fields(record))
    return {"id": data.get_live(_record_type(record), record_id)["Id"], "success": True, "errors": []}


def _upsert_check(data: Any, object_name: str, field: str, record: Any) -> Row | None:
    try:
        kind = _record_type(record)
        if kind.lower() != object_name.lower():
            raise WriteError("INVALID_TYPE", f"record type {kind} does not match {object_name}")
        table = data.table(kind)
        resolved = table.sobj.resolve(field)
        if resolved is None or resolved not in table.sobj.external_ids:
            raise WriteError("INVALID_FIELD", f"Provided external ID field does not exist or is not "
                             f"accessible: {field}", [field])
        value = record.get(resolved) if resolved in record else next(
            (v for k, v in record.items() if k.lower() == resolved.lower()), None)
        if not value:
            raise WriteError("MISSING_ARGUMENT", f"{resolved} not specified", [resolved])
        live = [m for m in table.find_external(resolved, str(value)) if not (table.get(m) or {}).get("IsDeleted")]
        if len(live) > 1:
            raise WriteError("DUPLICATE_EXTERNAL_ID", f"{resolved}: more than one record found for external id "
                             f"field: {live}", [resolved])
        data.clean(table.sobj, _fields(record), insert=not live)
    except WriteError as exc:
        return _fail(exc)
    return None


def _upsert_apply(data: Any, object_name: str, field: str, record: Row) -> Row:
    table = data.table(object_name)
    resolved = table.sobj.resolve(field)
    value = next(v for k, v in record.items() if k.lower() == resolved.lower())
    record_id, created = data.upsert(table.sobj.name, resolved, str(value), _fields(record))
    return {"id": record_id, "success": True, "errors": [], "created": created}


def _delete_check(data: Any, record_id: str) -> Row | None:
    object_name = PREFIX_OF.get(record_id[:3])
    try:
        if object_name is None:
            raise WriteError("MALFORMED_ID", f"malformed id {record_id}")
        data.get_live(object_name, record_id)
    except WriteError as exc:
        return _fail(exc, record_id)
    return None


def _delete_apply(data: Any, record_id: str) -> Row:
    object_name = PREFIX_OF[record_id[:3]]
    data.delete(object_name, record_id)
    return {"id": record_id, "success": True, "errors": []}


def _too_many(count: int) -> Response:
    if count == 0:
        return sf_error("INVALID_FIELD", "No records in the request", 400)
    return sf_error("EXCEEDED_ID_LIMIT", f"Maximum number of records in a single request is "
                    f"{COLLECTION_LIMIT}; this request has {count}", 400)


def _batch_size(request: Request) -> int:
    options = request.headers.get("sforce-query-options", "")
    for part in options.split(","):
        key, _, value = part.strip().partition("=")
        if key.lower() == "batchsize" and value.isdigit():
            return max(200, min(MAX_BATCH, int(value)))
    return MAX_BATCH


def _iso(text: str) -> dt.datetime:
    value = text.strip().replace(" ", "+").replace("Z", "+00:00")
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive")
    return parsed.astimezone(dt.UTC)


def _minute(value: dt.datetime) -> dt.datetime:
    return value.replace(second=0, microsecond=0)
