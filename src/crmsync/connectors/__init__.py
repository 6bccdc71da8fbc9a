"""One connector per system; ``build_connector`` picks it by the connection's kind."""

from __future__ import annotations

from importlib import import_module
from typing import Any

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


def build_connector(conn: ConnectionSettings) -> Any:
    """Instantiate the connector for ``conn`` (imported lazily: each pulls in its own client)."""
    module_name, class_name = CONNECTOR_CLASSES[conn.kind]
    cls = getattr(import_module(module_name), class_name)
    return cls(conn)
