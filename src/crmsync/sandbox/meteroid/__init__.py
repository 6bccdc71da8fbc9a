"""The Meteroid billing simulator (REST ``/api/v1``) over the seeded World."""

from crmsync.sandbox.meteroid.simulator import DEFAULT_API_KEY, MeteroidKnobs, MeteroidSimulator

__all__ = ["DEFAULT_API_KEY", "MeteroidKnobs", "MeteroidSimulator"]
