"""Reading: REST keyset pages on (SystemModstamp, Id), Bulk 2.0 backfills, getDeleted windows.

Cursor shapes (what the engine saves after each Page):
- keyset: ``{"ts": iso, "id": last_id, "open": iso?, "read_at": iso, "deleted_ts": iso?}``; a new
  cycle resumes strictly after (ts, id), or re-reads from ``open`` when the last pass read into
  seconds that were not settled (``connectors.cursor``; idempotent upserts absorb the re-read);
  the ``Id`` tie-break means records sharing one SystemModstamp are never skipped nor repeated
  within a cycle.
- bulk: ``{"mode": "bulk", "job": id, "locator": str, "skip": rows, "job_created": iso}``; a
  restarted process fetches the same job from that locator and skips the rows of that results page
  already committed. Results pages are downloaded ``bulk_parallel`` (3) at a time through
  ``resultPages`` into temporary files (``salesforce.bulk``) and each is parsed from its file into
  Pages of ``bulk_chunk`` rows (5,000), so a results page is never held in memory whole. When the
  job has expired the pull falls back to keyset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from crmsync.connectors.base import Page, Quarantined
from crmsync.connectors.cursor import StampRule, lower
from crmsync.connectors.salesforce.bulk import BulkQueries, ResultFiles, csv_rows
from crmsync.connectors.salesforce.host import SalesforceHost
from crmsync.connectors.salesforce.mapping import SObjectSpec
from crmsync.connectors.salesforce.rest import as_row
from crmsync.connectors.salesforce.soql import soql
from crmsync.connectors.salesforce.transport import NotFoundError
from crmsync.model import ModelError, Record, parse_timestamp

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DELETED_WINDOW = dt.timedelta(days=15) - dt.timedelta(minutes=2)
BULK_CHUNK = 5_000  # rows per Page out of one Bulk results call (options.bulk_chunk)
BULK_PARALLEL = 3  # results pages downloaded at once (options.bulk_parallel)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def _jsonable(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in raw.items() if k != "attributes"}


class Reader:
    def __init__(self, connector: SalesforceHost, name: str, spec: SObjectSpec) -> None:
        self.c = connector
        self.name = name
        self.spec = spec
        self.mapping = spec.mapping.with_overrides(connector.conn.field_mappings.get(name, {}))
        self.fields = list(dict.fromkeys(["Id", *self.mapping.source_fields, *connector.extra_fields(name)]))

    # --- mapping --------------------------------------------------------------------------
    def page(self, rows: list[Any], cursor: dict[str, Any], calls: int, done: bool = False) -> Page:
        records: list[Record] = []
        bad: list[Quarantined] = []
        deleted: list[str] = []
        for row in rows:
            raw = as_row(row)
            try:
                record = self.mapping.to_record(self.c.name, raw)
            except ModelError as exc:
                bad.append(Quarantined(self.spec.sobject, str(raw.get("Id") or ""), _jsonable(raw), str(exc)))
                continue
            records.append(record)
            if record.deleted:
                deleted.append(record.source_id)
        return Page(records, cursor, quarantined=bad, deleted_ids=deleted, api_calls=calls, done=done)

    # --- keyset ---------------------------------------------------------------------------
    def keyset(self, cursor: Mapping[str, Any] | None, since: dt.datetime | None,
               until: dt.datetime | None) -> Iterator[Page]:
        """Keyset pages on (SystemModstamp, Id) under the cursor rule (``connectors.cursor``).

        A pass resumes strictly after the saved (ts, id), unless the last pass read into seconds
        that were still open (a later edit in the same second keeps its SystemModstamp; a
        transaction may commit after its stamp): then it restarts at that open floor, closed,
        and re-reads from there. The cursor keeps that floor (``open``) until a pass has re-read it.
        """
        rule = self.c.stamp_rule
        saved = dict(cursor) if cursor and "ts" in cursor else None
        ts, last_id = since or EPOCH, ""
        carried: float | None = None
        if saved is not None:
            ts = parse_timestamp(saved["ts"]) or EPOCH
            last_id = str(saved.get("id") or "")
            carried = _open_floor(saved, rule)
            if carried is not None and carried <= ts.timestamp():
                ts, last_id = dt.datetime.fromtimestamp(carried, dt.UTC), ""
        deleted_ts = saved.get("deleted_ts") if saved else None
        size = self.c.page_size
        emitted = False
        pass_open: float | None = None
        while True:
            self.c.check_budget()
            before = self.c.usage.calls
            if until is None:
                query = soql("SELECT {:fields} FROM {:ident} WHERE (SystemModstamp > {} OR (SystemModstamp = {} "
                             "AND Id > {})) ORDER BY SystemModstamp, Id LIMIT {}",
                             self.fields, self.spec.sobject, ts, ts, last_id, size)
            else:
                query = soql("SELECT {:fields} FROM {:ident} WHERE (SystemModstamp > {} OR (SystemModstamp = {} "
                             "AND Id > {})) AND SystemModstamp < {} ORDER BY SystemModstamp, Id LIMIT {}",
                             self.fields, self.spec.sobject, ts, ts, last_id, until, size)
            rows, read_at = self.c.query_timed(query, include_deleted=self.spec.replicable, fields=self.fields)
            last_page = len(rows) < size
            last: Mapping[str, Any] | None = None
            if rows:
                last = as_row(rows[-1])
                ts = _last_stamp(rows) or ts
                last_id = str(last["Id"])
                after: dict[str, Any] = {"ts": iso(ts), "id": last_id}
                pass_open = lower(pass_open, rule.reached_open(ts.timestamp(), read_at))
            elif saved is not None and not emitted:
                after = {"ts": saved["ts"], "id": saved.get("id", "")}  # nothing new: never move back
            else:
                after = {"ts": iso(ts), "id": last_id}
            if deleted_ts:
                after["deleted_ts"] = deleted_ts
            if saved is not None and rows:
                after = _not_before(after, saved)
            # Until this pass ends, a restart must still re-read the floor it started from.
            floor = pass_open if last_page else lower(pass_open, carried)
            if floor is not None:
                after["open"] = iso(dt.datetime.fromtimestamp(floor, dt.UTC))
            if read_at is not None:
                after["read_at"] = iso(dt.datetime.fromtimestamp(read_at, dt.UTC))
            emitted = True
            final = last_page and not (self.spec.replicable and self.c.track_deletes)
            page = self.page(rows, after, self.c.usage.calls - before, done=final)
            # the decoded rows are let go before the page is handed over: while it waits in the
            # engine's read-ahead, only its records are alive, not the JSON they came from too
            del rows, last
            yield page
            if last_page:
                break
        if self.spec.replicable and self.c.track_deletes:
            yield self.deleted_window(after)

    def deleted_window(self, cursor: dict[str, Any]) -> Page:
        """Hard and soft deletes Salesforce logged since the last window (at most 15 days back)."""
        self.c.check_budget()
        before = self.c.usage.calls
        now = dt.datetime.now(dt.UTC)
        earliest = now - DELETED_WINDOW
        start = parse_timestamp(cursor.get("deleted_ts")) if cursor.get("deleted_ts") else None
        if start is None or start < earliest:
            start = earliest
        out = dict(cursor)
        if now - start < dt.timedelta(minutes=1):
            return Page([], out, api_calls=0, done=True)
        answer = self.c.sobject_deleted(self.spec.sobject, start, now)
        ids = [str(item["id"]) for item in answer.get("deletedRecords", [])]
        # deletedDate is Salesforce's clock: an undelete after it gets a later SystemModstamp
        stamps = {str(item["id"]): when for item in answer.get("deletedRecords", [])
                  if (when := _deleted_date(item)) is not None}
        out["deleted_ts"] = iso(parse_timestamp(answer.get("latestDateCovered")) or start)
        return Page([], out, deleted_ids=ids, deleted_at=stamps, api_calls=self.c.usage.calls - before, done=True)

    # --- bulk -----------------------------------------------------------------------------
    def bulk(self, cursor: Mapping[str, Any] | None, since: dt.datetime | None) -> Iterator[Page]:
        queries = BulkQueries(self.c.rest)
        skip = 0
        if cursor and cursor.get("mode") == "bulk":
            job_id, locator, created = str(cursor["job"]), str(cursor.get("locator") or ""), str(cursor["job_created"])
            skip = int(cursor.get("skip") or 0)
        else:
            before = self.c.usage.calls
            query = soql("SELECT {:fields} FROM {:ident}", self.fields, self.spec.sobject)
            if since is not None:
                query += soql(" WHERE SystemModstamp >= {}", since)
            job = queries.create("queryAll" if self.spec.replicable else "query", query)
            job_id, locator, created = str(job["id"]), "", str(job["createdDate"])
            # Checkpoint the job before any result: a crash from here on resumes this same job.
            yield Page([], {"mode": "bulk", "job": job_id, "locator": "", "job_created": created},
                       api_calls=self.c.usage.calls - before)
        try:
            yield from self._bulk_results(queries, job_id, locator, created, skip)
        except NotFoundError:
            # The job expired or was deleted: start over with REST keyset (upserts absorb repeats).
            yield from self.keyset(None, since, None)

    def _bulk_results(self, queries: BulkQueries, job_id: str, locator: str, created: str,
                      skip: int = 0) -> Iterator[Page]:
        before = self.c.usage.calls
        queries.wait(job_id, poll_s=self.c.bulk_poll_s, timeout_s=self.c.bulk_timeout_s)
        options = self.c.conn.options
        chunk_size = max(1, int(options.get("bulk_chunk", BULK_CHUNK)))
        # Results pages download ``bulk_parallel`` at a time (``resultPages``) into temporary
        # files while this thread parses and the engine stores; ``prefetch: false`` reads one at a time.
        parallel = max(1, int(options.get("bulk_parallel", BULK_PARALLEL))) if options.get("prefetch", True) else 1
        files = ResultFiles(queries, job_id, locator, max_records=self.c.bulk_page_size, parallel=parallel,
                            before_call=self.c.check_budget,
                            use_result_pages=bool(options.get("bulk_result_pages", True)) and parallel > 1)
        for results in files:
            here: dict[str, Any] = {"mode": "bulk", "job": job_id, "locator": results.locator,
                                    "job_created": created}
            if results.next_locator:
                after: dict[str, Any] = {"mode": "bulk", "job": job_id, "locator": results.next_locator,
                                         "job_created": created}
            else:  # finished: the next incremental cycle starts at the job's snapshot time
                after = {"ts": iso(parse_timestamp(created) or EPOCH), "id": ""}
            done_rows = skip
            with results.body:
                for rows, last in csv_rows(results.body, skip, chunk_size):
                    done_rows += len(rows)
                    page_cursor = after if last else {**here, "skip": done_rows}
                    page = self.page(rows, page_cursor, self.c.usage.calls - before,
                                     done=last and not results.next_locator)
                    del rows  # only the records wait in the read-ahead, not the CSV rows too
                    yield page
                    before = self.c.usage.calls
            skip = 0


def _deleted_date(item: Mapping[str, Any]) -> dt.datetime | None:
    """An item's ``deletedDate`` (None when absent or unreadable: the engine's clock stands in)."""
    try:
        return parse_timestamp(item.get("deletedDate"))
    except ModelError:
        return None


def _open_floor(saved: Mapping[str, Any], rule: StampRule) -> float | None:
    """The open floor a saved cursor carries; a cursor saved before the floor was kept derives it
    from its own read time (its newest stamp was open if read within the settle window)."""
    if saved.get("open"):
        opened = parse_timestamp(saved["open"])
        return opened.timestamp() if opened else None
    ts = parse_timestamp(saved.get("ts"))
    read_at = parse_timestamp(saved.get("read_at")) if saved.get("read_at") else None
    if ts is None:
        return None
    return rule.reached_open(ts.timestamp(), read_at.timestamp() if read_at else None)


def _not_before(after: dict[str, Any], saved: Mapping[str, Any]) -> dict[str, Any]:
    """A lookback re-read must not save a cursor older than the one it started from."""
    saved_key = (parse_timestamp(saved["ts"]), str(saved.get("id", "")))
    after_key = (parse_timestamp(after["ts"]), str(after["id"]))
    if after_key < saved_key:  # type: ignore[operator]
        return {**after, "ts": saved["ts"], "id": saved.get("id", "")}
    return after


def _last_stamp(rows: list[Any]) -> dt.datetime | None:
    """The newest SystemModstamp of a page that parses: a malformed one (its record is quarantined
    by the mapping) never stops the page; the keyset keeps the last row's id, so rows sorted
    after the malformed one are not skipped."""
    for row in reversed(rows):
        try:
            stamp = parse_timestamp(as_row(row).get("SystemModstamp"), field_name="SystemModstamp")
        except ModelError:
            continue
        if stamp is not None:
            return stamp
    return None
