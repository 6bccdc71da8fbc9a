"""Gong (revenue intelligence) API v2: users and calls with parties, trackers and highlights."""

from crmsync.connectors.gong.connector import CallPage, GongConnector

__all__ = ["CallPage", "GongConnector"]
