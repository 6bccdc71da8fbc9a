"""What the Salesforce reader, pusher, notes and history use of their connector.

They take these protocols instead of ``SalesforceConnector`` / ``Pusher``, so ``connector``
imports ``pull``, ``push`` and ``history`` (and ``push`` imports ``notes``) and none imports back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from crmsync.connectors.base import PushResult, Usage
from crmsync.connectors.cursor import StampRule
from crmsync.connectors.salesforce.transport import SalesforceSession
from crmsync.settings import ConnectionSettings

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

    from crmsync.connectors.salesforce.rest import RestReads


class SalesforceHost(Protocol):
    conn: ConnectionSettings
    name: str
    usage: Usage
    session: SalesforceSession
    rest: RestReads

    @property
    def sf(self) -> Salesforce: ...  # simple-salesforce, loaded on first use (pushes)

    page_size: int
    stamp_rule: StampRule
    bulk_page_size: int
    bulk_poll_s: float
    bulk_timeout_s: float
    track_deletes: bool

    @property
    def call(self) -> Callable[..., Any]: ...  # call(action) -> action()

    @property
    def check_budget(self) -> Callable[..., None]: ...  # check_budget(*, push=False)

    @property
    def dumps(self) -> Callable[[Any], bytes]: ...

    @property
    def query(self) -> Callable[..., list[dict[str, Any]]]: ...  # query(soql, *, include_deleted)

    @property
    def query_timed(self) -> Callable[..., tuple[list[dict[str, Any]], float | None]]: ...

    @property
    def extra_fields(self) -> Callable[[str], list[str]]: ...

    @property
    def sobject_deleted(self) -> Callable[[str, dt.datetime, dt.datetime], dict[str, Any]]: ...


class NotesHost(Protocol):
    """What ``notes`` uses of the pusher."""

    @property
    def c(self) -> SalesforceHost: ...

    @property
    def collection(self) -> Callable[[str, str, dict[str, Any]], Any]: ...

    @property
    def results(self) -> Callable[..., dict[int, PushResult]]: ...  # results(batch, indexes, answer, *, created)

