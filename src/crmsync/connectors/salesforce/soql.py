"""Build SOQL with escaping only: values become literals, names are checked identifiers.

``soql("SELECT {:fields} FROM {:ident} WHERE Name = {} AND SystemModstamp > {}", fields, "Opportunity",
name, ts)`` quotes strings per Salesforce's documented escapes, writes datetimes as UTC literals with
an explicit offset, dates as ``YYYY-MM-DD``, lists as ``(a,b)``. ``{:like}`` also escapes ``%``/``_``.
Nothing a caller passes is ever spliced in as text.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


class SoqlBuildError(ValueError):
    """A value that cannot become a SOQL literal (naive datetime, float money, empty IN list...)."""


def quote(value: str, *, like: bool = False) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif like and ch in "%_":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def datetime_literal(value: dt.datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise SoqlBuildError("naive datetime: SOQL datetimes need a time zone")
    value = value.astimezone(dt.UTC)
    text = f"{value:%Y-%m-%dT%H:%M:%S}"
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "+00:00"


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise SoqlBuildError("not a finite number")
        return format(value, "f")
    if isinstance(value, float):
        raise SoqlBuildError("floats are not SOQL literals here: pass Decimal or int")
    if isinstance(value, dt.datetime):
        return datetime_literal(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        if not items:
            raise SoqlBuildError("an IN list needs at least one value")
        return "(" + ",".join(literal(v) for v in items) + ")"
    raise SoqlBuildError(f"cannot use a {type(value).__name__} as a SOQL literal")


def ident(name: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise SoqlBuildError(f"not a SOQL identifier: {name!r}")
    return name


def field_list(names: Iterable[str]) -> str:
    names = list(dict.fromkeys(names))
    if not names:
        raise SoqlBuildError("a SELECT needs at least one field")
    return ", ".join(ident(n) for n in names)


class _Formatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "ident":
            return ident(value)
        if format_spec == "fields":
            return field_list(value)
        if format_spec == "like":
            if not isinstance(value, str):
                raise SoqlBuildError("LIKE needs a string")
            return quote(value, like=True)
        if format_spec:
            raise SoqlBuildError(f"unknown SOQL placeholder format {format_spec!r}")
        return literal(value)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion:
            raise SoqlBuildError("conversions (!r, !s) are not allowed in SOQL templates")
        return value


_FORMATTER = _Formatter()


def soql(template: str, *args: Any, **kwargs: Any) -> str:
    """Fill ``{}`` placeholders with escaped literals (``{:ident}``, ``{:fields}``, ``{:like}``)."""
    return _FORMATTER.vformat(template, args, kwargs)
