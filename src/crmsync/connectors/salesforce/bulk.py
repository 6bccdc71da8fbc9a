"""Bulk API 2.0 query jobs on the connector's session: create, wait, results by locator, in parallel.

Results are CSV. Each results call is written to an anonymous temporary file as it arrives and
parsed from there ``chunk`` rows at a time, so however large a results page is (50,000 rows,
~22 MB of Opportunities), what a pull holds in memory is one chunk of rows and the read buffers.

Parallel results (``GET …/jobs/query/{id}/resultPages``, API 58.0+; docs/api-facts.md): the
answer lists up to five ``resultUrl``s, each with a locator, and a ``nextRecordsUrl`` to the next
five while ``done`` is false. ``ResultFiles`` downloads up to ``parallel`` of them at once and hands
them over in order; where the resource is not served (404) it falls back to following the
``Sforce-Locator`` header of each results call, one page read ahead.
"""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import requests

from crmsync.connectors.base import FatalError, RetriableError
from crmsync.connectors.salesforce.rest import RestReads
from crmsync.connectors.salesforce.transport import NotFoundError, refusal
from crmsync.connectors.wire import encode_body

PIECE = 1 << 16  # bytes read from a results body at a time


@dataclass
class ResultFile:
    """One results call, on disk: its locator, the next one ("" at the end) and the CSV body."""

    locator: str
    next_locator: str
    body: IO[bytes]


class BulkQueries:
    def __init__(self, rest: RestReads) -> None:
        self.rest = rest

    def path(self, job_id: str | None = None) -> str:
        return "jobs/query" + (f"/{job_id}" if job_id else "")

    def create(self, operation: str, soql: str) -> dict[str, Any]:
        body = {"operation": operation, "query": soql, "contentType": "CSV", "columnDelimiter": "COMMA",
                "lineEnding": "LF"}
        return dict(self.rest.send("POST", self.path(), encode_body(body)))

    def state(self, job_id: str) -> dict[str, Any]:
        return dict(self.rest.get(self.path(job_id)))

    def wait(self, job_id: str, *, poll_s: float, timeout_s: float,
             before_poll: Callable[[], None] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            if before_poll is not None:
                before_poll()
            job = self.state(job_id)
            state = job.get("state")
            if state == "JobComplete":
                return job
            if state in ("Failed", "Aborted"):
                raise FatalError(f"bulk job {job_id} ended in state {state}")
            if time.monotonic() > deadline:
                raise FatalError(f"bulk job {job_id} did not complete in {timeout_s:.0f}s")
            time.sleep(poll_s)

    def result_locators(self, job_id: str) -> Iterator[str]:
        """The locator of every results page, in order (``resultPages``, five at a time)."""
        answer = self.rest.get(self.path(job_id) + "/resultPages")
        while True:
            for page in answer.get("resultPages") or []:
                yield locator_of(str(page.get("resultUrl") or ""))
            following = answer.get("nextRecordsUrl") or answer.get("nextRecordUrl")
            if answer.get("done", True) or not following:
                return
            answer = self.rest.session.call_json("GET", self.rest.instance + str(following))

    def download(self, job_id: str, locator: str, max_records: int | None) -> ResultFile:
        """One results call streamed into a temporary file (the caller closes ``body``)."""
        url = self.rest.base + self.path(job_id) + "/results"
        params: dict[str, Any] = {}
        if max_records:
            params["maxRecords"] = max_records
        if locator:
            params["locator"] = locator
        sink = tempfile.TemporaryFile(prefix="crmsync-bulk-")  # noqa: SIM115 - handed to the caller open
        try:
            response = self.rest.session.get(url, params=params, stream=True, headers={"Accept": "text/csv"})
            with response:
                if response.status_code >= 300:
                    raise refusal("GET", urlsplit(url).path, response)
                next_locator = response.headers.get("Sforce-Locator", "")
                try:
                    for piece in response.iter_content(PIECE):
                        sink.write(piece)
                except requests.RequestException as exc:
                    raise RetriableError(f"GET bulk results of {job_id}: body cut short "
                                         f"({type(exc).__name__})") from None
        except BaseException:
            sink.close()
            raise
        sink.seek(0)
        return ResultFile(locator, "" if next_locator == "null" else next_locator, sink)


def locator_of(result_url: str) -> str:
    values = parse_qs(urlsplit(result_url).query).get("locator") or [""]
    return values[0]


class ResultFiles:
    """The results pages of one job, in order, downloaded ``parallel`` at a time.

    ``start`` is a saved locator ("" = the first page). From the first page, the pages come from
    ``resultPages``; from a saved locator (a resumed job), or where ``resultPages`` is not served,
    from each page's ``Sforce-Locator``, the next page downloaded while one is parsed.
    ``before_call`` runs before each request is sent (the API budget check).
    """

    def __init__(self, bulk: BulkQueries, job_id: str, start: str, *, max_records: int | None, parallel: int,
                 before_call: Callable[[], None], use_result_pages: bool = True) -> None:
        self.bulk, self.job_id, self.start = bulk, job_id, start
        self.max_records, self.parallel = max_records, max(1, parallel)
        self.before_call = before_call
        self.use_result_pages = use_result_pages
        self.mode = "locator"

    def _fetch(self, locator: str) -> ResultFile:
        return self.bulk.download(self.job_id, locator, self.max_records)

    def __iter__(self) -> Iterator[ResultFile]:
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="sf-bulk-results") as pool:
            pending: list[Future[ResultFile]] = []
            try:
                yield from self._ordered(pool, pending)
            finally:
                for future in pending:
                    future.cancel()
                for future in pending:
                    if not future.cancelled():
                        with contextlib.suppress(BaseException):  # abandoned downloads: nothing to keep
                            future.result().body.close()

    def _ordered(self, pool: ThreadPoolExecutor, pending: list[Future[ResultFile]]) -> Iterator[ResultFile]:
        locators: Iterator[str] | None = None
        if not self.start and self.use_result_pages:
            self.before_call()
            try:
                listed = self.bulk.result_locators(self.job_id)
                first = next(listed, None)
            except NotFoundError:
                first = None
            if first is not None:
                self.mode = "parallel"
                locators = _chain(first, listed)
        if locators is not None:
            # parallel: up to ``parallel`` downloads in flight, handed over in the listed order;
            # a page's next locator is the next listed one (the header is not needed)
            ahead = _lookahead(locators)
            for locator, following in ahead:
                while len(pending) >= self.parallel:
                    yield _done(pending.pop(0))
                self.before_call()
                pending.append(pool.submit(self._listed, locator, following))
            while pending:
                yield _done(pending.pop(0))
            return
        self.before_call()
        pending.append(pool.submit(self._fetch, self.start))
        while pending:
            page = _done(pending.pop(0))
            if page.next_locator:  # the next page downloads while this one is parsed
                self.before_call()
                pending.append(pool.submit(self._fetch, page.next_locator))
            yield page

    def _listed(self, locator: str, following: str | None) -> ResultFile:
        page = self.bulk.download(self.job_id, locator, None)
        page.next_locator = following or ""
        return page


def _done(future: Future[ResultFile]) -> ResultFile:
    return future.result()


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _lookahead(items: Iterator[str]) -> Iterator[tuple[str, str | None]]:
    """Each item with the one after it (None after the last)."""
    current = next(items, None)
    while current is not None:
        following = next(items, None)
        yield current, following
        current = following


def csv_rows(body: IO[bytes], skip: int, size: int) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """Rows of one Bulk CSV results page as dicts ("" read as null, NUL bytes dropped as
    simple-salesforce does), ``size`` at a time, after skipping the first ``skip`` rows; read from
    ``body`` as it is parsed, so the page is never held whole. The flag marks the page's last chunk."""
    text = io.TextIOWrapper(body, encoding="utf-8", newline="")  # type: ignore[type-var]
    lines = (line.replace("\x00", "") if "\x00" in line else line for line in text)
    reader = (row for row in csv.reader(lines) if row)  # blank lines are no rows
    header = next(reader, None)
    if header is None:
        yield [], True
        return
    for _ in range(skip):
        if next(reader, None) is None:
            break
    chunk: list[dict[str, Any]] = []
    for row in reader:
        if len(chunk) == size:
            yield chunk, False
            chunk = []
        chunk.append({k: (v or None) for k, v in zip(header, row, strict=False)})
    yield chunk, True


def query_rows(bulk: BulkQueries, operation: str, soql: str, *, poll_s: float, timeout_s: float,
               before_call: Callable[[], None], parallel: int = 3,
               chunk: int = 5_000) -> Iterator[tuple[dict[str, Any], str]]:
    """Every row of one Bulk 2.0 query job, with the job's ``createdDate`` (its snapshot time):
    the job created, waited for and its results pages read (``ResultFiles``)."""
    before_call()
    job = bulk.create(operation, soql)
    job_id, created = str(job["id"]), str(job.get("createdDate") or "")
    bulk.wait(job_id, poll_s=poll_s, timeout_s=timeout_s)
    for results in ResultFiles(bulk, job_id, "", max_records=None, parallel=parallel, before_call=before_call):
        with results.body:
            for rows, _last in csv_rows(results.body, 0, chunk):
                for row in rows:
                    yield row, created
