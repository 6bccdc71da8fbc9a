"""HubSpotConnector: pull (keyset search), counts, id sweeps and batched, conflict-checked pushes.

Choices (see keyset.py for the incremental walk):
- Backfill (``options.backfill_via``: auto, list, search): auto picks whichever reads records
  faster under the limits the portal reports (``plan_backfill``). Normally that is the list API
  (``backfill.py``: 100 a page with associations inline, under the ten-second limit of 100-190 per
  10 s) rather than search (200 a page, but its own limit of 4-5/s); the search keyset then serves
  the incremental tail, starting where the backfill started minus the settle time. A window
  (``since``/``until``) always goes through search, which can filter by date.
- Deletes: ``archived=true`` list after each pass (ids archived since the last one), and merged-away
  ids from ``hs_merged_object_ids``; hard deletes are for the engine's ``list_ids`` sweep (list API,
  which has no search lag).
- Associations are read (v4 batch read) for every changed deal / line item; because association
  changes do not bump ``hs_lastmodifieddate``, a full pass re-reads them every
  ``options.association_refresh_hours`` (default 24).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from crmsync.connectors.base import FatalError, Page, PushItem, PushResult, Quarantined, Usage
from crmsync.connectors.cursor import StampRule, settle_seconds
from crmsync.connectors.hubspot import keyset
from crmsync.connectors.hubspot.backfill import (
    HISTORY_LIST_LIMIT,
    backfill_by_list,
    fits_in_url,
    inline_associations,
    inline_targets,
    with_history,
)
from crmsync.connectors.hubspot.history import HISTORY_BATCH, HubSpotStageHistory
from crmsync.connectors.hubspot.limits import general_limiter, search_rate
from crmsync.connectors.hubspot.mapping import (
    EXTRA_PROPERTIES,
    MAPPINGS,
    flatten,
    flatten_owner,
    flatten_stage,
)
from crmsync.connectors.hubspot.push import Pusher
from crmsync.connectors.hubspot.stamps import epoch_ms as _ms
from crmsync.connectors.hubspot.transport import HubSpotTransport
from crmsync.connectors.mapping import ObjectMapping
from crmsync.connectors.plan import BackfillPlan, Option, pages
from crmsync.connectors.stage_history import HistoryBatch
from crmsync.model import Deal, ModelError, Record
from crmsync.readahead import ReadAhead
from crmsync.settings import ConnectionSettings

# canonical object -> HubSpot object type
NATIVE = {"deals": "deals", "accounts": "companies", "contacts": "contacts", "line_items": "line_items",
          "products": "products", "tasks": "tasks"}
ALIASES = {"companies": "accounts"}
SEARCH_LIMIT = 200
LIST_LIMIT = 100
BATCH = 100
ASSOC_BATCH = 1_000  # v4 associations batch read: 1,000 ids per call (HubSpot changelog, 2025-02-10)
_MISSING = object()


def _only_archived(native: str, results: list[dict[str, Any]]) -> None:
    """Trust but verify: an ``archived=true`` list must hold archived records only. Live ones mean
    the flag was lost on the way (a proxy, an API change): marking them deleted would delete live data."""
    live = [str(r.get("id")) for r in results if r.get("archived") is not True]
    if live:
        raise FatalError(f"hubspot {native}: the archived=true list returned {len(live)} records that are not "
                         f"archived (ids {', '.join(live[:5])}); refusing to mark them deleted")


def flag(value: bool) -> str:
    """A boolean query parameter as the spec spells it: the SDK would send Python's ``True``/``False``."""
    return "true" if value else "false"


def _stamps(results: list[dict[str, Any]], prop: str, floor: int | None) -> list[tuple[int, str]]:
    """(modified ms, id) per search result. A malformed timestamp takes the one before it (the
    search sorted by it, so the record sits there): the keyset never moves back for it, and the
    record itself is quarantined by the mapping."""
    rows: list[tuple[int, str]] = []
    previous = floor or 0
    for result in results:
        ms = _ms((result.get("properties") or {}).get(prop))
        previous = previous if ms is None else ms
        rows.append((previous, str(result["id"])))
    return rows


class HubSpotConnector:
    kind = "hubspot"

    def __init__(self, conn: ConnectionSettings) -> None:
        token = conn.secret("access_token") or conn.secret("token")
        if not token:
            raise FatalError(f"connection {conn.name}: credentials.access_token is missing")
        self.conn = conn
        self.name = conn.name
        self.usage = Usage()
        opts = conn.options
        self.transport = HubSpotTransport(conn.base_url, token, ca_bundle=conn.ca_bundle,
                                          search_per_second=search_rate(opts, conn.name),
                                          general=general_limiter(conn.base_url, token, opts),
                                          max_attempts=int(opts.get("max_attempts", 6)),
                                          max_wait_s=float(opts.get("max_wait_s", 60)), usage=self.usage)
        # hs_lastmodifieddate has ms; search shows a change only after its index lag (settle_seconds,
        # or the older name lookback_seconds, default 120)
        self.stamp_rule = StampRule(0.001, settle_seconds(opts, 120.0))
        self.settle_ms = int(self.stamp_rule.settle_s * 1000)
        self.refresh_ms = int(float(opts.get("association_refresh_hours", 24)) * 3_600_000)
        self.backfill_via = str(opts.get("backfill_via", "auto"))  # auto | list | search
        self.deal_associations = tuple(opts.get("deal_associations", ("companies", "contacts")))
        self._apis: dict[tuple[str, ...], Any] = {}
        self._assoc_pool: ThreadPoolExecutor | None = None  # set while a search pull runs
        self.prefetch = bool(opts.get("prefetch", True))  # next search in flight while a page is stored
        self.search_page_size = max(1, min(SEARCH_LIMIT, int(opts.get("search_page_size", SEARCH_LIMIT))))
        self.assoc_batch = max(1, min(ASSOC_BATCH, int(opts.get("association_batch", ASSOC_BATCH))))
        self.mappings: dict[str, ObjectMapping] = {
            name: mapping.with_overrides(conn.field_mappings.get(name, {})) for name, mapping in MAPPINGS.items()}
        self._set_reserve()
        self.pusher = Pusher(self)
        self._history: HubSpotStageHistory | None = None

    def _set_reserve(self) -> None:
        if self.usage.limit:
            share = self.conn.budget.daily_share
            self.transport.daily_reserve = int(self.usage.limit * (1 - share)) + self.conn.budget.reserve_for_push

    @property
    def crm(self) -> Any:
        return self.transport.client.crm

    def _api(self, *path: str) -> Any:
        """An SDK API object (``("deals", "search_api")``), built once: each attribute walk of the
        SDK's discovery builds a new ApiClient with its own connection pool (a new TCP connection
        and a package-metadata read per call). None when the SDK has no such API."""
        found = self._apis.get(path, _MISSING)
        if found is _MISSING:
            node: Any = self.crm
            for part in path:
                node = getattr(node, part, None)
                if node is None:
                    break
            self._apis[path] = found = node
        return found

    def call(self, operation: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        result = self.transport.call(operation, fn, *args, **kwargs)
        self._set_reserve()
        return result

    # --- the contract -------------------------------------------------------------------------
    def objects(self) -> Sequence[str]:
        return ("owners", "pipelines", "stages", "accounts", "contacts", "deals", "line_items", "products", "tasks")

    def close(self) -> None:
        """Nothing to release: the SDK's urllib3 pools close with the process."""

    def _canonical(self, object_name: str) -> str:
        name = ALIASES.get(object_name, object_name)
        if name not in self.mappings:
            raise FatalError(f"hubspot: unknown object {object_name!r}")
        return name

    def properties(self, name: str) -> list[str]:
        mapping = self.mappings[name]
        props = [f.source.split(".", 1)[0] for f in mapping.fields]
        props += [mapping.modified_field, "hs_object_id", "createdate", "hs_lastmodifieddate"]
        props += EXTRA_PROPERTIES.get(name, ())
        props += list(self.conn.options.get("extra_properties", {}).get(name, ()))
        return list(dict.fromkeys(p for p in props if p not in ("id",)))

    def pull(self, object_name: str, cursor: Mapping[str, Any] | None, *, since: dt.datetime | None = None,
             until: dt.datetime | None = None, backfill: bool = False) -> Iterator[Page]:
        name = self._canonical(object_name)
        if name == "owners":
            yield from self._pull_owners()
        elif name in ("pipelines", "stages"):
            yield self._pull_pipelines(name)
        else:
            yield from self._pull_search(name, dict(cursor or {}), since, until, backfill)

    # --- backfill plan --------------------------------------------------------------------------
    def backfill_strategy(self, name: str) -> str:
        """``list`` or ``search`` for a whole-object backfill: ``options.backfill_via``, or (auto)
        whichever reads records faster under the limits this portal reported."""
        if self.backfill_via in ("list", "search"):
            return self.backfill_via
        return self._options(name, 1_000_000)[0].strategy

    def _options(self, name: str, records: int) -> list[Option]:
        """List and search, each with its calls and the floor the limits put on them. v4 association
        batch reads and searches are exempt from the ten-second limit (associations.v4.json,
        deals.v3.json: ``x-hubspot-rate-limit-exemptions``); stage-history batch reads are not."""
        native = NATIVE[name]
        general = self.transport.general
        general_rate = general.rate if general is not None else None
        search_rate_s = 1 / self.transport.search_interval if self.transport.search_interval else None
        assoc_types = len(inline_associations(self, name))
        history = with_history(self, name)
        history_reads = pages(records, HISTORY_BATCH) if history else 0
        inline = fits_in_url(self, name, native)

        def floor(general_calls: int, searches: int = 0) -> float | None:
            bounds = [general_calls / general_rate if general_rate else None,
                      searches / search_rate_s if search_rate_s and searches else None]
            known = [b for b in bounds if b is not None]
            return max(known) if known else None

        if inline:
            size = HISTORY_LIST_LIMIT if history else LIST_LIMIT
            list_general = pages(records, size)
            list_calls = list_general
            note = f"GET list, {size} a page, properties, associations{' and stage history' if history else ''} inline"
        else:
            list_general = 2 * pages(records, LIST_LIMIT) + history_reads
            list_calls = list_general + assoc_types * pages(records, self.assoc_batch)
            note = "list ids + POST batch read (properties too long for a URL) + v4 association reads"
        searches = pages(records, self.search_page_size)
        search_calls = searches + assoc_types * pages(records, self.assoc_batch) + history_reads
        options = [
            Option("list", list_calls + 1, floor(list_general), list_calls + 1, note),
            Option("search", search_calls + 1, floor(history_reads, searches), search_calls + 1,
                   f"search keyset, {self.search_page_size} a page, v4 association batch reads"
                   + (", stage-history batch reads of 50" if history else "")),
        ]
        options.sort(key=lambda o: (o.seconds if o.seconds is not None else 0.0, o.calls))
        return options

    def plan_backfill(self, object_name: str, *, since: dt.datetime | None = None,
                      until: dt.datetime | None = None) -> BackfillPlan:
        name = self._canonical(object_name)
        records = self.count(name, since=since, until=until)  # also reads this portal's limit headers
        if name in ("owners", "pipelines", "stages"):
            only = Option("list", 1 if name != "owners" else 2, None, 1)
            return BackfillPlan(self.name, name, records, only, (only,), daily_remaining=self.usage.remaining)
        options = self._options(name, records)
        if since is not None or until is not None:  # the list API cannot filter by date
            options = [o for o in options if o.strategy == "search"]
        elif self.backfill_via in ("list", "search"):
            options.sort(key=lambda o: o.strategy != self.backfill_via)
        general = self.transport.general
        limits = {"ten_secondly": f"{general.limit} per {general.window_s:g}s" if general and general.limit
                  else "unlimited (limits_raised)",
                  "search": f"{1 / self.transport.search_interval:.2f}/s" if self.transport.search_interval
                  else "unlimited"}
        return BackfillPlan(self.name, name, records, options[0], tuple(options), limits,
                            daily_remaining=self.usage.remaining)

    # --- search-based objects -----------------------------------------------------------------
    def search(self, native: str, body: dict[str, Any]) -> dict[str, Any]:
        api = self._api(native, "search_api")
        if api is not None:
            result = self.call(f"search {native}", api.do_search, body, search=True)
        else:
            result = self.call(f"search {native}", self._api("objects", "search_api").do_search, native, body,
                               search=True)
        return dict(result or {})

    def _pull_search(self, name: str, cursor: dict[str, Any], since: dt.datetime | None,
                     until: dt.datetime | None, backfill: bool) -> Iterator[Page]:
        native = NATIVE[name]
        mapping = self.mappings[name]
        prop = mapping.modified_field
        state = keyset.KeysetState.from_cursor(cursor)
        now = int(time.time() * 1000)
        extra = dict(state.extra)
        refresh_due = name in ("deals", "line_items") and now - int(extra.get("assoc_refreshed_ms") or 0) > \
            self.refresh_ms
        if extra.get("refreshing"):  # a full pass was interrupted: resume it, never restart from zero
            state = keyset.KeysetState(state.ts, state.seen, state.tie, state.strict, extra)
        elif backfill or state.ts is None or refresh_due:
            extra["refreshing"] = now
            start_ts = int(since.timestamp() * 1000) if since else None
            if start_ts is None:  # everything is read again: no open floor to carry
                extra.pop("open_ms", None)
                extra.pop("carried_ms", None)
            state = keyset.KeysetState(ts=start_ts, extra={**extra, "lo": start_ts} if start_ts else extra)
        else:
            state = keyset.KeysetState(state.ts, state.seen, state.tie, state.strict, extra).restart()
        # the pass ends at the server's now (not the client's: their clocks may differ)
        hi = int(until.timestamp() * 1000) if until else int(self.transport.read_times.server_now() * 1000)
        if "list_after" in state.extra or (backfill and since is None and until is None and state.ts is None
                                            and self.backfill_strategy(name) == "list"):
            yield from backfill_by_list(self, name, native, state)
            return
        props = self.properties(name)
        # Objects with associations gather search pages up to one association batch (1,000 ids:
        # 5 searches, then one batch read per associated type, the types read side by side)
        # before a Page is handed over; the cursor is the keyset state after the last search of
        # the group. The keyset searches run ahead in their own thread, so the next searches run
        # while this group's associations are read and it is stored.
        page_size = self.search_page_size
        group_limit = self.assoc_batch if name in ("deals", "line_items") else page_size
        searches: Iterator[tuple[list[dict[str, Any]], keyset.KeysetState, bool]]
        searches = self._searches(native, state, prop, hi, props)
        if self.prefetch:
            # one search queued (plus the one in flight): an interrupted pull wastes at most two
            searches = ReadAhead(searches, depth=1, name="hubspot-search")
        group: list[dict[str, Any]] = []
        calls = 0
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(self.deal_associations)),
                                    thread_name_prefix="hubspot-assoc") as pool:
                self._assoc_pool = pool if self.prefetch else None
                for emitted, state, done in searches:
                    calls += 1
                    group.extend(emitted)
                    if not done and len(group) + page_size <= group_limit:
                        continue
                    page = self._page(name, group, state, calls=calls)
                    group, calls = [], 0
                    if done:
                        yield from self._finish(name, page, state)
                        return
                    yield page
        finally:
            self._assoc_pool = None
            close = getattr(searches, "close", None)
            if close is not None:
                close()

    def _searches(self, native: str, state: keyset.KeysetState, prop: str, hi: int, props: list[str]
                  ) -> Iterator[tuple[list[dict[str, Any]], keyset.KeysetState, bool]]:
        """The keyset walk: (records to emit, state after the page, done) per search call."""
        limit = self.search_page_size
        while True:
            self.transport.read_times.start()
            result = self.search(native, keyset.query(state, prop, hi, limit, props))
            read_at = self.transport.read_times.earliest()
            results = result.get("results") or []
            rows = _stamps(results, prop, state.ts)
            state, emit, done = keyset.advance(state, rows, limit)
            newest = max((ts for ts, _ in rows), default=None)
            floor = self.stamp_rule.reached_open(newest / 1000, read_at) if newest is not None else None
            state = state.reached(int(floor * 1000) if floor is not None else None)
            yield [results[n] for n in emit], state, done
            if done:
                return

    def _finish(self, name: str, page: Page, state: keyset.KeysetState) -> Iterator[Page]:
        extra = dict(state.extra)
        if extra.get("refreshing"):
            extra["assoc_refreshed_ms"] = extra.pop("refreshing")
        deleted, archived_ms, calls = self._archived_since(name, int(extra.get("archived_ms") or 0))
        extra["archived_ms"] = archived_ms
        final = keyset.KeysetState(state.ts, state.seen, state.tie, state.strict, extra).finished()
        page.cursor = final.to_cursor()
        page.deleted_ids = list(dict.fromkeys([*page.deleted_ids, *deleted]))
        page.deleted_at.update(deleted)
        page.api_calls += calls
        page.done = True
        yield page

    def _archived_since(self, name: str, since_ms: int) -> tuple[dict[str, dt.datetime], int, int]:
        """Ids archived since ``since_ms`` (minus the lookback) from the ``archived=true`` list,
        each with its ``archivedAt`` (HubSpot's clock: a restore after it is stamped later)."""
        native = NATIVE[name]
        after: str | None = None
        ids: dict[str, dt.datetime] = {}
        newest = since_ms
        calls = 0
        while True:
            page = self.list_page(native, after, ["hs_object_id"], archived=True)
            calls += 1
            _only_archived(native, page.get("results") or [])
            for obj in page.get("results") or []:
                at = _ms(obj.get("archivedAt")) or 0
                newest = max(newest, at)
                if at > since_ms - self.settle_ms:
                    ids[str(obj["id"])] = dt.datetime.fromtimestamp(at / 1000, dt.UTC)
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return ids, newest, calls

    def list_page(self, native: str, after: str | None, properties: list[str], *, archived: bool = False,
                  associations: list[str] | None = None, with_history: list[str] | None = None,
                  limit: int = LIST_LIMIT) -> dict[str, Any]:
        api = self._api(native, "basic_api")
        kwargs: dict[str, Any] = {"limit": limit, "properties": properties, "archived": flag(archived)}
        if associations:
            kwargs["associations"] = associations
        if with_history:
            kwargs["properties_with_history"] = with_history
        if after:
            kwargs["after"] = after
        if api is not None:
            return dict(self.call(f"list {native}", api.get_page, **kwargs) or {})
        return dict(self.call(f"list {native}", self._api("objects", "basic_api").get_page, native, **kwargs) or {})

    def batch_read(self, native: str, ids: Sequence[str], properties: list[str], *, push: bool = False,
                   with_history: Sequence[str] = ()) -> dict[str, Any]:
        body = {"inputs": [{"id": i} for i in ids], "properties": properties,
                "propertiesWithHistory": list(with_history)}
        api = self._api(native, "batch_api")
        if api is not None:
            return dict(self.call(f"batch read {native}", api.read, body, archived=flag(False), push=push) or {})
        return dict(self.call(f"batch read {native}", self._api("objects", "batch_api").read, native, body,
                              archived=flag(False), push=push) or {})

    def page_of(self, name: str, objects: list[dict[str, Any]], state: keyset.KeysetState, *, calls: int,
                inline: bool = False) -> Page:
        return self._page(name, objects, state, calls=calls, inline=inline)

    def finish(self, name: str, page: Page, state: keyset.KeysetState) -> Iterator[Page]:
        return self._finish(name, page, state)

    def _page(self, name: str, objects: list[dict[str, Any]], state: keyset.KeysetState, *, calls: int,
              inline: bool = False) -> Page:
        mapping = self.mappings[name]
        records: list[Record] = []
        quarantined: list[Quarantined] = []
        merged: list[str] = []
        for obj in objects:
            raw = flatten(obj)
            try:
                records.append(mapping.to_record(self.name, raw))
            except ModelError as exc:
                quarantined.append(Quarantined(mapping.source_object, str(obj.get("id")), raw, str(exc)))
            merged += [i for i in str(raw.get("hs_merged_object_ids") or "").split(";") if i]
        extra_calls = self._attach_associations(name, records, objects if inline else None)
        return Page(records=records, cursor=state.to_cursor(), quarantined=quarantined, deleted_ids=merged,
                    api_calls=calls + extra_calls)

    # --- associations -------------------------------------------------------------------------
    def associations(self, from_native: str, to_native: str, ids: Sequence[str]) -> tuple[dict[str, list[dict]], int]:
        """v4 batch read: id -> [{toObjectId, associationTypes}], ``association_batch`` (1,000) ids per call."""
        out: dict[str, list[dict]] = {}
        calls = 0
        api = self._api("associations", "v4", "batch_api")
        size = self.assoc_batch
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            body = {"inputs": [{"id": i} for i in chunk]}
            result = self.call(f"associations {from_native}->{to_native}", api.get_page, from_native, to_native,
                               body) or {}
            calls += 1
            for item in result.get("results") or []:
                out[str(item["from"]["id"])] = list(item.get("to") or [])
        return out, calls

    def _inline(self, name: str, others: Sequence[str], records: list[Record], objects: list[dict[str, Any]]
                ) -> tuple[list[tuple[str, tuple[dict[str, list[dict]], int]]], int]:
        """Associations the list call carried inline; ids whose inline list was cut short are read
        by v4 batch read (one call per associated type)."""
        by_id = {str(o.get("id")): o for o in objects}
        answers: list[tuple[str, tuple[dict[str, list[dict]], int]]] = []
        calls = 0
        for other in others:
            found: dict[str, list[dict]] = {}
            short: list[str] = []
            for rec in records:
                targets, truncated = inline_targets(by_id.get(rec.source_id) or {}, other)
                found[rec.source_id] = targets
                if truncated:
                    short.append(rec.source_id)
            if short:
                more, n = self.associations(NATIVE.get(name, name), other, short)
                found.update(more)
                calls += n
            answers.append((other, (found, 0)))
        return answers, calls

    def _attach_associations(self, name: str, records: list[Record],
                             objects: list[dict[str, Any]] | None = None) -> int:
        if not records or name not in ("deals", "line_items"):
            return 0
        ids = [r.source_id for r in records]
        calls = 0
        if name == "line_items":
            if objects is not None:
                inline, calls = self._inline(name, ("deals",), records, objects)
                found = inline[0][1][0]
            else:
                found, calls = self.associations("line_items", "deals", ids)
            for rec in records:
                targets = found.get(rec.source_id) or []
                setattr(rec, "deal_id", str(targets[0]["toObjectId"]) if targets else None)  # noqa: B010
            return calls
        pool = self._assoc_pool
        if objects is not None:
            pairs, calls = self._inline(name, self.deal_associations, records, objects)
            answers = [answer for _, answer in pairs]
        elif pool is not None and len(self.deal_associations) > 1:
            futures = [pool.submit(self.associations, "deals", other, ids) for other in self.deal_associations]
            answers = [f.result() for f in futures]
        else:
            answers = [self.associations("deals", other, ids) for other in self.deal_associations]
        for other, (found, n) in zip(self.deal_associations, answers, strict=True):
            calls += n
            for rec in records:
                targets = found.get(rec.source_id) or []
                if other == "companies":
                    primary = [t for t in targets if any(a.get("label") == "Primary" or a.get("typeId") == 5
                                                          for a in t.get("associationTypes") or [])]
                    chosen = (primary or targets)[:1]
                    setattr(rec, "account_id", str(chosen[0]["toObjectId"]) if chosen else None)  # noqa: B010
                elif other == "contacts":
                    setattr(rec, "contact_ids", sorted(str(t["toObjectId"]) for t in targets))  # noqa: B010
                else:
                    rec.extra[f"{other}_ids"] = sorted(str(t["toObjectId"]) for t in targets)
        return calls

    # --- owners, pipelines --------------------------------------------------------------------
    def _owners_raw(self) -> tuple[list[dict[str, Any]], int]:
        out: list[dict[str, Any]] = []
        calls = 0
        for archived in (False, True):
            after: str | None = None
            while True:
                kwargs: dict[str, Any] = {"limit": 100, "archived": flag(archived)}
                if after:
                    kwargs["after"] = after
                page = self.call("owners", self.crm.owners.owners_api.get_page, **kwargs) or {}
                calls += 1
                out += page.get("results") or []
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        return out, calls

    def _pull_owners(self) -> Iterator[Page]:
        raw, calls = self._owners_raw()
        mapping = self.mappings["owners"]
        records: list[Record] = []
        quarantined: list[Quarantined] = []
        for owner in raw:
            flat = flatten_owner(owner)
            try:
                records.append(mapping.to_record(self.name, flat))
            except ModelError as exc:
                quarantined.append(Quarantined("owners", str(owner.get("id")), flat, str(exc)))
        yield Page(records=records, cursor={"full": True}, quarantined=quarantined, api_calls=calls, done=True)

    def _pipelines_raw(self) -> list[dict[str, Any]]:
        result = self.call("pipelines", self.crm.pipelines.pipelines_api.get_all, "deals") or {}
        return list(result.get("results") or [])

    def _pull_pipelines(self, name: str) -> Page:
        pipelines = self._pipelines_raw()
        mapping = self.mappings[name]
        raws = pipelines if name == "pipelines" else [flatten_stage(s, p["id"]) for p in pipelines
                                                        for s in p.get("stages") or []]
        records: list[Record] = []
        quarantined: list[Quarantined] = []
        for raw in raws:
            try:
                records.append(mapping.to_record(self.name, raw))
            except ModelError as exc:
                quarantined.append(Quarantined(mapping.source_object, str(raw.get("id")), raw, str(exc)))
        return Page(records=records, cursor={"full": True}, quarantined=quarantined, api_calls=1, done=True)

    # --- completeness -------------------------------------------------------------------------
    def count(self, object_name: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        name = self._canonical(object_name)
        if name == "owners":
            raw, _ = self._owners_raw()
            return len(raw)
        if name in ("pipelines", "stages"):
            pipelines = self._pipelines_raw()
            return len(pipelines) if name == "pipelines" else sum(len(p.get("stages") or []) for p in pipelines)
        prop = self.mappings[name].modified_field
        filters = []
        if since is not None:
            filters.append({"propertyName": prop, "operator": "GTE", "value": str(int(since.timestamp() * 1000))})
        if until is not None:
            filters.append({"propertyName": prop, "operator": "LTE", "value": str(int(until.timestamp() * 1000))})
        # every field the spec marks required (after, sorts) is sent, as the real API takes them
        body = {"filterGroups": [{"filters": filters}] if filters else [], "sorts": [], "limit": 1, "after": "0",
                "properties": ["hs_object_id"]}
        return int(self.search(NATIVE[name], body).get("total") or 0)

    def list_ids(self, object_name: str) -> Iterator[list[str]]:
        name = self._canonical(object_name)
        if name == "owners":
            raw, _ = self._owners_raw()
            yield [str(o["id"]) for o in raw]
            return
        native = NATIVE[name]
        after: str | None = None
        while True:
            page = self.list_page(native, after, ["hs_object_id"])
            yield [str(o["id"]) for o in page.get("results") or []]
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    # --- writes -------------------------------------------------------------------------------
    @property
    def history(self) -> HubSpotStageHistory:
        if self._history is None:
            self._history = HubSpotStageHistory(self)
        return self._history

    def stage_histories(self, deals: Sequence[Deal]) -> HistoryBatch:
        """The deals' stage histories (``crmsync.connectors.hubspot.history``)."""
        return self.history.read(deals)

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        return self.pusher.push(items)
