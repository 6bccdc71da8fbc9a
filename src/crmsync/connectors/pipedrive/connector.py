"""``PipedriveConnector``: pull, count, list_ids and push over Pipedrive API v2 (v1 for users).

Objects (canonical names): deals, owners (v1 users), pipelines, stages, accounts (organizations),
contacts (persons), products, line_items (deal products) and tasks (activities).

Incremental objects (deals, accounts, contacts, tasks) use ``updated_since`` + ``sort_by=update_time``
+ ``sort_direction=asc`` with cursor paging at ``limit=500`` (see ``incremental.Checkpoint``);
deals add a ``status=deleted`` pass every cycle for soft deletes (deleted ≤30 days ago). Line items
follow the deals changed since their own watermark: ``/deals/products?deal_ids=`` in batches of
100. Small objects (owners, pipelines, stages, products) are read in full each time.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crmsync.connectors.base import (
    BudgetExhausted,
    FatalError,
    Page,
    PushItem,
    PushResult,
    Quarantined,
    Usage,
)
from crmsync.connectors.converters import as_timestamp
from crmsync.connectors.cursor import StampRule, settle_seconds
from crmsync.connectors.mapping import ObjectMapping
from crmsync.connectors.pipedrive.history import CHANGELOG_COST, read_histories
from crmsync.connectors.pipedrive.http import DEFAULT_BASE_URL, PipedriveHttp, RawPage
from crmsync.connectors.pipedrive.incremental import DEFAULT_RULE, Checkpoint
from crmsync.connectors.pipedrive.mapping import MAPPINGS, Reader
from crmsync.connectors.pipedrive.push import Pusher
from crmsync.connectors.pipedrive.windows import WindowedPull, WindowedState, chains_for, rfc3339
from crmsync.connectors.plan import BackfillPlan, Option, pages
from crmsync.connectors.stage_history import HistoryBatch
from crmsync.connectors.wire import decode_body
from crmsync.model import Deal, ModelError, Record
from crmsync.readahead import ReadAhead
from crmsync.settings import ConnectionSettings

PAGE_LIMIT = 500
PREFETCH_PAGES = 3  # answers fetched ahead of the page being stored (bounded memory: ~0.85 MB each)
IDS_PER_CALL = 100
V2 = "/api/v2"
# object -> (list path, extra params) for cursor-paged v2 endpoints
INCREMENTAL = {"deals": "/deals", "accounts": "/organizations", "contacts": "/persons", "tasks": "/activities"}
FULL = {"pipelines": "/pipelines", "stages": "/stages", "products": "/products"}
FIELD_LISTS = {"deals": "/v1/dealFields", "accounts": "/v1/organizationFields"}
# token costs (x-token-cost in Pipedrive's spec) of the calls the budget check looks ahead at
COST_LIST = 10
COST_SMALL_LIST = 5


def _epoch(value: str | None) -> int | None:
    """``update_time`` in epoch seconds; None when missing or malformed (the mapping then
    quarantines that record with the reason, and the checkpoint does not move for it)."""
    try:
        ts = as_timestamp(value, "update_time")
    except ModelError:
        return None
    return int(ts.timestamp()) if ts else None


def _only_deleted(object_name: str, rows: list[dict[str, Any]]) -> None:
    """Trust but verify: a ``status=deleted`` page must hold deleted records only. Live ones mean the
    filter was lost on the way (a proxy, an API change); the pass stops before anything is stored."""
    live = [str(r.get("id")) for r in rows if not (r.get("is_deleted") is True or r.get("status") == "deleted")]
    if live:
        raise FatalError(f"pipedrive {object_name}: the status=deleted list returned {len(live)} records that "
                         f"are not deleted (ids {', '.join(live[:5])}); refusing to treat them as deletions")


class PipedriveConnector:
    kind = "pipedrive"

    def __init__(self, conn: ConnectionSettings, *, http: PipedriveHttp | None = None) -> None:
        token = conn.secret("api_token")
        if not token and http is None:
            raise ValueError(f"connection {conn.name}: credentials.api_token is required")
        self.conn = conn
        self.name = conn.name
        verify: Any = str(conn.ca_bundle) if conn.ca_bundle else True
        options = conn.options
        self.http = http or PipedriveHttp(conn.base_url or DEFAULT_BASE_URL, token or "", verify=verify,
                                          max_attempts=int(options.get("max_attempts", 5)),
                                          max_wait_s=float(options.get("max_wait_s", 60)))
        # update_time has whole seconds (settle_seconds, or its older name lookback_seconds)
        self.stamp_rule = StampRule(1.0, settle_seconds(options, DEFAULT_RULE.settle_s))
        self.page_limit = int(options.get("page_limit", PAGE_LIMIT))
        # request later pages while one is stored: up to prefetch_pages answers (~1.7 KB a deal) held
        self.prefetch = bool(options.get("prefetch", True))
        self.prefetch_pages = max(1, int(options.get("prefetch_pages", PREFETCH_PAGES)))
        self._field_names: dict[str, dict[str, str]] = {}
        self._mappings: dict[str, ObjectMapping] = {
            name: mapping.with_overrides(conn.field_mappings.get(name, {})) for name, mapping in MAPPINGS.items()}
        self._readers: dict[str, Reader] = {}
        self._pusher = Pusher(self)
        self._budget_lock = threading.Lock()
        self._tokens_in_flight = 0

    @property
    def mappings(self) -> dict[str, ObjectMapping]:
        """The field tables with the connection's ``field_mappings`` (pull maps and push translates with them)."""
        return self._mappings

    @property
    def usage(self) -> Usage:
        return self.http.usage

    def objects(self) -> Sequence[str]:
        return ("owners", "pipelines", "stages", "accounts", "contacts", "products", "deals", "line_items", "tasks")

    def close(self) -> None:
        self.http.close()

    # --- budget -------------------------------------------------------------------------------------
    def budget_floor(self, *, for_push: bool) -> int | None:
        """Tokens that must stay unspent: the share not ours, plus the push reserve when pulling."""
        limit = self.usage.limit
        if limit is None:
            return None
        floor = int(limit * (1 - self.conn.budget.daily_share))
        return floor if for_push else floor + self.conn.budget.reserve_for_push

    def ensure_budget(self, cost: int, *, for_push: bool = False) -> None:
        floor = self.budget_floor(for_push=for_push)
        remaining = self.usage.remaining
        if floor is not None and remaining is not None and remaining - cost < floor:
            raise BudgetExhausted(f"{self.name}: {remaining} tokens left, {cost} needed, {floor} kept back")

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
             body: Mapping[str, Any] | None = None, cost: int = COST_LIST, for_push: bool = False) -> dict[str, Any]:
        self.ensure_budget(cost, for_push=for_push)
        return self.http.request(method, path, params=params, body=body)

    # --- field names --------------------------------------------------------------------------------
    def field_names(self, object_name: str) -> dict[str, str]:
        """Custom field key -> name, read once per connector (i.e. per run) from the v1 field listing."""
        path = FIELD_LISTS.get(object_name)
        if path is None:
            return {}
        if object_name not in self._field_names:
            names: dict[str, str] = {}
            start = 0
            while True:
                data = self.call("GET", path, params={"start": start, "limit": PAGE_LIMIT}, cost=20)
                for item in data.get("data") or []:
                    if item.get("key") and item.get("name"):
                        names[str(item["key"])] = str(item["name"])
                pagination = (data.get("additional_data") or {}).get("pagination") or {}
                if not pagination.get("more_items_in_collection"):
                    break
                start = int(pagination.get("next_start", start + PAGE_LIMIT))
            self._field_names[object_name] = names
        return self._field_names[object_name]

    def field_keys(self, object_name: str) -> dict[str, str]:
        return {name: key for key, name in self.field_names(object_name).items()}

    # --- mapping ------------------------------------------------------------------------------------
    def _reader(self, object_name: str) -> Reader:
        """The object's ``prepare`` + ``to_record`` (one per field listing: read once per run)."""
        names = self.field_names(object_name)
        reader = self._readers.get(object_name)
        if reader is None or reader.names is not names:
            reader = self._readers[object_name] = Reader(object_name, self._mappings[object_name], names)
        return reader

    def _map(self, object_name: str, rows: list[dict[str, Any]]) -> tuple[list[Record], list[Quarantined]]:
        reader = self._reader(object_name)
        to_record, name = reader.to_record, self.name
        records: list[Record] = []
        bad: list[Quarantined] = []
        for raw in rows:
            try:
                records.append(to_record(name, raw))
            except ModelError as exc:
                bad.append(Quarantined(reader.mapping.source_object, str(raw.get("id")), dict(raw), str(exc)))
        return records, bad

    # --- pull ---------------------------------------------------------------------------------------
    def pull(self, object_name: str, cursor: Mapping[str, Any] | None, *,
             since: dt.datetime | None = None, until: dt.datetime | None = None,
             backfill: bool = False) -> Iterator[Page]:
        if object_name not in self._mappings:
            raise ValueError(f"pipedrive: unknown object {object_name!r} (expected one of {', '.join(self.objects())})")
        # A saved cursor resumes a backfill as well as an incremental cycle (the engine keeps them apart).
        state = {} if cursor is None else {k: v for k, v in cursor.items()}
        if object_name == "owners":
            yield from self._pull_users()
        elif object_name in FULL:
            yield from self._pull_full(object_name)
        elif object_name == "line_items":
            yield from self._pull_line_items(state, since, until)
        elif self._windowed(object_name, state, since, until, backfill):
            yield from self._pull_windows(state)
        else:
            phases = ["live", "deleted"] if object_name == "deals" else ["live"]
            yield from self._pull_incremental(object_name, state, phases, since, until)

    # --- windowed deal backfill (``windows``) -------------------------------------------------------
    def _windowed(self, object_name: str, state: dict[str, Any], since: dt.datetime | None,
                  until: dt.datetime | None, backfill: bool) -> bool:
        """A whole-history deal backfill reads windows side by side when ``options.backfill_windows``
        is ``auto`` (the default) or a number of chains above 1; 1 is one chain. A backfill begun as
        one chain resumes as one; one begun in windows resumes in windows."""
        if not (backfill and object_name == "deals" and since is None and until is None):
            return False
        if state:
            return WindowedState.is_windowed(state)
        return self._fixed_chains() != 1

    def _fixed_chains(self) -> int | None:
        # on by default since the engine's CPU for 100,000 deals (7-8 s) went under the limits' 10 s
        # floor: one chain is then bound by its round trips (docs/engineering.md, bench_quota)
        value = self.conn.options.get("backfill_windows", "auto")
        return None if value in (None, "auto") else max(1, int(value))

    def chains(self, round_trip_s: float) -> int:
        """Chains to keep in flight for a round trip of ``round_trip_s`` (``windows.chains_for``)."""
        fixed = self._fixed_chains()
        if fixed is not None:
            return fixed
        burst = self.http.burst
        allowed = burst.allowed if burst is not None and burst.limit else None
        return chains_for(burst.rate if burst is not None else None, round_trip_s, allowed,
                          burst.window_s if burst is not None else 2.0)

    def _pull_windows(self, state: dict[str, Any]) -> Iterator[Page]:
        self.field_names("deals")  # read once, before the chains' workers run
        windowed = WindowedState.from_cursor(state) if state else WindowedState.fresh()

        def fetch(query: dict[str, Any], api_cursor: str | None) -> RawPage:
            # chains run at once: the tokens of requests in flight count as spent for the budget check
            with self._budget_lock:
                self.ensure_budget(COST_LIST + self._tokens_in_flight)
                self._tokens_in_flight += COST_LIST
            try:
                params = {**query, "cursor": api_cursor} if api_cursor else query
                return self.http.request_page(V2 + INCREMENTAL["deals"], params=params)
            finally:
                with self._budget_lock:
                    self._tokens_in_flight -= COST_LIST

        def map_rows(rows: list[dict[str, Any]], deleted_phase: bool) -> tuple[list[Record], list[Quarantined],
                                                                                list[str]]:
            if deleted_phase:
                _only_deleted("deals", rows)
            records, bad = self._map("deals", rows)
            return records, bad, [r.source_id for r in records if r.deleted]

        run = WindowedPull(windowed, fetch=fetch, map_rows=map_rows, epoch=_epoch, rule=self.stamp_rule,
                           page_limit=self.page_limit, chains=self.chains, name=f"pipedrive-windows-{self.name}")
        yield from run.pages()

    def _pull_users(self) -> Iterator[Page]:
        data = self.call("GET", "/v1/users", cost=20)
        records, bad = self._map("owners", list(data.get("data") or []))
        yield Page(records, {}, bad, api_calls=1, done=True)

    def _pull_full(self, object_name: str) -> Iterator[Page]:
        next_cursor: str | None = None
        cost = COST_SMALL_LIST if object_name in ("stages", "pipelines") else COST_LIST
        while True:
            params: dict[str, Any] = {"limit": self.page_limit}
            if next_cursor:
                params["cursor"] = next_cursor
            data = self.call("GET", V2 + FULL[object_name], params=params, cost=cost)
            next_cursor = (data.get("additional_data") or {}).get("next_cursor")
            records, bad = self._map(object_name, list(data.get("data") or []))
            yield Page(records, {}, bad, api_calls=1, done=next_cursor is None)
            if next_cursor is None:
                return

    def _pass(self, path: str, checkpoint: Checkpoint, params: dict[str, Any], *, override_since: int | None,
              until: int | None, prefetch: bool = True) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """One ``updated_since`` pass: (new rows of a page, pass finished) per page.

        The pages' requests run ahead of the caller (``_raw_pages`` in a ``ReadAhead`` worker, which
        reads only each answer's envelope for its ``next_cursor``): while the caller maps and commits
        a page, up to ``prefetch_pages`` later answers are fetched, as fast as the shared burst
        limiter lets them go. Each answer is decoded and passed through the checkpoint only when the
        caller asks for that page, so the checkpoint order is unchanged, and a pass closed early
        stops its worker (answers fetched ahead and never handed over are read again next run)."""
        since, next_cursor = checkpoint.begin(override_since)
        query = {**params, "sort_by": "update_time", "sort_direction": "asc", "limit": self.page_limit}
        if since is not None:
            query["updated_since"] = rfc3339(since)
        if until is not None:
            query["updated_until"] = rfc3339(until)
        depth = self.prefetch_pages if prefetch and self.prefetch else 0
        raw_pages: Iterator[RawPage] = self._raw_pages(V2 + path, query, next_cursor)
        if depth > 0:
            raw_pages = ReadAhead(raw_pages, depth=depth, name=f"pipedrive-prefetch-{self.name}")
        try:
            accept, rule = checkpoint.accept, self.stamp_rule
            for raw in raw_pages:
                read_at = raw.read_at
                fresh = []
                newest: int | None = None
                for row in decode_body(raw.content).get("data") or []:
                    stamp = _epoch(row.get("update_time"))
                    if stamp is not None:
                        newest = stamp if newest is None or stamp > newest else newest
                    if stamp is None or accept(int(row["id"]), stamp, read_at, rule):
                        fresh.append(row)
                checkpoint.page_read(newest, read_at, self.stamp_rule)
                checkpoint.page_done(raw.next_cursor)
                finished = raw.next_cursor is None
                del raw
                yield fresh, finished
                if finished:
                    return
        finally:
            close = getattr(raw_pages, "close", None)
            if close is not None:
                close()

    def _raw_pages(self, path: str, query: dict[str, Any], api_cursor: str | None) -> Iterator[RawPage]:
        """The pass's answers in order, following ``next_cursor`` until the last page (undecoded)."""
        while True:
            self.ensure_budget(COST_LIST)
            page = self.http.request_page(path, params={**query, "cursor": api_cursor} if api_cursor else query)
            yield page
            if page.next_cursor is None:
                return
            api_cursor = page.next_cursor

    def _pull_incremental(self, object_name: str, state: dict[str, Any], phases: list[str],
                          since: dt.datetime | None, until: dt.datetime | None) -> Iterator[Page]:
        path = INCREMENTAL[object_name]
        self.field_names(object_name)  # read once, before any page request runs ahead in the worker
        checkpoints = {phase: Checkpoint.from_dict(state.get(phase)) for phase in phases}
        override = int(since.timestamp()) if since else None
        upper = int(until.timestamp()) if until else None
        for n, phase in enumerate(phases):
            params = {"status": "deleted"} if phase == "deleted" else {}
            for rows, finished in self._pass(path, checkpoints[phase], params, override_since=override, until=upper):
                if phase == "deleted":
                    _only_deleted(object_name, rows)
                records, bad = self._map(object_name, rows)
                deleted = [r.source_id for r in records if r.deleted]
                cursor = {p: c.to_dict() for p, c in checkpoints.items()}
                yield Page(records, cursor, bad, deleted_ids=deleted, api_calls=1,
                           done=finished and n == len(phases) - 1)

    def _pull_line_items(self, state: dict[str, Any], since: dt.datetime | None,
                         until: dt.datetime | None) -> Iterator[Page]:
        """Deal products of the deals changed since the last run (adding a product updates the deal)."""
        checkpoint = Checkpoint.from_dict(state.get("deals"))
        override = int(since.timestamp()) if since else None
        upper = int(until.timestamp()) if until else None
        # no prefetch here: the deal products calls below share the HTTP client
        for rows, finished in self._pass("/deals", checkpoint, {}, override_since=override, until=upper,
                                         prefetch=False):
            deal_ids = [int(r["id"]) for r in rows]
            items: list[dict[str, Any]] = []
            calls = 1
            for start in range(0, len(deal_ids), IDS_PER_CALL):
                chunk = deal_ids[start:start + IDS_PER_CALL]
                items.extend(self._deal_products(chunk))
                calls += 1
            records, bad = self._map("line_items", items)
            yield Page(records, {"deals": checkpoint.to_dict()}, bad, api_calls=calls, done=finished,
                       complete_for_parents=[str(i) for i in deal_ids])

    def _deal_products(self, deal_ids: list[int]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        next_cursor: str | None = None
        while True:
            params: dict[str, Any] = {"deal_ids": [str(i) for i in deal_ids], "limit": self.page_limit}
            if next_cursor:
                params["cursor"] = next_cursor
            data = self.call("GET", V2 + "/deals/products", params=params)
            out.extend(data.get("data") or [])
            next_cursor = (data.get("additional_data") or {}).get("next_cursor")
            if next_cursor is None:
                return out

    # --- count and ids ------------------------------------------------------------------------------
    def plan_backfill(self, object_name: str, *, since: dt.datetime | None = None,
                      until: dt.datetime | None = None) -> BackfillPlan:
        """Cursor-paged list at ``page_limit`` (500) a page, sent as fast as the token's burst limit
        allows (``x-ratelimit-limit`` per 2 s, learned from the answers); the daily token budget
        (``x-daily-ratelimit-token-*``) bounds how much of it one day can carry. A whole-history deal
        backfill reads ``update_time`` windows side by side (``windows``): as many chains as the
        round trip of the count call says must be in flight to keep the burst limit busy, capped by
        it; each window's end costs at most one page more."""
        began = time.monotonic()
        records = self.count(object_name, since=since, until=until)
        round_trip = time.monotonic() - began
        calls = pages(records, self.page_limit) + 1  # + the deleted-records pass
        windowed = self._windowed(object_name, {}, since, until, backfill=True)
        chains = min(self.chains(round_trip), pages(records, self.page_limit)) if windowed else 1
        calls += chains - 1  # a split window ends inside a page that the window above reads again
        list_calls = calls
        tokens = calls * 10  # GET /api/v2/deals and friends cost 10 tokens (x-token-cost)
        history = object_name == "deals" and bool(self.conn.options.get("stage_history", True))
        if history:  # at most one changelog call per deal (those that never moved need none), 20 tokens
            calls += records
            tokens += records * CHANGELOG_COST
        burst = self.http.burst
        rate = burst.rate if burst is not None else None
        seconds = calls / rate if rate else None
        if seconds is not None:  # a chain cannot go faster than one answer per round trip
            seconds = max(seconds, list_calls * round_trip / chains)
        remaining = self.usage.remaining
        if seconds is not None and remaining is not None and tokens > remaining:
            seconds = None  # the budget runs out first: the engine stops cleanly and resumes tomorrow
        strategy = "windowed cursor list" if chains > 1 else "cursor list"
        how = (f"{chains} update_time windows at once (round trip {round_trip * 1000:.0f} ms), split where "
               "the data is; " if chains > 1 else "")
        chosen = Option(strategy, calls, seconds, tokens,
                        how + f"{self.page_limit} a page at the burst limit, {tokens:,} tokens"
                        + (f"; stage history: up to {records:,} changelog calls (options.stage_history: false "
                           "skips them)" if history else ""))
        limits = {"burst": f"{burst.limit} per {burst.window_s:g}s" if burst is not None and burst.limit
                  else "not reported", "daily_tokens": str(self.usage.limit) if self.usage.limit else "?"}
        return BackfillPlan(self.name, object_name, records, chosen, (chosen,), limits, daily_remaining=remaining)

    def count(self, object_name: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        """Live records the source holds. Deals without a window: one ``/v1/deals/summary`` call (40
        tokens). Anything else: page the ids at 500 per call (10 tokens a page: 1M deals ≈ 20k tokens)."""
        if object_name == "deals" and since is None and until is None:
            data = self.call("GET", "/v1/deals/summary", cost=40)
            return int((data.get("data") or {}).get("total_count") or 0)
        if object_name in ("owners", "stages", "pipelines", "products"):
            return sum(len(p.records) for p in self.pull(object_name, None))
        if object_name == "line_items" and since is None and until is None:
            # deal products have no list of their own: the deals' products, 100 deals a call
            return sum(len(chunk) for chunk in self.list_ids(object_name))
        return sum(len(chunk) for chunk in self._ids(object_name, since, until))

    def list_ids(self, object_name: str) -> Iterator[list[str]]:
        """Every live id, 500 per call, sorted by id (for the hard-delete sweep)."""
        if object_name == "line_items":
            for deal_chunk in self._ids("deals", None, None):
                for start in range(0, len(deal_chunk), IDS_PER_CALL):
                    part = [int(i) for i in deal_chunk[start:start + IDS_PER_CALL]]
                    yield [str(item["id"]) for item in self._deal_products(part)]
            return
        if object_name in ("owners", "stages", "pipelines", "products"):
            for page in self.pull(object_name, None):
                yield [r.source_id for r in page.records if not r.deleted]
            return
        yield from self._ids(object_name, None, None)

    def _ids(self, object_name: str, since: dt.datetime | None, until: dt.datetime | None) -> Iterator[list[str]]:
        if object_name not in INCREMENTAL:
            raise ValueError(f"pipedrive: cannot list ids of {object_name!r}")
        next_cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE_LIMIT, "sort_by": "id"}
            if since is not None:
                params["updated_since"] = rfc3339(int(since.timestamp()))
            if until is not None:
                params["updated_until"] = rfc3339(int(until.timestamp()))
            if next_cursor:
                params["cursor"] = next_cursor
            data = self.call("GET", V2 + INCREMENTAL[object_name], params=params)
            yield [str(r["id"]) for r in data.get("data") or []]
            next_cursor = (data.get("additional_data") or {}).get("next_cursor")
            if next_cursor is None:
                return

    # --- push ---------------------------------------------------------------------------------------
    def stage_histories(self, deals: Sequence[Deal]) -> HistoryBatch:
        """The deals' stage histories from their changelogs (``crmsync.connectors.pipedrive.history``)."""
        return read_histories(self, deals)

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        return self._pusher.push(items)
