"""Pipedrive simulator: API v2 deals/products/activities/stages/pipelines/organizations/persons, v1 users."""

from crmsync.sandbox.pipedrive.simulator import DEFAULT_TOKEN, PipedriveSimulator

__all__ = ["DEFAULT_TOKEN", "PipedriveSimulator"]
