"""CRM search: request checks, filter evaluation and the index fast path.

Limits as HubSpot documents them: at most 5 filterGroups, 10 filters per group and 25 in total,
``limit`` up to 200, and no result past the 10,000th (HTTP 400). Filters on
``hs_lastmodifieddate`` (``lastmodifieddate`` for contacts) in a single group read the
(modified, id) index instead of scanning every row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from typing import Any

from crmsync.sandbox.hubspot.schema import MODIFIED_PROPERTIES, PROPERTIES, parse_ms
from crmsync.sandbox.hubspot.table import ObjectTable, Props, Row

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
MAX_LIMIT = 200
MAX_RESULTS = 10_000
OPERATORS = frozenset({"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
                       "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"})
TEXT_FIELDS = ("dealname", "name", "email", "firstname", "lastname", "domain", "hs_task_subject", "hs_sku",
               "hs_note_body")
_TOKEN = re.compile(r"[^\W_]+|[@.]", re.UNICODE)


class SearchError(ValueError):
    """A request HubSpot answers with 400 VALIDATION_ERROR."""


@dataclass(frozen=True, slots=True)
class Sort:
    prop: str
    descending: bool


FullProps = Callable[[Row, int, Props], dict[str, str | None]]


def parse_request(body: Any) -> tuple[list[list[dict[str, Any]]], list[Sort], int, int, str | None]:
    if not isinstance(body, dict):
        raise SearchError("Invalid input JSON: expected an object")
    groups = body.get("filterGroups") or []
    if len(groups) > MAX_GROUPS:
        raise SearchError(f"Too many filter groups ({len(groups)}); the limit is {MAX_GROUPS}")
    filters = [list(g.get("filters") or []) for g in groups]
    if any(len(f) > MAX_FILTERS_PER_GROUP for f in filters):
        raise SearchError(f"Too many filters in a group; the limit is {MAX_FILTERS_PER_GROUP}")
    if sum(len(f) for f in filters) > MAX_FILTERS:
        raise SearchError(f"Too many filters; the limit is {MAX_FILTERS} across all groups")
    for group in filters:
        for flt in group:
            if flt.get("operator") not in OPERATORS or not flt.get("propertyName"):
                raise SearchError(f"Invalid filter: {flt.get('propertyName')!r} {flt.get('operator')!r}")
    sorts = []
    for item in body.get("sorts") or []:
        if isinstance(item, str):
            sorts.append(Sort(item.lstrip("-"), item.startswith("-")))
        elif isinstance(item, dict) and item.get("propertyName"):
            sorts.append(Sort(item["propertyName"], str(item.get("direction", "ASCENDING")).upper() == "DESCENDING"))
        else:
            raise SearchError("Invalid sort")
    limit = int(body.get("limit") or 10)
    if limit < 1 or limit > MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
    try:
        after = int(body.get("after") or 0)
    except (TypeError, ValueError):
        raise SearchError("after must be an offset") from None
    if after + limit > MAX_RESULTS:
        raise SearchError(f"Search results are limited to {MAX_RESULTS} total results; "
                          f"requested results {after} to {after + limit}")
    query = body.get("query")
    return filters, sorts, limit, after, (str(query) if query else None)


class Matcher:
    def __init__(self, object_name: str) -> None:
        self.props = PROPERTIES[object_name]

    def _kind(self, name: str) -> str:
        prop = self.props.get(name)
        return prop.type if prop else "string"

    def _coerce(self, kind: str, value: Any) -> Any:
        if value is None:
            return None
        text = str(value)
        if kind == "number":
            try:
                return Decimal(text)
            except InvalidOperation:
                return None
        if kind in ("datetime", "date"):
            try:
                return parse_ms(text)
            except ValueError:
                return None
        return text.lower()

    def matches(self, props: dict[str, str | None], flt: dict[str, Any]) -> bool:
        name, op = flt["propertyName"], flt["operator"]
        raw = props.get(name)
        if op == "HAS_PROPERTY":
            return raw not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return raw in (None, "")
        kind = self._kind(name)
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = str(flt.get("value", "")).lower()
            tokens = _TOKEN.findall((raw or "").lower())
            found = any(fnmatchcase(t, pattern) for t in tokens) or (
                "*" in pattern and fnmatchcase((raw or "").lower(), pattern))
            return found if op == "CONTAINS_TOKEN" else not found
        value = self._coerce(kind, raw)
        if op in ("IN", "NOT_IN"):
            wanted = {self._coerce(kind, v) for v in flt.get("values") or []}
            return (value in wanted) if op == "IN" else (value not in wanted)
        if op == "NEQ":
            return value != self._coerce(kind, flt.get("value"))
        if value is None:
            return False
        if op == "BETWEEN":
            lo, hi = self._coerce(kind, flt.get("value")), self._coerce(kind, flt.get("highValue"))
            return lo is not None and hi is not None and lo <= value <= hi
        target = self._coerce(kind, flt.get("value"))
        if target is None:
            return False
        try:
            if op == "EQ":
                return bool(value == target)
            if op == "LT":
                return bool(value < target)
            if op == "LTE":
                return bool(value <= target)
            if op == "GT":
                return bool(value > target)
            return bool(value >= target)  # GTE
        except TypeError:
            return False

    def sort_key(self, props: dict[str, str | None], sort: Sort) -> tuple[int, Any]:
        value = self._coerce(self._kind(sort.prop), props.get(sort.prop))
        return (1, value) if value is not None else (0, 0)  # nulls first ascending


def _modified_range(group: list[dict[str, Any]]) -> tuple[int | None, int | None, list[dict[str, Any]]] | None:
    """Split a group into an index range on the modified property and the remaining filters."""
    lo: int | None = None
    hi: int | None = None
    rest = []
    used = False
    for flt in group:
        if flt["propertyName"] in MODIFIED_PROPERTIES and flt["operator"] in ("GTE", "GT", "LTE", "LT", "EQ",
                                                                                "BETWEEN"):
            try:
                value = parse_ms(str(flt.get("value")))
                high = parse_ms(str(flt.get("highValue"))) if flt["operator"] == "BETWEEN" else value
            except ValueError:
                return None
            op = flt["operator"]
            if op in ("GTE", "GT", "EQ", "BETWEEN"):
                start = value + 1 if op == "GT" else value
                lo = start if lo is None else max(lo, start)
            if op in ("LTE", "LT", "EQ", "BETWEEN"):
                stop = high - 1 if op == "LT" else high
                hi = stop if hi is None else min(hi, stop)
            used = True
        else:
            rest.append(flt)
    return (lo, hi, rest) if used else None


def run_search(table: ObjectTable, object_name: str, body: Any, full_props: FullProps
               ) -> tuple[int, list[tuple[Row, int, Props]]]:
    """Return (total, the requested page as (row, modified ms, props) versions)."""
    groups, sorts, limit, after, query = parse_request(body)
    table.settle()
    matcher = Matcher(object_name)
    by_modified = bool(sorts) and sorts[0].prop in MODIFIED_PROPERTIES and len(sorts) == 1
    by_id_asc = (not sorts) or (len(sorts) == 1 and sorts[0].prop == "hs_object_id" and not sorts[0].descending)
    fast = _modified_range(groups[0]) if len(groups) == 1 and query is None else None

    candidates: Iterable[int]
    if fast is not None:
        lo, hi, rest = fast
        descending = by_modified and sorts[0].descending
        if not rest and (by_modified or not sorts):
            total = table.index_count(lo, hi)
            page = []
            for n, record_id in enumerate(table.index_range(lo, hi, descending=descending)):
                if n >= after + limit:
                    break
                hit = table.rows.get(record_id) if n >= after else None
                if hit is not None:
                    seen = table.searchable(hit)
                    if seen is not None:
                        page.append((hit, seen[0], seen[1]))
            return total, page
        candidates = table.index_range(lo, hi, descending=descending)
        in_order = by_modified or not sorts
        groups = [rest]
    else:
        candidates = table.scan_ids()
        in_order = by_id_asc

    matched: list[tuple[Row, int, Props, dict[str, str | None]]] = []
    total = 0
    for record_id in candidates:
        row = table.rows.get(record_id)
        if row is None:
            continue
        version = table.searchable(row)
        if version is None:
            continue
        props = full_props(row, version[0], version[1])
        if groups and not any(all(matcher.matches(props, f) for f in g) for g in groups):
            continue
        if query is not None and not _text_match(props, query):
            continue
        if in_order:
            if after <= total < after + limit:
                matched.append((row, version[0], version[1], props))
        else:
            matched.append((row, version[0], version[1], props))
        total += 1
    if not in_order:
        for sort in reversed(sorts):
            matched.sort(key=lambda m, s=sort: matcher.sort_key(m[3], s), reverse=sort.descending)  # type: ignore[misc]
        matched = matched[after:after + limit]
    return total, [(m[0], m[1], m[2]) for m in matched]


def _text_match(props: dict[str, str | None], query: str) -> bool:
    needle = query.lower()
    return any(needle in (props.get(f) or "").lower() for f in TEXT_FIELDS)
