"""One connector per system; ``build_connector`` picks it by the connection's kind.

Every connector is a ``base.Connector`` (pull, count, list_ids, push, usage, and its field tables
as ``mappings``); the error taxonomy, ``Page``, ``PushItem`` / ``PushResult`` are in ``base``, the
cursor rule in ``cursor``. Connectors import nothing from ``store``, ``sync`` or ``rules``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from crmsync.connectors.base import Connector, PushTarget
from crmsync.settings import ConnectionSettings

CONNECTOR_CLASSES = {
    "salesforce": ("crmsync.connectors.salesforce", "SalesforceConnector"),
    "hubspot": ("crmsync.connectors.hubspot", "HubSpotConnector"),
    "pipedrive": ("crmsync.connectors.pipedrive", "PipedriveConnector"),
    "meteroid": ("crmsync.connectors.meteroid", "MeteroidConnector"),
    "gong": ("crmsync.connectors.gong", "GongConnector"),
    "outreach": ("crmsync.connectors.outreach", "OutreachConnector"),
    "apollo": ("crmsync.connectors.apollo", "ApolloConnector"),
    "salesloft": ("crmsync.connectors.salesloft", "SalesloftConnector"),
}


def build_connector(conn: ConnectionSettings) -> Connector:
    """Instantiate the connector for ``conn`` (imported lazily: each pulls in its own client)."""
    module_name, class_name = CONNECTOR_CLASSES[conn.kind]
    cls = getattr(import_module(module_name), class_name)
    connector: Connector = cls(conn)
    return connector


if TYPE_CHECKING:  # mypy checks here that every connector class is a ``Connector``
    from crmsync.connectors.apollo.connector import ApolloConnector
    from crmsync.connectors.hubspot.connector import HubSpotConnector
    from crmsync.connectors.meteroid.connector import MeteroidConnector
    from crmsync.connectors.outreach.connector import OutreachConnector
    from crmsync.connectors.pipedrive.connector import PipedriveConnector
    from crmsync.connectors.salesforce.connector import SalesforceConnector
    from crmsync.connectors.salesloft.connector import SalesloftConnector

    _CHECKED: tuple[type[Connector], ...] = (SalesforceConnector, HubSpotConnector, PipedriveConnector,
                                              MeteroidConnector)
    #: the sales-engagement tools pull their own page shape (``connectors.engagement``) but are
    #: written through the same outbox drain
    _PUSHED: tuple[type[PushTarget], ...] = (OutreachConnector, ApolloConnector, SalesloftConnector)
