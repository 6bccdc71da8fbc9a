"""A backfill's pages written in shared transactions: one commit for a few pages, not one each.

Each page still goes in as a whole with its cursor (in a savepoint of the shared transaction), so
a commit always holds complete pages and the cursor of the last one; a crash or kill -9 loses at
most the pages since the last commit, and the next run reads them again from that cursor, exactly
as it re-reads one page today. What the grouping saves is the commit itself: a backfill's upserts
land all over the primary-key and stage-event indexes, and every commit writes each index page it
touched to the WAL again. Four pages a commit wrote 100,000 Pipedrive deals in 6.1 to 6.8 s of
wall (5.5 to 6.1 s CPU) against 7.2 to 7.9 s (6.0 to 6.8 s) for one
(``bench/bench_write.py --deals 100000 [--option commit_pages=1]``).

A group is committed when it holds ``max_pages`` pages, when it has been open ``max_seconds``
(the write lock is held meanwhile, so other writers wait at most that long), on the pull's last
page, and when the pull ends for any other reason. A page that raises is rolled back alone; the
pages before it are committed before the error goes on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import NestedTransaction

from crmsync.store import Store, Transaction


class PageGroup:
    def __init__(self, store: Store, *, max_pages: int, max_seconds: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._max_pages = max(1, max_pages)
        self._max_seconds = max_seconds
        self._monotonic = monotonic
        self._open: AbstractContextManager[Transaction] | None = None
        self._tx: Transaction | None = None
        self._pages = 0
        self._opened_at = 0.0

    @contextmanager
    def page(self, *, last: bool = False) -> Iterator[Transaction]:
        """The transaction to write one page in; committed on exit when the group is due or ``last``."""
        tx = self._begin()
        if self._max_pages == 1:  # a group of one is the page's own transaction: nothing to keep apart
            try:
                yield tx
            except BaseException:
                self._end(failed=True)
                raise
            self._end(failed=False)
            return
        savepoint = tx.conn.begin_nested()
        try:
            yield tx
        except BaseException:
            self._drop_page(savepoint)
            raise
        savepoint.commit()
        self._pages += 1
        if last or self._pages >= self._max_pages or self._monotonic() - self._opened_at >= self._max_seconds:
            self.commit()

    def commit(self) -> None:
        """Commit the pages written so far (nothing to do when no group is open)."""
        if self._open is not None:
            self._end(failed=False)

    def _begin(self) -> Transaction:
        if self._tx is None:
            opened = self._store.transaction()
            self._tx = opened.__enter__()
            self._open, self._pages, self._opened_at = opened, 0, self._monotonic()
        return self._tx

    def _drop_page(self, savepoint: NestedTransaction) -> None:
        """Roll back the failed page alone and commit the ones before it; when the database cannot
        (a lost connection), the whole group is rolled back and is read again next run."""
        try:
            savepoint.rollback()
        except Exception:  # noqa: BLE001 - the page's own error is the one raised
            self._end(failed=True)
            return
        with contextlib.suppress(Exception):  # as above; the group is closed either way (``_end``)
            self._end(failed=False)

    def _end(self, *, failed: bool) -> None:
        opened, self._open, self._tx = self._open, None, None
        if opened is None:
            return
        if failed:
            opened.__exit__(RuntimeError, RuntimeError("page failed"), None)
        else:
            opened.__exit__(None, None, None)
