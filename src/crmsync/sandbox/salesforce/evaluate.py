"""Turn a parsed SOQL query into predicates, sort orders and index bounds over native rows.

Rows hold wire-form values: datetimes as ``2024-01-01T00:00:00.000+0000`` strings (fixed width,
always UTC, so they compare as text), dates as ``YYYY-MM-DD``, numbers as ``Decimal``, booleans
as ``bool``. Literals are checked against the field's type the way Salesforce does.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from crmsync.sandbox.salesforce.schema import ID_TYPES, NUMBER_TYPES, SObjectType
from crmsync.sandbox.salesforce.soql import (
    And,
    Comparison,
    Condition,
    Literal,
    Not,
    Or,
    OrderItem,
    SoqlError,
    decode_string,
)

Row = dict[str, Any]
Predicate = Callable[[Row], bool]

_TYPE_NAMES = {"datetime": "dateTime", "date": "date", "boolean": "boolean", "string": "string",
               "id": "id", "ref": "reference"}


def sf_datetime(value: dt.datetime) -> str:
    """``2024-01-01T00:00:00.000+0000``: Salesforce's fixed-width UTC form (sorts as text)."""
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "+0000"


def resolve(sobj: SObjectType, name: str) -> str:
    resolved = sobj.resolve(name)
    if resolved is None:
        raise SoqlError(f"No such column '{name}' on entity '{sobj.name}'. If you are attempting to use a "
                        "custom field, be sure to append the '__c' after the custom field name.", "INVALID_FIELD")
    return resolved


def coerce(sobj: SObjectType, field: str, lit: Literal) -> Any:
    ftype = sobj.fields[field]
    if lit.kind == "NULL":
        return None
    ok = {
        "datetime": lit.kind == "DATETIME", "date": lit.kind == "DATE", "boolean": lit.kind == "BOOLEAN",
    }.get(ftype, lit.kind == "NUMBER" if ftype in NUMBER_TYPES else lit.kind == "STRING")
    if not ok:
        type_name = _TYPE_NAMES.get(ftype, "number" if ftype in NUMBER_TYPES else ftype)
        quoted = "should be enclosed in quotes" if lit.kind != "STRING" and ftype in ("string", "id", "ref") \
            else "should not be enclosed in quotes"
        raise SoqlError(f"value of filter criterion for field '{field}' must be of type {type_name} and "
                        f"{quoted}", "INVALID_QUERY_FILTER_OPERATOR")
    if lit.kind == "DATETIME":
        return sf_datetime(lit.value)
    if lit.kind == "DATE":
        return lit.value.isoformat()
    return lit.value


def _fold(sobj: SObjectType, field: str) -> bool:
    """Text comparisons are case-insensitive in SOQL; ids compare exactly."""
    return sobj.fields[field] == "string"


def compile_condition(sobj: SObjectType, cond: Condition | None) -> Predicate:
    if cond is None:
        return lambda row: True
    if isinstance(cond, And):
        parts = [compile_condition(sobj, c) for c in cond.items]
        return lambda row: all(p(row) for p in parts)
    if isinstance(cond, Or):
        parts = [compile_condition(sobj, c) for c in cond.items]
        return lambda row: any(p(row) for p in parts)
    if isinstance(cond, Not):
        inner = compile_condition(sobj, cond.item)
        return lambda row: not inner(row)
    return _compile_comparison(sobj, cond)


def _compile_comparison(sobj: SObjectType, cmp: Comparison) -> Predicate:
    field = resolve(sobj, cmp.field)
    fold = _fold(sobj, field)
    op = cmp.op
    if op == "LIKE":
        if sobj.fields[field] not in ("string", "id", "ref"):
            raise SoqlError(f"invalid operator on field '{field}': LIKE needs a text field",
                            "INVALID_QUERY_FILTER_OPERATOR")
        assert isinstance(cmp.value, Literal)
        pattern = _like_regex(cmp.value.value)

        def like(row: Row) -> bool:
            value = row.get(field)
            return value is not None and pattern.fullmatch(value) is not None
        return like
    if op in ("IN", "NOT IN"):
        assert isinstance(cmp.value, tuple)
        values = {_norm(coerce(sobj, field, lit), fold) for lit in cmp.value}
        if op == "IN":
            return lambda row: _norm(row.get(field), fold) in values
        return lambda row: _norm(row.get(field), fold) not in values
    assert isinstance(cmp.value, Literal)
    target = _norm(coerce(sobj, field, cmp.value), fold)
    if op == "=":
        return lambda row: _norm(row.get(field), fold) == target
    if op == "!=":
        return lambda row: _norm(row.get(field), fold) != target
    if target is None:
        raise SoqlError(f"invalid operator on field '{field}': {op} null", "INVALID_QUERY_FILTER_OPERATOR")
    if sobj.fields[field] == "boolean":
        raise SoqlError(f"invalid operator on field '{field}': {op} on a boolean", "INVALID_QUERY_FILTER_OPERATOR")
    compare: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    }[op]

    def ordered(row: Row) -> bool:
        value = _norm(row.get(field), fold)
        return value is not None and compare(value, target)
    return ordered


def _norm(value: Any, fold: bool) -> Any:
    return value.casefold() if fold and isinstance(value, str) else value


def _like_regex(raw: str) -> re.Pattern[str]:
    parts = []
    for ch, escaped in decode_string(raw, like=True):
        if not escaped and ch == "%":
            parts.append(".*")
        elif not escaped and ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def sort_rows(sobj: SObjectType, rows: list[Row], order: tuple[OrderItem, ...]) -> list[Row]:
    """Stable multi-key sort with NULLS FIRST/LAST, text case-insensitive (as Salesforce sorts)."""
    for item in reversed(order):
        field = resolve(sobj, item.field)
        fold = sobj.fields[field] == "string"
        present = [r for r in rows if r.get(field) is not None]
        missing = [r for r in rows if r.get(field) is None]
        present.sort(key=_sort_key(field, fold), reverse=item.descending)
        rows = missing + present if item.nulls_go_first else present + missing
    return rows


def _sort_key(field: str, fold: bool) -> Callable[[Row], Any]:
    return lambda row: _norm(row[field], fold)


def lower_bound(sobj: SObjectType, cond: Condition | None, field: str) -> str | None:
    """The smallest ``field`` value a row matching ``cond`` can have, if the condition implies one.

    Used to start an index scan part-way (``SystemModstamp > X OR (SystemModstamp = X AND Id > Y)``
    implies ``SystemModstamp >= X``). Returns an inclusive bound; None when nothing is implied.
    """
    if cond is None:
        return None
    if isinstance(cond, Comparison):
        if sobj.resolve(cond.field) != field or not isinstance(cond.value, Literal):
            return None
        if cond.op in (">", ">=", "="):
            value = coerce(sobj, field, cond.value)
            return value if isinstance(value, str) else None
        return None
    if isinstance(cond, And):
        bounds = [b for b in (lower_bound(sobj, c, field) for c in cond.items) if b is not None]
        return max(bounds) if bounds else None
    if isinstance(cond, Or):
        found: list[str] = []
        for c in cond.items:
            bound = lower_bound(sobj, c, field)
            if bound is None:
                return None
            found.append(bound)
        return min(found)
    return None


def is_id_type(sobj: SObjectType, field: str) -> bool:
    return sobj.fields.get(field) in ID_TYPES
