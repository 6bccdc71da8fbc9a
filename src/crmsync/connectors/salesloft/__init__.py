"""SalesLoft API v2 over httpx (no official Python SDK on PyPI)."""

from crmsync.connectors.salesloft.connector import SalesloftConnector

__all__ = ["SalesloftConnector"]
