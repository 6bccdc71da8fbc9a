"""Pipedrive connector (API v2; v1 for users and field listings) over httpx."""

from crmsync.connectors.pipedrive.connector import PipedriveConnector
from crmsync.connectors.pipedrive.http import NotFoundError, PipedriveHttp

__all__ = ["NotFoundError", "PipedriveConnector", "PipedriveHttp"]
