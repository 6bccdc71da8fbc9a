"""Shared values of the report tests (imported by conftest and the test modules)."""

from __future__ import annotations

import datetime as dt

from crmsync.sandbox.world import World

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
OBJECTS = ["owners", "pipelines", "stages", "accounts", "deals"]


def history_events_in(world: World) -> int:
    """Stage events a backfill of ``world`` stores: its deals' histories, repeats of one stage collapsed."""
    total = 0
    for deal in world.deals:
        stages = [stage.key for stage, _ in world.stage_history(deal)]
        total += sum(1 for n, key in enumerate(stages) if n == 0 or stages[n - 1] != key)
    return total
