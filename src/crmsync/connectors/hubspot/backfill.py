"""HubSpot list-based backfill: the objects list API with properties and associations in the call.

Why: a backfill through search is capped by search's own limit (5/s, 200 a page: 1,000 records/s
at best), while the list API (100 a page) runs under the ten-second limit (190 per 10 s on a
Professional private app: 1,900 records/s) and carries associations inline, so a deal page needs
no association calls. When the property names would make the GET URL too long
(``MAX_URL_CHARS``), the list asks for ids only and each page is read by POST batch read, its
associations by v4 batch read.

Completeness and the hand-over: the list walks ids (``after``), not modification stamps, so a
record edited while the backfill runs may already be behind it. The first page notes the server
time the backfill started at; the cursor carries it as the open floor (``open_ms``, minus the
settle time: ``connectors.cursor``), so the first incremental pass after the backfill re-reads
every record modified since then through the search keyset. The list resumes from ``list_after``
after an interruption, with the floor of the original start kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from crmsync.connectors.base import Page
from crmsync.connectors.hubspot import keyset
from crmsync.connectors.hubspot.host import ListBackfillHost
from crmsync.connectors.hubspot.stamps import epoch_ms
from crmsync.readahead import ReadAhead

LIST_LIMIT = 100
# with propertiesWithHistory a call reads at most 50 objects (the spec: "will reduce the maximum
# number of objects"; 50 as for batch reads, connectors/hubspot/history.py)
HISTORY_LIST_LIMIT = 50
# HubSpot answers 414 URI Too Long for long GET URLs; keep well below the commonly hit ~3,000 bytes
MAX_URL_CHARS = 2_000
# associations a list call can carry inline, per object
INLINE_ASSOCIATIONS: dict[str, tuple[str, ...]] = {"line_items": ("deals",)}


def url_length(native: str, properties: list[str], associations: tuple[str, ...]) -> int:
    """Characters of the list GET URL (path and query) for these properties and associations."""
    query = [f"limit={LIST_LIMIT}", "after=99999999999", "archived=false"]
    query += [f"properties={quote(p)}" for p in properties] + [f"associations={quote(a)}" for a in associations]
    return len(f"/crm/v3/objects/{native}?") + len("&".join(query))


def with_history(connector: ListBackfillHost, name: str) -> bool:
    """Deal pages carry their stage history when the engine will read it (``options.stage_history``)."""
    return name == "deals" and bool(connector.conn.options.get("stage_history", True))


def inline_associations(connector: ListBackfillHost, name: str) -> tuple[str, ...]:
    if name == "deals":
        return tuple(connector.deal_associations)
    return INLINE_ASSOCIATIONS.get(name, ())


def fits_in_url(connector: ListBackfillHost, name: str, native: str) -> bool:
    return url_length(native, connector.properties(name), inline_associations(connector, name)) <= MAX_URL_CHARS


def backfill_by_list(connector: ListBackfillHost, name: str, native: str, state: keyset.KeysetState
                     ) -> Iterator[Page]:
    """Pages of the list walk; the last one is finished by the connector (archived ids, cursor)."""
    props = connector.properties(name)
    prop = connector.mappings[name].modified_field
    assocs = inline_associations(connector, name)
    inline = fits_in_url(connector, name, native)
    history: list[str] = []
    limit = LIST_LIMIT
    first_calls = 0
    if inline and with_history(connector, name):
        extra, first_calls = connector.history.properties()
        wide = list(dict.fromkeys([*props, *extra]))
        if url_length(native, wide, assocs) <= MAX_URL_CHARS:
            props, history, limit = wide, ["dealstage"], HISTORY_LIST_LIMIT
    after: str | None = state.extra.get("list_after")

    def fetch() -> Iterator[tuple[list[dict[str, Any]], str | None, float | None, int]]:
        """(objects, next after, server read time, calls) per list page; the next request goes
        out as soon as this one's ``after`` is known, while the page is mapped and stored."""
        nonlocal first_calls
        cursor = after
        while True:
            connector.transport.read_times.start()
            if inline:
                listed = connector.list_page(native, cursor, props, associations=list(assocs),
                                             with_history=history, limit=limit)
                calls, first_calls = 1 + first_calls, 0
            else:
                listed = connector.list_page(native, cursor, ["hs_object_id"])
                calls = 1
            listed_at = connector.transport.read_times.earliest()
            objects: list[dict[str, Any]] = list(listed.get("results") or [])
            if not inline and objects:
                objects = list(connector.batch_read(native, [str(o["id"]) for o in objects], props).get("results")
                               or [])
                calls += 1
            cursor = ((listed.get("paging") or {}).get("next") or {}).get("after")
            yield objects, cursor, listed_at, calls
            if not cursor:
                return

    lists: Iterator[tuple[list[dict[str, Any]], str | None, float | None, int]] = fetch()
    if connector.prefetch:
        lists = ReadAhead(lists, depth=2, name="hubspot-list")
    newest = state.ts
    try:
        yield from _pages(connector, name, state, lists, newest, prop, inline, bool(history))
    finally:
        close = getattr(lists, "close", None)
        if close is not None:
            close()


def _pages(connector: ListBackfillHost, name: str, state: keyset.KeysetState,
           lists: Iterator[tuple[list[dict[str, Any]], str | None, float | None, int]], newest: int | None,
           prop: str, inline: bool, history: bool) -> Iterator[Page]:
    for results, after, listed_at, calls in lists:
        if listed_at is not None and "open_ms" not in state.extra:
            # records edited after the list passed their id are behind it: the first incremental
            # pass starts where this backfill started, minus the settle time
            state = state.reached(int(connector.stamp_rule.floor(listed_at) * 1000))
        for obj in results:
            ts = _ms_of(obj, prop)
            newest = max(newest or 0, ts or 0)
        cur = keyset.KeysetState(newest, (), None, True, {**state.extra, "list_after": after})
        page = connector.page_of(name, results, cur, calls=calls, inline=inline)
        if history:  # the engine's stage-history read takes these instead of reading them again
            connector.history.keep(results)
        if not after:
            cur.extra.pop("list_after", None)
            page.cursor = cur.to_cursor()
            yield from connector.finish(name, page, cur)
            return
        yield page


def _ms_of(obj: dict[str, Any], prop: str) -> int | None:

    return epoch_ms((obj.get("properties") or {}).get(prop))


def inline_targets(obj: dict[str, Any], other: str) -> tuple[list[dict[str, Any]], bool]:
    """The v3 list's inline associations of ``obj`` to ``other`` as v4-shaped targets
    (``toObjectId``, ``associationTypes``), and whether HubSpot cut the list short (``paging``)."""
    block = (obj.get("associations") or {}).get(other)
    if not block:
        return [], False
    by_id: dict[str, list[dict[str, Any]]] = {}
    for item in block.get("results") or []:
        kind = str(item.get("type") or "")
        types = by_id.setdefault(str(item.get("id")), [])
        if kind and not kind.endswith("_unlabeled"):
            types.append({"label": "Primary" if other == "companies" else None, "typeId": None, "type": kind})
    truncated = bool((block.get("paging") or {}).get("next"))
    return [{"toObjectId": i, "associationTypes": t} for i, t in by_id.items()], truncated
