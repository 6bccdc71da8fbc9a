"""HubSpot connector on hubspot-api-client."""

from crmsync.connectors.hubspot.connector import HubSpotConnector

__all__ = ["HubSpotConnector"]
