"""The HubSpot simulator (CRM v3 objects, search, pipelines, owners, associations v4)."""

from crmsync.sandbox.hubspot.simulator import SANDBOX_TOKEN, HubSpotSimulator

__all__ = ["SANDBOX_TOKEN", "HubSpotSimulator"]
