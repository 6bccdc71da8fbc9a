"""The connector contract: I/O only, no database, no scheduler, no sleeping policy.

``pull(object_name, cursor)`` yields ``Page``s; each carries the canonical records (or
quarantined raw records with their reason) and the cursor to save after it. The sync engine
writes a page's records and cursor in one transaction, so a crash resumes at the last page.
``push`` takes a batch of ``PushItem``s and answers per item.

Errors at the HTTP edge are classified once: ``RetriableError`` (429, 5xx, timeouts; carries
``retry_after``) vs ``FatalError`` (auth, validation). tenacity retries the transport only.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crmsync.connectors.mapping import ObjectMapping
from crmsync.model import Record


class ConnectorError(Exception):
    """Base of the error taxonomy. Messages never contain credentials or payloads."""


class RetriableError(ConnectorError):
    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RateLimitedError(RetriableError):
    """429 or a limit header at zero; ``retry_after`` seconds when the server said so."""


class FatalError(ConnectorError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(FatalError):
    pass


class BudgetExhausted(ConnectorError):
    """This connection's share of the daily quota is spent: stop cleanly, resume later."""


@dataclass(slots=True)
class Quarantined:
    """A source record that could not be mapped; kept with the reason, never dropped."""

    source_object: str
    source_id: str
    payload: dict[str, Any]
    reason: str


@dataclass(slots=True)
class Page:
    records: list[Record]
    cursor: dict[str, Any]
    quarantined: list[Quarantined] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)  # source ids known deleted (soft/hard)
    # When the CRM says an id in ``deleted_ids`` was deleted, on the CRM's clock (HubSpot
    # ``archivedAt``, Salesforce ``deletedDate``). The store stamps the deletion with it, so a later
    # restore (stamped by the same clock) wins over it; ids without one get the engine's clock.
    deleted_at: dict[str, dt.datetime] = field(default_factory=dict)
    api_calls: int = 0
    done: bool = False  # True on the last page of this pull
    # Children read whole per parent (Pipedrive deal products): the page holds every live child of
    # these parent ids, so a stored child of theirs that is not in the page was removed from its parent.
    complete_for_parents: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Usage:
    """API usage as the CRM reported it in its last answer."""

    calls: int = 0
    used: int | None = None
    limit: int | None = None
    remaining: int | None = None
    burst_remaining: int | None = None
    observed_at: dt.datetime | None = None
    clock_skew_s: float | None = None  # the server's Date header minus our clock (1 s resolution)
    # when the answer behind ``remaining`` arrived (monotonic clock), and the lock that keeps the
    # threads of one connector from interleaving the compare-and-set of ``note_quota``
    _remaining_arrived_at: float | None = field(default=None, init=False, repr=False, compare=False)
    _quota_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                        compare=False)

    def note_quota(self, limit: int | None, remaining: int | None, *, sent_at: float,
                   arrived_at: float) -> None:
        """Take a quota count (``limit`` and ``remaining``, as one answer reported them).

        Requests in flight together come back in any order, so an answer the server gave first can
        arrive last: taking its count would raise what is left and let a budget check allow a call
        the budget no longer has. So a count above the known one, under the same limit, from a
        request sent (``sent_at``, monotonic) before the known count arrived is stale and dropped.
        A request sent after it was answered after it too: a higher count there is a real reset
        (a new day, whatever the portal's midnight) and is taken. A limit change is always taken."""
        with self._quota_lock:
            if remaining is not None:
                known, known_at = self.remaining, self._remaining_arrived_at
                stale = (known is not None and known_at is not None and remaining > known
                         and limit == self.limit and sent_at < known_at)
                if not stale:
                    self.remaining, self._remaining_arrived_at = remaining, arrived_at
            if limit is not None:
                self.limit = limit
            if self.limit is not None and self.remaining is not None:
                self.used = self.limit - self.remaining

    def note_server_date(self, header: str | None) -> None:
        """Read an HTTP ``Date`` header (RFC 9110 IMF-fixdate) into ``clock_skew_s``."""
        if not header:
            return
        from email.utils import parsedate_to_datetime

        try:
            server = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            return
        # the header is truncated to the second: compare with our clock truncated the same way
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.clock_skew_s = (server - now).total_seconds()


@dataclass(slots=True)
class PushItem:
    object_name: str
    operation: str  # "update" | "create" | "upsert" | "delete"
    fields: dict[str, Any]
    source_id: str | None = None  # target id for update/delete
    idempotency_key: str | None = None
    based_on_modified_at: dt.datetime | None = None
    ref: int | None = None  # the outbox row id


@dataclass(slots=True)
class PushResult:
    ref: int | None
    ok: bool
    source_id: str | None = None
    created: bool = False
    conflict: bool = False  # the record changed since the decision: park, re-run rules
    error: str | None = None
    retriable: bool = False


class PushTarget(Protocol):
    """What the outbox drain uses of a system it writes to: CRMs, billing and the sales-engagement
    tools. ``mappings`` are its field tables by canonical object name (each connector's
    ``mapping`` module, with the connection's ``field_mappings`` applied): pushes translate back
    through them and ``writable_fields`` may name either side; empty for a system whose objects
    are read and written natively (Meteroid, the engagement tools)."""

    @property
    def usage(self) -> Usage: ...

    @property
    def mappings(self) -> Mapping[str, ObjectMapping]: ...

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        ...


class Connector(PushTarget, Protocol):
    """What the sync engine and the outbox drain use of a CRM or billing connector
    (``build_connector`` returns one)."""

    kind: str
    name: str

    def objects(self) -> Sequence[str]:
        """Object names this connector can pull (canonical names: deals, owners, stages, ...)."""
        ...

    def pull(self, object_name: str, cursor: Mapping[str, Any] | None, *,
             since: dt.datetime | None = None, until: dt.datetime | None = None,
             backfill: bool = False) -> Iterator[Page]:
        ...

    def count(self, object_name: str, *, since: dt.datetime | None = None,
              until: dt.datetime | None = None) -> int:
        """How many live records the source says exist (the completeness check)."""
        ...

    def list_ids(self, object_name: str) -> Iterator[list[str]]:
        """Every live source id, in chunks, for the hard-delete sweep."""
        ...

    def close(self) -> None:
        ...
