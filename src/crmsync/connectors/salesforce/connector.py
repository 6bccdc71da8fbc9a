"""``SalesforceConnector``: the Connector contract over simple-salesforce and the REST/Bulk APIs."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from crmsync.connectors.base import (
    BudgetExhausted,
    FatalError,
    Page,
    PushItem,
    PushResult,
    RetriableError,
    Usage,
)
from crmsync.connectors.cursor import StampRule, settle_seconds
from crmsync.connectors.mapping import ObjectMapping
from crmsync.connectors.plan import BackfillPlan, Option, pages
from crmsync.connectors.salesforce.auth import connect
from crmsync.connectors.salesforce.history import BatchedHistories, read_histories
from crmsync.connectors.salesforce.mapping import OBJECTS, PIPELINE_ID, SObjectSpec
from crmsync.connectors.salesforce.pull import Reader
from crmsync.connectors.salesforce.push import Pusher
from crmsync.connectors.salesforce.rest import API_VERSION, RestReads
from crmsync.connectors.salesforce.soql import soql
from crmsync.connectors.salesforce.transport import NotFoundError, SalesforceSession
from crmsync.connectors.stage_history import HistoryBatch
from crmsync.connectors.wire import encode_body
from crmsync.model import Deal, ModelError, Pipeline
from crmsync.settings import ConnectionSettings

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

T = TypeVar("T")
PIPELINE_MODIFIED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def dumps_exact(body: Any) -> bytes:
    """JSON with Decimals written digit for digit (no float round trip): money stays exact."""
    return encode_body(body)


#: REST keyset pages of 1,000 records, not the 2,000 a query answers at most: a parsed page of deals
#: takes some 5 MB, and a backfill holds about three (one written, one read ahead, one arriving), so
#: 2,000 a page grew a 20,000-deal backfill by 11 MB of peak RSS (121 against 132 MB, bench_peers),
#: for half the calls of a REST backfill, which stays below ``bulk_threshold`` (at most 100 calls)
REST_PAGE_SIZE = 1000


class SalesforceConnector:
    """Pull (REST keyset / Bulk 2.0), count, list ids and push for one Salesforce org.

    Options (``conn.options``): ``page_size`` (REST keyset LIMIT, ≤2000, default ``REST_PAGE_SIZE``),
    ``settle_seconds`` (300; see ``connectors.cursor``), ``bulk_threshold`` (records; a backfill of at least this many uses
    Bulk 2.0, default 100000), ``bulk_page_size`` (50000), ``bulk_poll_seconds`` (1.0),
    ``track_deletes`` (getDeleted window per cycle, default true), ``history_via`` (``bulk``: a
    backfill of every deal reads stage histories by three Bulk jobs; ``ids``: per page, 200 ids a
    query), ``bulk_parallel`` (results pages downloaded at once, 3), ``extra_fields``
    ({object: [field, ...]} selected and kept in ``extra``), ``max_attempts`` (5), ``timeout_seconds``.
    """

    kind = "salesforce"

    def __init__(self, conn: ConnectionSettings) -> None:
        self.conn = conn
        self.name = conn.name
        options = conn.options
        self.usage = Usage()
        self.page_size = max(1, min(2000, int(options.get("page_size", REST_PAGE_SIZE))))
        # SystemModstamp has whole seconds; in-flight transactions commit late (settle_seconds,
        # or the older name lookback_seconds, default 300)
        self.stamp_rule = StampRule(1.0, settle_seconds(options, 300.0))
        self.bulk_threshold = int(options.get("bulk_threshold", 100_000))
        self.bulk_page_size = int(options.get("bulk_page_size", 50_000))
        self.bulk_poll_s = float(options.get("bulk_poll_seconds", 1.0))
        self.bulk_timeout_s = float(options.get("bulk_timeout_seconds", 3600))
        self.track_deletes = bool(options.get("track_deletes", True))
        via = str(options.get("history_via", "bulk"))
        if via not in ("bulk", "ids"):
            raise FatalError(f"connection {conn.name}: history_via must be bulk or ids, not {via!r}")
        self.history_via = via
        self.session = SalesforceSession(ca_bundle=conn.ca_bundle, usage=self.usage,
                                         max_attempts=int(options.get("max_attempts", 5)),
                                         max_wait_s=float(options.get("max_wait_seconds", 60)),
                                         timeout_s=float(options.get("timeout_seconds", 60)))
        try:
            connect(conn, self.session)
        except BaseException:
            self.session.close()
            raise
        self.rest = RestReads(self.session, API_VERSION)
        self._pusher = Pusher(self)
        self._batched_histories: BatchedHistories | None = None

    @cached_property
    def sf(self) -> Salesforce:
        """simple-salesforce over this session, for pushes: imported on first use (a pull never
        loads it, nor the zeep/lxml/cryptography it brings; reads go through ``rest``)."""
        from simple_salesforce import Salesforce

        return Salesforce(session_id=self.session.access_token, instance_url=self.session.instance_url,
                          session=self.session, version=API_VERSION, parse_float=Decimal)

    # --- plumbing -------------------------------------------------------------------------
    def call(self, action: Callable[[], T]) -> T:
        """Run one simple-salesforce call; its exceptions become FatalError (retries live in the session)."""
        try:
            return action()
        except ValueError as exc:  # JSONDecodeError: simple-salesforce read a truncated or undecodable body
            if isinstance(exc, ModelError):
                raise
            raise RetriableError("Salesforce: truncated or invalid JSON body") from None
        except Exception as exc:
            # simple-salesforce's errors; if it was never imported, no call raised one
            errors = sys.modules.get("simple_salesforce.exceptions")
            if errors is None or not isinstance(exc, errors.SalesforceError):
                raise
            code, message = _sf_error(exc)
            kind = NotFoundError if isinstance(exc, errors.SalesforceResourceNotFound) else FatalError
            raise kind(f"Salesforce {exc.status} {code}: {message}".strip(), status=exc.status) from None

    def check_budget(self, *, push: bool = False) -> None:
        """Stop before spending past this connection's share of the org's daily API calls.

        Reads come out of ``daily_share * limit - reserve_for_push``; pushes may use the reserve.
        Raises ``BudgetExhausted`` (the engine has saved the last page's cursor and resumes later).
        """
        used, limit = self.usage.used, self.usage.limit
        if used is None or limit is None:
            return
        budget = self.conn.budget
        allowed = int(limit * budget.daily_share) - (0 if push else budget.reserve_for_push)
        if used >= allowed:
            kind = "push" if push else "read"
            raise BudgetExhausted(f"{self.name}: {used} of {limit} daily API calls used; the {kind} budget "
                                  f"is {allowed} (share {budget.daily_share}, reserve {budget.reserve_for_push})")

    @property
    def mappings(self) -> dict[str, ObjectMapping]:
        """The field tables with the connection's ``field_mappings`` (what push translates with)."""
        return self._pusher.mappings

    @staticmethod
    def dumps(body: Any) -> bytes:
        return dumps_exact(body)

    def extra_fields(self, object_name: str) -> list[str]:
        return list(self.conn.options.get("extra_fields", {}).get(object_name, []))

    def spec(self, object_name: str) -> SObjectSpec:
        spec = OBJECTS.get(object_name)
        if spec is None:
            raise FatalError(f"unknown object {object_name!r} (known: {', '.join(self.objects())})")
        return spec

    def query(self, query: str, *, include_deleted: bool, fields: Sequence[str] | None = None) -> list[Any]:
        """All records of one SOQL query, following ``nextRecordsUrl`` (``rest.RestReads.query``)."""
        return self.rest.query(query, include_deleted=include_deleted, fields=fields)

    def query_timed(self, query: str, *, include_deleted: bool,
                    fields: Sequence[str] | None = None) -> tuple[list[Any], float | None]:
        """``query`` plus the earliest server read time of its requests (``Date`` minus round trip)."""
        self.session.read_times.start()
        rows = self.query(query, include_deleted=include_deleted, fields=fields)
        return rows, self.session.read_times.earliest()

    def sobject_deleted(self, sobject: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        return self.rest.deleted(sobject, start, end)

    # --- the contract ---------------------------------------------------------------------
    def objects(self) -> Sequence[str]:
        return ["pipelines", *OBJECTS]

    def pull(self, object_name: str, cursor: Mapping[str, Any] | None, *,
             since: dt.datetime | None = None, until: dt.datetime | None = None,
             backfill: bool = False) -> Iterator[Page]:
        if object_name == "pipelines":
            yield Page([Pipeline(connection=self.name, source_object="OpportunityStage", source_id=PIPELINE_ID,
                                 modified_at=PIPELINE_MODIFIED, name="Opportunities")],
                       {"ts": PIPELINE_MODIFIED.isoformat()}, done=True)
            return
        reader = Reader(self, object_name, self.spec(object_name))
        if object_name == "deals":
            # a backfill of every deal reads their stage histories in batch (history.BatchedHistories)
            whole = backfill and since is None and until is None
            self._batched_histories = BatchedHistories(self) if whole and self.history_via == "bulk" else None
        if cursor and cursor.get("mode") == "bulk":
            yield from reader.bulk(cursor, since)
            return
        if backfill and not cursor and until is None:
            before = self.usage.calls
            total = self.count(object_name, since=since)
            if total >= self.bulk_threshold:
                pages = reader.bulk(None, since)
                first = next(pages)
                first.api_calls += self.usage.calls - before - first.api_calls
                yield first
                yield from pages
                return
        yield from reader.keyset(cursor, since, until)

    def plan_backfill(self, object_name: str, *, since: dt.datetime | None = None,
                      until: dt.datetime | None = None) -> BackfillPlan:
        """Bulk 2.0 at ``bulk_threshold`` records and more (job create, a status poll, ``resultPages``
        listings of five and one results call per ``bulk_page_size`` rows, ``bulk_parallel`` at once),
        else REST keyset pages of ``page_size``; deals add their stage history reads (``history_via``:
        three Bulk jobs for a backfill of every deal, else three queries per 200 deals). Salesforce
        has no per-second request limit (only the org's daily allocation and 25 concurrent
        long-running requests), so the limits set no floor on wall time: what matters is the share
        of the day."""
        records = self.count(object_name, since=since, until=until)
        results = pages(records, self.bulk_page_size)
        bulk_calls = 2 + pages(results, 5) + results
        rest_calls = pages(records, self.page_size) + 1
        history, history_note = 0, ""
        if object_name == "deals" and bool(self.conn.options.get("stage_history", True)):
            if self.history_via == "bulk" and since is None and until is None:
                history = 3 * (2 + 1 + 1) + max(0, pages(records * 5, self.bulk_page_size) - 1)
                history_note = "; stage history: 3 Bulk jobs (OpportunityHistory, OpportunityFieldHistory, loss fields)"
            else:
                history = 3 * pages(records, 200)
                history_note = "; stage history: 3 queries per 200 deals"
        parallel = max(1, int(self.conn.options.get("bulk_parallel", 3)))
        bulk = Option("bulk", bulk_calls + history, None, bulk_calls + history,
                      f"Bulk 2.0 query job, {results:,} results page(s) of up to {self.bulk_page_size:,} rows, "
                      f"{parallel} downloaded at once (resultPages){history_note}")
        rest = Option("rest", rest_calls + history, None, rest_calls + history,
                      f"REST keyset, {self.page_size:,} a page{history_note}")
        use_bulk = records >= self.bulk_threshold and until is None
        chosen = bulk if use_bulk else rest
        return BackfillPlan(self.name, object_name, records, chosen, (chosen, rest if use_bulk else bulk),
                            {"daily_allocation": str(self.usage.limit) if self.usage.limit else "?",
                             "per_second": "none (Salesforce has no per-second request limit)",
                             "bulk_threshold": f"{self.bulk_threshold:,} records"},
                            daily_remaining=self.usage.remaining)

    def count(self, object_name: str, *, since: dt.datetime | None = None,
              until: dt.datetime | None = None) -> int:
        if object_name == "pipelines":
            return 1
        spec = self.spec(object_name)
        query = soql("SELECT COUNT() FROM {:ident}", spec.sobject)
        clauses = []
        if since is not None:
            clauses.append(soql("SystemModstamp >= {}", since))
        if until is not None:
            clauses.append(soql("SystemModstamp < {}", until))
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return self.rest.total(query)

    def list_ids(self, object_name: str) -> Iterator[list[str]]:
        spec = self.spec(object_name)
        last = ""
        while True:
            rows = self.query(soql("SELECT Id FROM {:ident} WHERE Id > {} ORDER BY Id LIMIT {}",
                                   spec.sobject, last, 2000), include_deleted=False)
            ids = [str(r["Id"]) for r in rows]
            if ids:
                yield ids
                last = ids[-1]
            if len(ids) < 2000:
                return

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        return self._pusher.push(items)

    def stage_histories(self, deals: Sequence[Deal]) -> HistoryBatch:
        """The opportunities' stage histories (``crmsync.connectors.salesforce.history``)."""
        self.check_budget()
        batched = self._batched_histories
        if batched is not None:
            return batched.take(deals)
        return read_histories(self, deals)

    def close(self) -> None:
        self.session.close()


def _sf_error(exc: Any) -> tuple[str, str]:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))[:200]
    return "", ""
