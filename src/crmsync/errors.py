"""Error texts that are safe to log, store in the run log or show: bounded, without customer data.

Exceptions carry more than a person should see in a log: SQLAlchemy appends the statement and
its parameters (record values) to its messages, database drivers quote the refused value, and
``ModelError`` messages quote the value that did not convert. ``describe_error`` keeps the kind
of error and what went wrong, drops SQL and parameters, replaces quoted values with ``'…'`` and
cuts the text at ``MAX_ERROR_CHARS``.
"""

from __future__ import annotations

import re

MAX_ERROR_CHARS = 500
_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.DOTALL)
_SPACE = re.compile(r"\s+")


def redact_values(text: str) -> str:
    """Quoted literals (how Python reprs and database messages show a value) become ``'…'``."""
    return _QUOTED.sub("'…'", text)


def bound(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


_SQL_DETAIL = re.compile(r"\[(SQL|parameters): .*?(?=\n\[(SQL|parameters): |\n\(Background on|\Z)", re.DOTALL)


def strip_sql(text: str) -> str:
    """SQLAlchemy's ``[SQL: ...]`` and ``[parameters: ...]`` sections dropped from ``text``."""
    return _SQL_DETAIL.sub("", text) if "[SQL: " in text or "[parameters: " in text else text


def safe_text(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error text already formatted elsewhere, made safe to store: no SQL, bounded. (Values
    quoted by the message itself are the formatter's business: use ``describe_error`` on the
    exception where it is caught.)"""
    return bound(strip_sql(text), limit)


def describe_error(exc: BaseException, *, limit: int = MAX_ERROR_CHARS, with_type: bool = True) -> str:
    """``Type: message``, safe for logs and the run log (see module docstring)."""
    from sqlalchemy.exc import StatementError

    kind = type(exc).__name__
    if isinstance(exc, StatementError):
        orig = exc.orig if exc.orig is not None else exc
        # the driver's own first line; SQLAlchemy's "[SQL: ...] [parameters: ...]" is left out
        message = str(orig).split("\n", 1)[0] if orig is not exc else str(exc).split("\n", 1)[0].split("[SQL:")[0]
        kind = f"{kind} ({type(orig).__name__})" if orig is not exc else kind
        message = redact_values(message)
    else:
        message = redact_values(str(exc))
    text = f"{kind}: {message}" if with_type else message
    return bound(text, limit)
