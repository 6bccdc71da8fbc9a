"""What the Pipedrive pusher and history reader use of their connector (``PipedriveConnector``).

They take this protocol instead of the connector class, so ``connector`` imports ``push`` and
``history`` and neither imports it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from crmsync.connectors.mapping import ObjectMapping
from crmsync.settings import ConnectionSettings


class PipedriveHost(Protocol):
    conn: ConnectionSettings

    @property
    def mappings(self) -> dict[str, ObjectMapping]: ...

    @property
    def call(self) -> Callable[..., dict[str, Any]]: ...  # call(method, path, *, params, body, cost, for_push)

    @property
    def field_keys(self) -> Callable[[str], dict[str, str]]: ...
