"""Bulk API 2.0 query jobs: create, poll, CSV results by locator, abort/delete.

A job snapshots the matching Ids when it is created and completes after ``delay_s`` (0 = on the
first poll). Locators encode an offset, so they stay valid until the job is deleted or expired: a
crashed client resumes a job from its last locator.

Parallel results (``GET …/jobs/query/{id}/resultPages``, API 58.0 and later; docs/api-facts.md):
the job's rows split into pages of ``result_page_rows``, up to five ``resultUrl``s per answer
(``/services/data/vXX.X/jobs/query/{id}/results?locator=…``), ``nextRecordsUrl`` to the next
five and ``done``. A listed locator is bounded (offset and end), so the pages can be fetched in any
order and at once without overlapping; each answer still carries the ``Sforce-Locator`` of the rows
after it. Asked with another API version than the job's, both results resources answer 409.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from crmsync.sandbox.salesforce.evaluate import resolve, sf_datetime
from crmsync.sandbox.salesforce.host import OrgHost
from crmsync.sandbox.salesforce.ids import make_id
from crmsync.sandbox.salesforce.responses import sf_error, sf_json, to_csv
from crmsync.sandbox.salesforce.rest import parse_body
from crmsync.sandbox.salesforce.soql import SoqlError, parse

DEFAULT_MAX_RECORDS = 100_000
RESULT_PAGE_ROWS = 50_000  # rows per listed results page (the sandbox's choice; Salesforce sizes its own)
URLS_PER_ANSWER = 5  # resultUrls in one resultPages answer (documented: up to five)
DELIMITERS = {"COMMA": ",", "TAB": "\t", "SEMICOLON": ";", "PIPE": "|", "CARET": "^", "BACKQUOTE": "`"}


@dataclass
class QueryJob:
    id: str
    operation: str
    object_name: str
    query: str
    fields: list[str]
    ids: list[str]
    created: dt.datetime
    ready_at: float
    api_version: float = 59.0
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    aborted: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def state(self) -> str:
        if self.aborted:
            return "Aborted"
        return "JobComplete" if time.monotonic() >= self.ready_at else "InProgress"

    def describe(self, created_reply: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object_name,
            "createdById": "005000000000001AAA", "createdDate": sf_datetime(self.created),
            "systemModstamp": sf_datetime(self.created), "state": "UploadComplete" if created_reply else self.state(),
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": self.api_version,
            "lineEnding": self.line_ending, "columnDelimiter": self.column_delimiter,
        }
        if not created_reply:
            done = body["state"] == "JobComplete"
            body.update(jobType="V2Query", numberRecordsProcessed=len(self.ids) if done else 0, retries=0,
                        totalProcessingTime=0, isPkChunkingSupported=True)
        return body


def encode_locator(offset: int, end: int | None = None) -> str:
    text = str(offset) if end is None else f"{offset}-{end}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_locator(text: str) -> int:
    return decode_bounded(text)[0]


def decode_bounded(text: str) -> tuple[int, int | None]:
    """(offset, end or None) of a locator."""
    padded = text + "=" * (-len(text) % 4)
    value = base64.urlsafe_b64decode(padded.encode()).decode()
    start, dash, end = value.partition("-")
    if not start.isdigit() or (dash and not end.isdigit()):
        raise ValueError(text)
    return int(start), (int(end) if dash else None)


class BulkApi:
    def __init__(self, sim: OrgHost) -> None:
        self.sim = sim
        self.jobs: dict[str, QueryJob] = {}
        self._lock = threading.Lock()
        self._n = 0
        self.delay_s = 0.0
        self.result_page_rows = RESULT_PAGE_ROWS

    def expire_all(self) -> None:
        """Forget every job, as Salesforce does after the retention period."""
        with self._lock:
            self.jobs.clear()

    async def handle(self, request: Request, tail: list[str], version: str = "v59.0") -> Response:
        if not tail or tail[0] != "query":
            return sf_error("NOT_FOUND", "The requested resource does not exist", 404)
        method = request.method
        if len(tail) == 1 and method == "POST":
            return self.create(parse_body(await request.body()) or {}, version)
        if len(tail) == 1 and method == "GET":
            with self._lock:
                records = [j.describe() for j in self.jobs.values()]
            return sf_json({"done": True, "records": records, "nextRecordsUrl": None})
        with self._lock:
            job = self.jobs.get(tail[1])
        if job is None:
            return sf_error("NOT_FOUND", "The requested resource does not exist", 404)
        if len(tail) == 2:
            if method == "GET":
                return sf_json(job.describe())
            if method == "DELETE":
                with self._lock:
                    self.jobs.pop(job.id, None)
                return Response(status_code=204)
            if method == "PATCH":
                body = parse_body(await request.body()) or {}
                if body.get("state") == "Aborted":
                    job.aborted = True
                    return sf_json(job.describe())
                return sf_error("INVALIDJOBSTATE", "Only Aborted is a valid state for a query job", 400)
        if len(tail) == 3 and tail[2] in ("results", "resultPages") and method == "GET":
            if f"v{job.api_version:.1f}" != version:
                return sf_error("API_ERROR", f"Job {job.id} was created with API version {job.api_version:.1f}; "
                                "get its results with the same version", 409)
            if tail[2] == "resultPages":
                if float(version[1:]) < 58.0:
                    return sf_error("NOT_FOUND", "The requested resource does not exist", 404)
                return self.result_pages(request, job, version)
            return self.results(request, job)
        return sf_error("METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.", 405)

    def create(self, body: dict[str, Any], version: str = "v59.0") -> Response:
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            return sf_error("INVALIDJOB", "operation must be query or queryAll", 400)
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or line_ending not in ("LF", "CRLF"):
            return sf_error("INVALIDJOB", "invalid columnDelimiter or lineEnding", 400)
        try:
            query = parse(str(body.get("query") or ""))
            if query.count_only or query.offset is not None:
                raise SoqlError("Bulk API 2.0 queries do not support aggregates or OFFSET", "INVALIDJOB")
            table = self.sim.data.table(query.object_name)
            with self.sim.lock:
                rows = table.select(query, include_deleted=operation == "queryAll")
                fields = [resolve(table.sobj, f) for f in query.fields]
        except SoqlError as exc:
            return sf_error("API_ERROR" if exc.code == "MALFORMED_QUERY" else exc.code, str(exc), 400)
        with self._lock:
            self._n += 1
            job = QueryJob(make_id("750", self._n), operation, table.sobj.name, query_text(body), fields,
                           [r["Id"] for r in rows], self.sim.clock.now(), time.monotonic() + self.delay_s,
                           float(version[1:]), delimiter, line_ending)
            self.jobs[job.id] = job
        return sf_json(job.describe(created_reply=True))

    def results(self, request: Request, job: QueryJob) -> Response:
        if job.state() != "JobComplete":
            return sf_error("API_ERROR", f"Job {job.id} is not complete (state {job.state()})", 400)
        try:
            max_records = int(request.query_params.get("maxRecords", DEFAULT_MAX_RECORDS))
            offset, bound = decode_bounded(request.query_params["locator"]) if request.query_params.get("locator") \
                else (0, None)
        except (ValueError, UnicodeDecodeError):
            return sf_error("INVALIDLOCATOR", "invalid locator or maxRecords", 400)
        if max_records <= 0 or offset > len(job.ids) or (bound is not None and bound < offset):
            return sf_error("INVALIDLOCATOR", "invalid locator or maxRecords", 400)
        table = self.sim.data.tables[job.object_name]
        end = min(len(job.ids), offset + max_records, len(job.ids) if bound is None else bound)
        with self.sim.lock:
            rows = [r for r in (table.get(i) for i in job.ids[offset:end]) if r is not None]
        body = to_csv(job.fields, rows, DELIMITERS[job.column_delimiter],
                      "\r\n" if job.line_ending == "CRLF" else "\n")
        next_locator = encode_locator(end) if end < len(job.ids) else "null"
        response = Response(body.encode("utf-8"), media_type="text/csv",
                            headers={"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(len(rows))})
        # Salesforce answers HTTP/1.1 with header names in their canonical case (``Content-Type``);
        # clients that look a header up case-sensitively (Airbyte's CSV extractor) see it as sent.
        response.raw_headers = [(_CANONICAL.get(k, k), v) for k, v in response.raw_headers]
        return response


    def result_pages(self, request: Request, job: QueryJob, version: str) -> Response:
        """Up to five bounded result URLs from ``page`` (the sandbox's own continuation parameter,
        carried in ``nextRecordsUrl``), ``done`` when no more follow."""
        if job.state() != "JobComplete":
            return sf_error("API_ERROR", f"Job {job.id} is not complete (state {job.state()})", 400)
        try:
            first = int(request.query_params.get("page", "0"))
        except ValueError:
            return sf_error("INVALIDLOCATOR", "invalid page", 400)
        size = max(1, self.result_page_rows)
        total = max(1, -(-len(job.ids) // size))  # an empty job still has one (empty) results page
        if first < 0 or first > total:
            return sf_error("INVALIDLOCATOR", "invalid page", 400)
        base = f"/services/data/{version}/jobs/query/{job.id}"
        pages = range(first, min(total, first + URLS_PER_ANSWER))
        body: dict[str, Any] = {
            "resultPages": [{"resultUrl": f"{base}/results?locator="
                                          f"{encode_locator(n * size, min(len(job.ids), (n + 1) * size))}"}
                            for n in pages],
            "done": pages.stop >= total,
            "nextRecordsUrl": None if pages.stop >= total else f"{base}/resultPages?page={pages.stop}",
        }
        return sf_json(body)


_CANONICAL = {b"content-type": b"Content-Type", b"content-length": b"Content-Length",
              b"sforce-locator": b"Sforce-Locator", b"sforce-numberofrecords": b"Sforce-NumberOfRecords"}


def query_text(body: dict[str, Any]) -> str:
    return str(body.get("query") or "")
