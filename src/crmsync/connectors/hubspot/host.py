"""What the HubSpot pusher and history reader use of their connector (``HubSpotConnector``).

They take this protocol instead of the connector class, so ``connector`` imports ``push`` and
``history`` and neither imports it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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
