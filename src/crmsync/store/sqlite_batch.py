"""SQLite writes of many rows in one statement: ``INSERT .. VALUES (..), (..), ..``.

sqlite3 lets go of the GIL around each ``sqlite3_step``, and ``executemany`` steps once per row.
While another thread runs Python (the connector mapping the next page), every row then waits up to
the interpreter's switch interval (5 ms) to get the GIL back. ``bench/bench_sqlite_gil.py
--rows 20000``: 1.56 s beside a busy thread against 0.12 s alone; as one statement a page, 0.50 s
(on a loaded machine; on an idle one, 100,000 rows took minutes one row a step). One
statement of many rows is one step, in C, while the other threads run. Its parameters are bound in
C too; only the flat parameter list is built in Python.

A statement takes at most ``SQLITE_LIMIT_VARIABLE_NUMBER`` parameters (32,766 by default since
SQLite 3.32), so a batch is cut into statements of ``rows_per_statement`` rows.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

#: SQLite's own default; the build's limit is read when the sqlite3 module says it (Python 3.11+)
_DEFAULT_VARIABLE_LIMIT = 32_766


@functools.cache
def _variable_limit() -> int:
    probe = sqlite3.connect(":memory:")
    try:
        return int(probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    except AttributeError:  # Python before 3.11
        return _DEFAULT_VARIABLE_LIMIT
    finally:
        probe.close()


def rows_per_statement(width: int) -> int:
    return max(1, _variable_limit() // width)


@functools.lru_cache(maxsize=64)
def multi_row_sql(single_row_sql: str, width: int, rows: int) -> str:
    """``single_row_sql`` (``INSERT .. VALUES (?, ..) ..``) with ``rows`` value tuples."""
    one = "(" + ", ".join("?" * width) + ")"
    values = "VALUES " + one
    if single_row_sql.count(values) != 1:
        raise RuntimeError(f"cannot find {values!r} once in {single_row_sql!r}")
    return single_row_sql.replace(values, "VALUES " + ", ".join([one] * rows))


def statements(single_row_sql: str, params: Sequence[tuple[Any, ...]]) -> Iterator[tuple[str, list[Any]]]:
    """(SQL, flat parameters) for ``params`` (tuples of one width), as few statements as the
    variable limit allows."""
    if not params:
        return
    width = len(params[0])
    step = rows_per_statement(width)
    for start in range(0, len(params), step):
        chunk = params[start : start + step]
        yield multi_row_sql(single_row_sql, width, len(chunk)), list(chain.from_iterable(chunk))


def execute_rows(conn: Any, single_row_sql: str, params: Sequence[tuple[Any, ...]]) -> int:
    """Run ``single_row_sql`` for every tuple of ``params`` on SQLAlchemy connection ``conn``;
    returns the rows the statements changed."""
    changed = 0
    for sql, flat in statements(single_row_sql, params):
        changed += max(conn.exec_driver_sql(sql, tuple(flat)).rowcount, 0)
    return changed
