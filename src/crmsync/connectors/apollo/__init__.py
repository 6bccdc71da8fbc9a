"""Apollo.io API v1 over httpx (no official Python SDK on PyPI)."""

from crmsync.connectors.apollo.connector import ApolloConnector

__all__ = ["ApolloConnector"]
