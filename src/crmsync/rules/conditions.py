"""Compile structured condition trees into Python callables, once.

A condition is data, never code::

    all:
      - {field: amount, gte: 50000}
      - any:
          - {field: account.region, in: [NA, EMEA]}
          - not: {field: extra.industry, eq: Retail}
      - {field: last_activity_at, days_since: {gt: 30}}
      - {field: stage_id, changed: true}

``compile_condition`` validates every field path and operator against the canonical model and
returns ``pred(record, ctx) -> bool``. Errors raise ``ConditionError`` carrying the key path
inside the condition, so the loader can point at the file line.

Field paths: a canonical attribute (``amount``), ``extra.<name>`` (source fields no mapping
claimed), and for deals ``account.<attr>`` / ``stage.<attr>`` / ``owner.<attr>`` (looked up in the
context). ``days_since`` measures against ``ctx.now``; ``changed`` compares with
``ctx.previous[record.key]`` and is false when no previous version is known.
"""

from __future__ import annotations

import datetime as dt
import operator
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import Any

from crmsync.model import (
    Account,
    Deal,
    Lead,
    ModelError,
    ObjectType,
    Owner,
    Record,
    Stage,
    parse_date,
    parse_decimal,
    parse_timestamp,
)

Path = tuple[str | int, ...]


Predicate = Callable[[Any, Any], bool]
Getter = Callable[[Any, Any], Any]


class ConditionError(ValueError):
    """A condition that cannot be compiled; ``path`` is the key path inside the condition."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


COMPARISONS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "between", "contains", "exists")
OPERATORS = (*COMPARISONS, "days_since", "changed")
DAYS_OPERATORS = ("eq", "gt", "gte", "lt", "lte", "between")

RECORD_CLASSES: dict[ObjectType, type[Record]] = {
    ObjectType.DEAL: Deal,
    ObjectType.LEAD: Lead,
    ObjectType.ACCOUNT: Account,
    ObjectType.OWNER: Owner,
    ObjectType.STAGE: Stage,
}
# Related objects reachable from a record: prefix -> (object type, which kinds allow it)
RELATED: dict[str, tuple[ObjectType, frozenset[ObjectType]]] = {
    "account": (ObjectType.ACCOUNT, frozenset({ObjectType.DEAL, ObjectType.LEAD})),
    "stage": (ObjectType.STAGE, frozenset({ObjectType.DEAL})),
    "owner": (ObjectType.OWNER, frozenset({ObjectType.DEAL, ObjectType.LEAD})),
}

# value kinds
DECIMAL, INT, STR, BOOL, DATE, DATETIME, LIST, ANY = (
    "decimal",
    "int",
    "str",
    "bool",
    "date",
    "datetime",
    "list",
    "any",
)
_KIND_NAMES = {
    DECIMAL: "a number",
    INT: "an integer",
    STR: "a string",
    BOOL: "true or false",
    DATE: "a date (YYYY-MM-DD)",
    DATETIME: "a timestamp",
    LIST: "a list",
    ANY: "a value",
}


def _kind_of(annotation: Any) -> str:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _kind_of(inner[0]) if len(inner) == 1 else ANY
    if origin is list or annotation is list:
        return LIST
    if annotation is Decimal:
        return DECIMAL
    if annotation is bool:
        return BOOL
    if annotation is int:
        return INT
    if annotation is str:
        return STR
    if annotation is dt.datetime:
        return DATETIME
    if annotation is dt.date:
        return DATE
    return ANY


_FIELD_KINDS: dict[ObjectType, dict[str, str]] = {}


def field_kinds(object_type: ObjectType) -> dict[str, str]:
    """Canonical attribute name -> value kind for one object type (from the model's hints)."""
    kinds = _FIELD_KINDS.get(object_type)
    if kinds is None:
        cls = RECORD_CLASSES[object_type]
        hints = typing.get_type_hints(cls)
        kinds = {name: _kind_of(tp) for name, tp in hints.items() if name not in ("object_type", "extra")}
        _FIELD_KINDS[object_type] = kinds
    return kinds


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A resolved field path: how to read it and what kind of value it holds."""

    path: str
    kind: str
    plain: str | None  # canonical attribute read straight off the record (fast path)
    getter: Getter
    # for account./stage./owner.<attribute>: (context table getter, record link getter, attribute
    # getter), so compiled predicates can read the related value without an extra call layer
    related: tuple[Callable[[Any], Any], Callable[[Any], Any], Callable[[Any], Any]] | None = None

    def get(self, record: Any, ctx: Any) -> Any:
        return self.getter(record, ctx)


def resolve_field(object_type: ObjectType, path: str) -> FieldRef:
    """Resolve ``path`` for ``object_type`` or raise ``ValueError`` saying what exists."""
    if not isinstance(path, str) or not path:
        raise ValueError("field must be a non-empty string")
    head, _, rest = path.partition(".")
    if head == "extra":
        if not rest:
            raise ValueError("extra field needs a name: extra.<name>")
        name = rest

        def get_extra(record: Any, ctx: Any, _n: str = name) -> Any:
            return record.extra.get(_n)

        return FieldRef(path, ANY, None, get_extra)
    if head == "signals" and object_type in (ObjectType.DEAL, ObjectType.LEAD):
        return _signal_field(path, rest)
    if rest and head in RELATED:
        rel_type, allowed = RELATED[head]
        if object_type not in allowed:
            raise ValueError(f"{head}.* paths are not available on {object_type.value} records")
        inner = resolve_field(rel_type, rest)
        inner_get = inner.getter
        get_related: Getter
        if inner.plain is not None and head in ("account", "stage", "owner"):
            # hot path: one dict lookup in the context table, one C-level attribute read
            attr = attrgetter(inner.plain)
            table = {"account": "accounts", "stage": "stages", "owner": "owners"}[head]
            link = {"account": "account_id" if object_type == ObjectType.DEAL else "converted_account_id",
                    "stage": "stage_id", "owner": "owner_id"}[head]
            link_get = attrgetter(link)
            table_get = attrgetter(table)

            def get_related(record: Any, ctx: Any) -> Any:
                other = table_get(ctx).get((record.connection, link_get(record)))
                return None if other is None else attr(other)

        else:

            def get_related(record: Any, ctx: Any, _k: str = head) -> Any:
                other = ctx.related(_k, record)
                return None if other is None else inner_get(other, ctx)

        if inner.plain is not None:
            return FieldRef(path, inner.kind, None, get_related, (table_get, link_get, attr))
        return FieldRef(path, inner.kind, None, get_related)
    kinds = field_kinds(object_type)
    if rest or path not in kinds:
        known = ", ".join(sorted(kinds))
        raise ValueError(
            f"unknown field {path!r} on {object_type.value}; expected one of: {known}, "
            "extra.<name>" + (", account.<field>" if object_type in (ObjectType.DEAL, ObjectType.LEAD) else "")
        )
    plain_get = attrgetter(path)

    def get_plain(record: Any, ctx: Any) -> Any:
        return plain_get(record)

    return FieldRef(path, kinds[path], path, get_plain)


def _signal_field(path: str, name: str) -> FieldRef:
    """``signals.<name>``: a call or engagement signal of the record (``crmsync.rules.signals``),
    read from the context; missing (no signals known) reads as None."""
    from crmsync.rules.signals import SIGNAL_FIELDS, Signals

    if name not in SIGNAL_FIELDS:
        raise ValueError(f"unknown signal {name!r}; expected one of: {', '.join(SIGNAL_FIELDS)}")
    kind = _kind_of(typing.get_type_hints(Signals)[name])

    def get_signal(record: Any, ctx: Any, _n: str = name) -> Any:
        found = ctx.related("signals", record)
        return None if found is None else getattr(found, _n)

    return FieldRef(path, kind, None, get_signal)


def coerce_operand(kind: str, value: Any) -> Any:
    """Convert a rule operand to the field's value kind; ``ValueError`` says what was expected."""
    if value is None:
        raise ValueError("a value is required (use `exists: false` to test for a missing field)")
    try:
        result = _COERCE.get(kind, _coerce_any)(value)
    except (ValueError, ModelError, TypeError) as exc:
        raise ValueError(f"expected {_KIND_NAMES[kind]}, got {value!r}") from exc
    if result is None:
        raise ValueError(f"expected {_KIND_NAMES[kind]}, got {value!r}")
    return result


def _coerce_decimal(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError
    return parse_decimal(value)


def _coerce_int(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError
    return int(value) if isinstance(value, int) else parse_decimal(value)


def _coerce_str(value: Any) -> Any:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError
    return str(value)


def _coerce_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError
    return value


def _coerce_datetime(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str) and len(value) == 10:
        d = dt.date.fromisoformat(value)
        return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)
    return parse_timestamp(value)


def _coerce_list_item(value: Any) -> Any:
    if isinstance(value, list | dict):
        raise ValueError
    return value


def _coerce_any(value: Any) -> Any:
    return parse_decimal(value) if isinstance(value, float) else value


_COERCE: dict[str, Callable[[Any], Any]] = {
    DECIMAL: _coerce_decimal, INT: _coerce_int, STR: _coerce_str, BOOL: _coerce_bool, DATE: parse_date,
    DATETIME: _coerce_datetime, LIST: _coerce_list_item,
}


def _as_number(value: Any) -> Any:
    """Runtime coercion for untyped (extra.*) values compared with numbers."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return value
    try:
        return parse_decimal(value)
    except (ModelError, TypeError):
        return None


def _ordering_operand(kind: str, value: Any) -> tuple[Any, bool]:
    """Operand for gt/lt...; returns (operand, numeric_runtime_coercion_needed)."""
    if kind in (BOOL, LIST):
        raise ValueError(f"ordering comparisons need a number, date or string field, not {_KIND_NAMES[kind]}")
    operand = coerce_operand(kind, value)
    if kind == ANY:
        if isinstance(operand, int | Decimal) and not isinstance(operand, bool):
            return operand, True
        if isinstance(operand, dt.date):
            raise ValueError("compare dates on extra.* fields with days_since, or map the field")
    return operand, False


def _value_test(ref: FieldRef, op: str, raw: Any) -> Callable[[Any], bool]:
    """A test over the field value for one comparison operator (None-safe)."""
    build = _VALUE_TESTS.get(op)
    if build is None:
        raise ValueError(f"unknown operator {op!r}; expected one of: {', '.join(OPERATORS)}")
    return build(op, ref.kind, raw)


def _test_exists(op: str, kind: str, raw: Any) -> Callable[[Any], bool]:
    if not isinstance(raw, bool):
        raise ValueError(f"expected true or false, got {raw!r}")
    want = raw

    def t_exists(v: Any) -> bool:
        return (v is not None and v != "" and v != []) is want

    return t_exists


def _test_equal(op: str, kind: str, raw: Any) -> Callable[[Any], bool]:
    x = coerce_operand(kind, raw)
    if kind == ANY and isinstance(x, int | Decimal) and not isinstance(x, bool):
        if op == "eq":
            return lambda v: v is not None and _as_number(v) == x
        return lambda v: v is None or _as_number(v) != x
    if op == "eq":
        return lambda v: v == x
    return lambda v: v != x


def _test_in(op: str, kind: str, raw: Any) -> Callable[[Any], bool]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"expected a non-empty list, got {raw!r}")
    values = [coerce_operand(kind, item) for item in raw]
    try:
        options: frozenset[Any] | list[Any] = frozenset(values)
    except TypeError:
        options = values
    return lambda v: v is not None and v in options


def _test_order(op: str, kind: str, raw: Any) -> Callable[[Any], bool]:
    x, numeric = _ordering_operand(kind, raw)
    return _ordering(op, x, numeric)


def _test_between(op: str, kind: str, raw: Any) -> Callable[[Any], bool]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise ValueError(f"expected a list [low, high], got {raw!r}")
    lo, numeric = _ordering_operand(kind, raw[0])
    hi, _ = _ordering_operand(kind, raw[1])
    if lo > hi:
        raise ValueError(f"between: low {raw[0]!r} is greater than high {raw[1]!r}")
    if numeric:
        return lambda v: v is not None and (n := _as_number(v)) is not None and lo <= n <= hi
    return lambda v: v is not None and lo <= v <= hi


def _test_contains(op: str, kind: str, raw: Any) -> Callable[[Any], bool]:
    if kind == LIST:
        item = raw
        return lambda v: v is not None and item in v
    if kind not in (STR, ANY):
        raise ValueError(f"contains works on text or list fields, not {_KIND_NAMES[kind]}")
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {raw!r}")
    needle = raw.lower()

    def t_contains(v: Any) -> bool:
        if isinstance(v, str):
            return needle in v.lower()
        if isinstance(v, list):
            return raw in v
        return False

    return t_contains


_VALUE_TESTS: dict[str, Callable[[str, str, Any], Callable[[Any], bool]]] = {
    "exists": _test_exists, "eq": _test_equal, "ne": _test_equal, "in": _test_in, "gt": _test_order,
    "gte": _test_order, "lt": _test_order, "lte": _test_order, "between": _test_between,
    "contains": _test_contains,
}


def _ordering(op: str, x: Any, numeric: bool) -> Callable[[Any], bool]:
    if numeric:
        conv = _as_number
        if op == "gt":
            return lambda v: v is not None and (n := conv(v)) is not None and n > x
        if op == "gte":
            return lambda v: v is not None and (n := conv(v)) is not None and n >= x
        if op == "lt":
            return lambda v: v is not None and (n := conv(v)) is not None and n < x
        return lambda v: v is not None and (n := conv(v)) is not None and n <= x
    if op == "gt":
        return lambda v: v is not None and v > x
    if op == "gte":
        return lambda v: v is not None and v >= x
    if op == "lt":
        return lambda v: v is not None and v < x
    return lambda v: v is not None and v <= x


def _plain_leaf(name: str, op: str, test: Callable[[Any], bool], raw: Any, kind: str) -> Predicate | None:
    """Inlined predicates for the hottest cases (plain attribute, simple operator)."""
    g = attrgetter(name)
    if kind == ANY:
        return None
    if op == "eq":
        x = coerce_operand(kind, raw)
        return lambda r, c: g(r) == x
    if op == "ne":
        x = coerce_operand(kind, raw)
        return lambda r, c: g(r) != x
    if op == "gte" and kind in (DECIMAL, INT, DATE, DATETIME, STR):
        x = coerce_operand(kind, raw)
        return lambda r, c: (v := g(r)) is not None and v >= x
    if op == "gt" and kind in (DECIMAL, INT, DATE, DATETIME, STR):
        x = coerce_operand(kind, raw)
        return lambda r, c: (v := g(r)) is not None and v > x
    if op == "lt" and kind in (DECIMAL, INT, DATE, DATETIME, STR):
        x = coerce_operand(kind, raw)
        return lambda r, c: (v := g(r)) is not None and v < x
    if op == "lte" and kind in (DECIMAL, INT, DATE, DATETIME, STR):
        x = coerce_operand(kind, raw)
        return lambda r, c: (v := g(r)) is not None and v <= x
    if op == "exists" and kind not in (STR, LIST):
        if raw is True:
            return lambda r, c: g(r) is not None
        return lambda r, c: g(r) is None
    if op == "in":
        options = _in_options(kind, raw)
        return lambda r, c: (v := g(r)) is not None and v in options
    if op == "between" and kind in (DECIMAL, INT, DATE, DATETIME, STR):
        lo, _ = _ordering_operand(kind, raw[0])
        hi, _ = _ordering_operand(kind, raw[1])
        return lambda r, c: (v := g(r)) is not None and lo <= v <= hi
    return lambda r, c: test(g(r))


def _in_options(kind: str, raw: Any) -> frozenset[Any] | list[Any]:
    values = [coerce_operand(kind, item) for item in raw]
    try:
        return frozenset(values)
    except TypeError:
        return values


def _related_leaf(ref: FieldRef, op: str, raw: Any) -> Predicate | None:
    """Inlined predicates over ``account.`` / ``stage.`` / ``owner.`` attributes: the same tests as
    ``_value_test`` on the related value (None when the related record is unknown), one call deep."""
    if ref.related is None or ref.kind in (ANY, LIST):
        return None
    table_get, link_get, attr = ref.related
    kind = ref.kind
    if op == "eq":
        x = coerce_operand(kind, raw)
        return lambda r, c: (None if (o := table_get(c).get((r.connection, link_get(r)))) is None else attr(o)) == x
    if op == "ne":
        x = coerce_operand(kind, raw)
        return lambda r, c: (None if (o := table_get(c).get((r.connection, link_get(r)))) is None else attr(o)) != x
    if op == "in":
        options = _in_options(kind, raw)
        return lambda r, c: (
            (o := table_get(c).get((r.connection, link_get(r)))) is not None
            and (v := attr(o)) is not None
            and v in options
        )
    if op in ("gt", "gte", "lt", "lte") and kind != BOOL:
        x, _ = _ordering_operand(kind, raw)
        cmp = _ORDER_OPS[op]
        return lambda r, c: (
            (o := table_get(c).get((r.connection, link_get(r)))) is not None
            and (v := attr(o)) is not None
            and cmp(v, x)
        )
    return None


_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _days_test(ref: FieldRef, raw: Any, path: Path) -> Predicate:
    if ref.kind not in (DATE, DATETIME, ANY):
        raise ConditionError(path, f"days_since needs a date or timestamp field; {ref.path} is {_KIND_NAMES[ref.kind]}")
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ConditionError(
            path, f"days_since expects one comparison, e.g. {{gt: 30}} ({', '.join(DAYS_OPERATORS)}), got {raw!r}"
        )
    (op, operand), = raw.items()
    if op not in DAYS_OPERATORS:
        raise ConditionError((*path, str(op)), f"unknown days_since operator {op!r}; expected one of: {', '.join(DAYS_OPERATORS)}")
    try:
        days_test: Callable[[Any], bool]
        if op == "between":
            if not isinstance(operand, list) or len(operand) != 2:
                raise ValueError(f"expected a list [low, high], got {operand!r}")
            lo, hi = (_days_operand(o) for o in operand)
            days_test = lambda d: lo <= d <= hi  # noqa: E731
        elif op == "eq":
            x = _days_operand(operand)
            days_test = lambda d: d == x  # noqa: E731
        else:
            days_test = _ordering(op, _days_operand(operand), False)
    except ValueError as exc:
        raise ConditionError((*path, str(op)), str(exc)) from exc
    if ref.plain is not None and ref.kind in (DATE, DATETIME):
        return _plain_days(attrgetter(ref.plain), op, operand)
    get = ref.getter
    kind = ref.kind

    def pred(record: Any, ctx: Any) -> bool:
        v = get(record, ctx)
        if v is None:
            return False
        if kind == ANY:
            v = _runtime_moment(v)
            if v is None:
                return False
        if isinstance(v, dt.datetime):
            return days_test((ctx.now - v).total_seconds() / 86400.0)
        return days_test(float((ctx.today - v).days))

    return pred


def _plain_days(g: Callable[[Any], Any], op: str, operand: Any) -> Predicate:
    """``days_since`` over a date or timestamp attribute, computed as in the generic predicate."""
    datetime = dt.datetime
    if op == "between":
        lo, hi = (_days_operand(o) for o in operand)

        def between(r: Any, c: Any) -> bool:
            v = g(r)
            if v is None:
                return False
            d = (c.now - v).total_seconds() / 86400.0 if isinstance(v, datetime) else float((c.today - v).days)
            return lo <= d <= hi

        return between
    x = _days_operand(operand)
    cmp = _ORDER_OPS[op]

    def compare(r: Any, c: Any) -> bool:
        v = g(r)
        if v is None:
            return False
        if isinstance(v, datetime):
            return cmp((c.now - v).total_seconds() / 86400.0, x)
        return cmp(float((c.today - v).days), x)

    return compare


def _days_operand(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"expected a number of days, got {value!r}")
    return float(value)


def _runtime_moment(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        if isinstance(value, str) and len(value) == 10:
            return parse_date(value)
        return parse_timestamp(value)
    except ModelError:
        return None


def compile_condition(object_type: ObjectType, tree: Any, path: Path = ()) -> Predicate:
    """Compile one condition tree for records of ``object_type``."""
    if not isinstance(tree, Mapping):
        raise ConditionError(path, f"expected a condition mapping (all/any/not or field + operator), got {tree!r}")
    keys = set(tree)
    if keys & {"all", "any"}:
        if len(keys) != 1:
            raise ConditionError(path, f"all/any must be the only key in its mapping, found {sorted(map(str, keys))}")
        (combinator, items), = tree.items()
        return _compile_combinator(object_type, combinator, items, path)
    if keys == {"not"}:
        inner = compile_condition(object_type, tree["not"], (*path, "not"))
        return lambda r, c: not inner(r, c)
    return _compile_leaf(object_type, tree, keys, path)


def _compile_combinator(object_type: ObjectType, combinator: str, items: Any, path: Path) -> Predicate:
    """``all`` / ``any`` over a non-empty list of conditions (short-circuit, unrolled up to 3)."""
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise ConditionError((*path, combinator), "expected a non-empty list of conditions")
    parts = tuple(compile_condition(object_type, item, (*path, combinator, i)) for i, item in enumerate(items))
    if len(parts) == 1:
        return parts[0]
    return _all_of(parts) if combinator == "all" else _any_of(parts)


def _all_of(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        a, b = parts
        return lambda r, c: a(r, c) and b(r, c)
    if len(parts) == 3:
        a, b, d = parts
        return lambda r, c: a(r, c) and b(r, c) and d(r, c)

    def all_of(r: Any, c: Any) -> bool:
        return all(p(r, c) for p in parts)

    return all_of


def _any_of(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        a, b = parts
        return lambda r, c: a(r, c) or b(r, c)
    if len(parts) == 3:
        a, b, d = parts
        return lambda r, c: a(r, c) or b(r, c) or d(r, c)

    def any_of(r: Any, c: Any) -> bool:
        return any(p(r, c) for p in parts)

    return any_of


def _compile_leaf(object_type: ObjectType, tree: Mapping[str, Any], keys: set[Any], path: Path) -> Predicate:
    """``field`` + one operator."""
    if "field" not in keys:
        unknown = sorted(map(str, keys))
        raise ConditionError(
            (*path, unknown[0]) if unknown else path,
            f"expected all, any, not or field + operator; got key(s) {unknown}",
        )
    ops = keys - {"field"}
    if len(ops) != 1:
        raise ConditionError(
            path, f"expected exactly one operator beside field ({', '.join(OPERATORS)}), got {sorted(map(str, ops))}"
        )
    op = str(next(iter(ops)))
    raw = tree[op]
    try:
        ref = resolve_field(object_type, tree["field"])
    except ValueError as exc:
        raise ConditionError((*path, "field"), str(exc)) from exc
    if op not in OPERATORS:
        raise ConditionError((*path, op), f"unknown operator {op!r}; expected one of: {', '.join(OPERATORS)}")
    if op == "days_since":
        return _days_test(ref, raw, (*path, op))
    if op == "changed":
        return _changed_test(ref, raw, (*path, op))
    try:
        test = _value_test(ref, op, raw)
        if ref.plain is not None:
            fast = _plain_leaf(ref.plain, op, test, raw, ref.kind)
            if fast is not None:
                return fast
        related = _related_leaf(ref, op, raw)
        if related is not None:
            return related
    except ValueError as exc:
        raise ConditionError((*path, op), f"{ref.path}: {exc}") from exc
    head, _, name = ref.path.partition(".")
    if head == "extra":
        return _extra_leaf(name, op, raw, test)
    get = ref.getter
    return lambda r, c: test(get(r, c))


def _changed_test(ref: FieldRef, raw: Any, path: Path) -> Predicate:
    """``changed: true|false``: the field differs from the record's previous version."""
    if not isinstance(raw, bool):
        raise ConditionError(path, f"expected true or false, got {raw!r}")
    get = ref.getter
    want = raw

    def changed(record: Any, ctx: Any) -> bool:
        prev = ctx.previous_of(record)
        if prev is None:
            return False
        return (get(record, ctx) != get(prev, ctx)) is want

    return changed


def _extra_leaf(name: str, op: str, raw: Any, test: Callable[[Any], bool]) -> Predicate:
    """A leaf on ``extra.<name>`` (untyped source fields)."""
    if op in ("eq", "ne"):
        x = coerce_operand(ANY, raw)
        if not isinstance(x, int | Decimal) or isinstance(x, bool):
            if op == "eq":
                return lambda r, c: r.extra.get(name) == x
            return lambda r, c: r.extra.get(name) != x
    if op == "exists":
        if raw is True:
            return lambda r, c: (v := r.extra.get(name)) is not None and v != "" and v != []
        return lambda r, c: (v := r.extra.get(name)) is None or v == "" or v == []
    return lambda r, c: test(r.extra.get(name))


def condition_fields(tree: Any) -> list[str]:
    """Field paths a (valid) condition tree reads, in order, for explanations."""
    out: list[str] = []
    if isinstance(tree, Mapping):
        if "field" in tree and isinstance(tree["field"], str):
            out.append(tree["field"])
        for key in ("all", "any"):
            for item in tree.get(key, ()) or ():
                out.extend(condition_fields(item))
        if "not" in tree:
            out.extend(condition_fields(tree["not"]))
    return out
