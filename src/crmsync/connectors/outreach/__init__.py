"""Outreach API v2 (JSON:API) over httpx: there is no official Python SDK on PyPI."""

from crmsync.connectors.outreach.connector import OutreachConnector

__all__ = ["OutreachConnector"]
