"""Outreach API v2 simulator (JSON:API)."""

from crmsync.sandbox.outreach.simulator import OutreachSimulator

__all__ = ["OutreachSimulator"]
