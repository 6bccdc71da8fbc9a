"""SQLite writes of many rows in one statement: ``INSERT .. VALUES (..), (..), ..``.

sqlite3 lets go of the GIL around each ``sqlite3_step``, and ``executemany`` steps once per row.
While another thread runs Python (the connector mapping the next page), every row then waits up to
the interpreter's switch interval (5 ms) to get the GIL back. ``bench/bench_sqlite_gil.py
--rows 20000``: 1.56 s beside a busy thread against 0.12 s alone; as one statement a page, 0.50 s
(on a loaded machine; on an idle one, 100,000 rows took minutes one row a step). One
statement of many rows is one step, in C, while the other threads run. Its parameters are bound in
C too; only the flat parameter list is built in Python.

A statement takes at most ``SQLITE_LIMIT_VARIABLE_NUMBER`` parameters (32,766 by default since
SQLite 3.32), and sqlite3 keeps every statement it prepared (128 a connection) with its compiled
program, which grows with its rows. So a batch is cut into statements of a few fixed sizes
(``_SIZES``, at most ``MAX_ROWS`` rows and within the limit), and one template is prepared in at
most a dozen sizes. Cut by the exact size of each rest, the stage events of 100,000 Salesforce
deals (pages of 5,000 deals, some 60,000 events each) prepared a new statement a page and grew the
process by about 18 MB a page, to 609 MB (``bench/bench_quota.py --deals 100000 --crm salesforce``).
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


#: rows of the largest statement
MAX_ROWS = 500
#: the sizes a batch is cut into: the CRMs' page sizes (Pipedrive 500, HubSpot 100, Salesforce
#: REST 200 and 2,000 = 4 x 500) whole, anything else down to powers of two
_SIZES = tuple(sorted({500, 200, 100, *(1 << k for k in range(9))}, reverse=True))


def rows_per_statement(width: int) -> int:
    return max(1, min(MAX_ROWS, _variable_limit() // width))


def _sizes(total: int, step: int) -> Iterator[int]:
    """``total`` rows as statements of the largest allowed sizes (``_SIZES`` up to ``step``)."""
    allowed = sorted({step, *(size for size in _SIZES if size <= step)}, reverse=True)
    rest = total
    while rest:
        size = next((s for s in allowed if s <= rest), 1)
        yield size
        rest -= size


@functools.lru_cache(maxsize=64)
def multi_row_sql(single_row_sql: str, width: int, rows: int) -> str:
    """``single_row_sql`` (``INSERT .. VALUES (?, ..) ..``) with ``rows`` value tuples."""
    one = "(" + ", ".join("?" * width) + ")"
    values = "VALUES " + one
    if single_row_sql.count(values) != 1:
        raise RuntimeError(f"cannot find {values!r} once in {single_row_sql!r}")
    return single_row_sql.replace(values, "VALUES " + ", ".join([one] * rows))


def statements(single_row_sql: str, params: Sequence[tuple[Any, ...]]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(SQL, flat parameters) for ``params`` (tuples of one width), in statements of ``_sizes``."""
    if not params:
        return
    width = len(params[0])
    start = 0
    for size in _sizes(len(params), rows_per_statement(width)):
        chunk = params[start : start + size]
        start += size
        yield multi_row_sql(single_row_sql, width, size), tuple(chain.from_iterable(chunk))


def execute_rows(conn: Any, single_row_sql: str, params: Sequence[tuple[Any, ...]]) -> int:
    """Run ``single_row_sql`` for every tuple of ``params`` on SQLAlchemy connection ``conn``;
    returns the rows the statements changed."""
    changed = 0
    for sql, flat in statements(single_row_sql, params):
        changed += max(conn.exec_driver_sql(sql, flat).rowcount, 0)
    return changed
