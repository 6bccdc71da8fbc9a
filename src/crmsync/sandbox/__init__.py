"""Local, faithful simulators of Salesforce, HubSpot, Pipedrive and Meteroid."""

from crmsync.sandbox.core import FaultRule, Knobs, LocalCA, SandboxServer, Simulator
from crmsync.sandbox.world import World, generate_world

__all__ = ["FaultRule", "Knobs", "LocalCA", "SandboxServer", "Simulator", "World", "generate_world"]
