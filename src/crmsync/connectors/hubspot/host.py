"""What the HubSpot pusher and history reader use of their connector (``HubSpotConnector``).

They take this protocol instead of the connector class, so ``connector`` imports ``push`` and
``history`` and neither imports it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from crmsync.connectors.base import Page
from crmsync.connectors.cursor import StampRule
from crmsync.connectors.hubspot import keyset
from crmsync.connectors.mapping import ObjectMapping
from crmsync.settings import ConnectionSettings


class HubSpotHost(Protocol):
    conn: ConnectionSettings
    mappings: dict[str, ObjectMapping]

    @property
    def crm(self) -> Any: ...  # the hubspot-api-client's discovery root

    @property
    def call(self) -> Callable[..., Any]: ...  # call(operation, fn, *args, **kwargs)

    @property
    def batch_read(self) -> Callable[..., dict[str, Any]]: ...  # batch_read(native, ids, properties, ...)

    @property
    def _pipelines_raw(self) -> Callable[[], list[dict[str, Any]]]: ...


class ListBackfillHost(HubSpotHost, Protocol):
    """What the list-based backfill (``backfill``) uses of its connector, besides ``HubSpotHost``."""

    transport: Any  # HubSpotTransport: its read_times give the server's clock
    stamp_rule: StampRule
    prefetch: bool
    deal_associations: tuple[str, ...]

    @property
    def history(self) -> Any: ...  # HubSpotStageHistory

    def properties(self, name: str) -> list[str]: ...

    def list_page(self, native: str, after: str | None, properties: list[str], *, archived: bool = False,
                  associations: list[str] | None = None, with_history: list[str] | None = None,
                  limit: int = ...) -> dict[str, Any]: ...

    def page_of(self, name: str, objects: list[dict[str, Any]], state: keyset.KeysetState, *, calls: int,
                inline: bool = False) -> Page: ...

    def finish(self, name: str, page: Page, state: keyset.KeysetState) -> Iterator[Page]: ...

