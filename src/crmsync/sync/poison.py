"""Poison records: a record the store cannot take never blocks its page.

A page is written inside a savepoint of the page's transaction. When the database (or the
parameter checks before it) refuses any record, the savepoint is rolled back and the page is
written again one record per savepoint: the records that go in are kept, each refused one comes
back with its reason and field, for the engine to quarantine in the same transaction as the rest
of the page and the cursor. The common case costs one savepoint per page.

Only errors about the *data* are record-level (``ModelError``, value/type errors, and the
database's data and integrity errors). A lost connection, a locked or full database, or a schema
problem are not a record's fault: they propagate and the page is retried later as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import DataError, IntegrityError, StatementError

from crmsync.errors import describe_error
from crmsync.model import ModelError, Record, field_of
from crmsync.store import Transaction


@dataclass(slots=True)
class Refused:
    record: Record
    reason: str
    field: str | None


def is_record_error(exc: BaseException) -> bool:
    """True when ``exc`` is about a value of the record being written (see module docstring)."""
    if isinstance(exc, DataError | IntegrityError):
        return not getattr(exc, "connection_invalidated", False)
    if isinstance(exc, StatementError):  # a driver-side refusal before the server saw it (NUL, overflow)
        return isinstance(exc.orig, ValueError | TypeError | OverflowError) and not isinstance(
            exc.orig, UnicodeDecodeError)
    return isinstance(exc, ModelError | ValueError | TypeError | OverflowError)


def _db_field(exc: BaseException) -> str | None:
    """The column PostgreSQL names in its error, when it names one (psycopg's diagnostics)."""
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    return getattr(diag, "column_name", None) if diag is not None else None


def write_isolating(tx: Transaction, records: Sequence[Record],
                    write: Callable[[Transaction, Sequence[Record]], None]) -> list[Refused]:
    """``write(tx, records)`` in a savepoint; on a record-level error, record by record."""
    if not records:
        return []
    try:
        with tx.conn.begin_nested():
            write(tx, records)
        return []
    except Exception as exc:  # noqa: BLE001 - classified right below
        if not is_record_error(exc):
            raise
    refused: list[Refused] = []
    for record in records:
        try:
            with tx.conn.begin_nested():
                write(tx, [record])
        except Exception as exc:  # noqa: BLE001 - classified right below
            if not is_record_error(exc):
                raise
            refused.append(Refused(record, describe_error(exc), field_of(exc) or _db_field(exc)))
    return refused
