"""SalesLoft API v2 simulator (people, cadences, cadence memberships, users, email activities)."""

from crmsync.sandbox.salesloft.simulator import SalesloftSimulator

__all__ = ["SalesloftSimulator"]
