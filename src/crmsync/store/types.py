"""Column types shared by every table, identical in meaning on SQLite and PostgreSQL.

* ``UTCDateTime``: ``timestamptz`` on PostgreSQL; on SQLite a fixed-width ISO 8601 text
  (``2024-05-01T12:00:00.000000+00:00``) so that text order is time order and values come back
  timezone-aware UTC. Naive datetimes are refused (``ModelError``), never guessed.
* ``ExactDecimal``: unconstrained ``NUMERIC`` on PostgreSQL (exact, no rounding, scale kept); on
  SQLite the decimal's text form (SQLite's own NUMERIC would go through a float and lose digits).
* ``JSONDoc``: ``JSONB`` on PostgreSQL, JSON text on SQLite. Serialised by :func:`json_dumps`:
  ``Decimal`` becomes its string (``"12.50"``), ``datetime``/``date`` become ISO 8601 strings,
  non-string dict keys become strings. Those values therefore come back as *strings* from a
  JSON column (e.g. inside ``Record.extra``); everything JSON-native round-trips unchanged.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from crmsync.model import UTC, ModelError

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_dumps(value: Any) -> str:
    """Serialise to JSON text (Decimal -> string, datetime/date -> ISO 8601 string)."""
    try:  # string keys, the usual case: orjson is about twice as fast without OPT_NON_STR_KEYS
        return orjson.dumps(value, default=_json_default).decode()
    except TypeError:  # a non-string key (or a value nothing serialises: raised again below)
        return orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS).decode()


def json_loads(text: str | bytes | int | float) -> Any:
    # SQLite gives columns declared JSON numeric affinity: a top-level JSON number (kv_state values)
    # comes back already converted to int/float. Documents (objects, arrays) are text.
    if isinstance(text, int | float):
        return text
    return orjson.loads(text)


def _naive(value: dt.datetime) -> ModelError:
    return ModelError(f"naive datetime {value.isoformat()} (expected timezone-aware)")


def aware_param(value: Any) -> dt.datetime:
    """Validate a timestamp parameter: a timezone-aware datetime (naive ones are refused)."""
    if not isinstance(value, dt.datetime):
        raise ModelError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _naive(value)
    return value


def format_utc(value: Any) -> str:
    """Fixed-width ISO text of an aware datetime in UTC (the SQLite storage form)."""
    if type(value) is dt.datetime and value.tzinfo is UTC:  # the common case, fast
        # orjson writes the same ISO text as isoformat() in a fraction of its time (called for
        # every timestamp of every stored row); it leaves out zero microseconds, put back here
        text = orjson.dumps(value).decode()
        return text[1:-7] + ".000000+00:00" if len(text) == 27 else text[1:-1]
    return aware_param(value).astimezone(UTC).isoformat(timespec="microseconds")


def decimal_param(value: Any) -> Decimal:
    """Validate a decimal parameter (ints are accepted and made Decimal; floats are refused)."""
    if type(value) is not Decimal:
        if isinstance(value, Decimal):
            pass
        elif isinstance(value, int) and not isinstance(value, bool):
            value = Decimal(value)
        else:
            raise ModelError(f"expected a Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise ModelError(f"{value} is not a finite number")
    return value


def decimal_text(value: Any) -> str:
    """A decimal's exact text form (the SQLite storage form)."""
    return str(decimal_param(value))


def date_param(value: Any) -> dt.date:
    if type(value) is dt.date:
        return value
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ModelError(f"expected a date, got {type(value).__name__}")
    return value


def date_text(value: Any) -> str:
    return date_param(value).isoformat()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on both dialects (see module docstring)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return format_utc(value)
        return aware_param(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            parsed = dt.datetime.fromisoformat(value)
            if parsed.tzinfo is None:  # written by something else; stored values are UTC
                return parsed.replace(tzinfo=UTC)
            return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value if value.tzinfo is UTC else value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """Decimals without loss on both dialects (see module docstring)."""

    impl = Numeric(asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return decimal_text(value)
        return decimal_param(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(str(value))


def JSONDoc() -> TypeEngine[Any]:  # noqa: N802 - reads like a type in table definitions
    """JSON on SQLite, JSONB on PostgreSQL."""
    return JSON().with_variant(JSONB(), "postgresql")
