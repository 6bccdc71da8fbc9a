"""Deal stage history in HubSpot's shapes: ``propertiesWithHistory`` and the per-stage date properties.

HubSpot keeps every version of a property; for ``dealstage`` that is the deal's stage history.
Seeded deals take theirs from ``world.stage_history`` (built on demand); a deal written through
the API or the user handle gets its versions recorded here from then on. Rendered:

* ``propertiesWithHistory.dealstage``: versions newest first (``value``, ``timestamp``, ``sourceType``);
* ``hs_v2_date_entered_<stage id>`` / ``hs_v2_date_exited_<stage id>``: when the deal last entered
  that stage and, if it left since, when it left (docs/crm-history.md).
"""

from __future__ import annotations

from typing import Any

from crmsync.sandbox.hubspot.clock import iso_ms
from crmsync.sandbox.hubspot.schema import to_ms
from crmsync.sandbox.hubspot.table import Row
from crmsync.sandbox.world import World

ENTERED_PREFIX = "hs_v2_date_entered_"
EXITED_PREFIX = "hs_v2_date_exited_"
HISTORY_BATCH_MAX = 50  # inputs per batch read that asks for property histories
Version = tuple[str, int]  # (stage id, epoch ms)


class StageLog:
    def __init__(self, world: World) -> None:
        self.world = world
        self._written: dict[int, list[Version]] = {}

    def versions(self, row: Row) -> list[Version]:
        """The deal's dealstage versions, oldest first."""
        own = self._written.get(row.id)
        if own is not None:
            return own
        if row.src is None:
            return []
        return [(stage.key, to_ms(at)) for stage, at in self.world.stage_history(row.src)]

    def before_write(self, row: Row) -> None:
        """Keep a seeded deal's history before its World source is dropped by a write."""
        if row.id not in self._written:
            self._written[row.id] = self.versions(row)

    def record(self, row: Row, stage: str, at_ms: int) -> None:
        versions = self._written.setdefault(row.id, [])
        if not versions or versions[-1][0] != stage:
            versions.append((stage, at_ms))

    def with_history(self, row: Row) -> list[dict[str, Any]]:
        return [{"value": stage, "timestamp": iso_ms(ms), "sourceType": "CRM_UI", "sourceId": None}
                for stage, ms in reversed(self.versions(row))]

    def stage_dates(self, row: Row) -> dict[str, str | None]:
        """``hs_v2_date_entered_*`` / ``hs_v2_date_exited_*`` of every stage the deal was in."""
        out: dict[str, str | None] = {}
        versions = self.versions(row)
        for n, (stage, ms) in enumerate(versions):
            out[ENTERED_PREFIX + stage] = iso_ms(ms)
            out[EXITED_PREFIX + stage] = iso_ms(versions[n + 1][1]) if n + 1 < len(versions) else None
        return out
