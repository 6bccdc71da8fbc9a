"""What the sales-engagement connectors (Outreach, Apollo) hand to the engagement sync.

Their objects (prospects, sequence states, mailings, calls) are not CRM records: they keep their
own shape, flattened to one level (attributes plus ``<relationship>Id`` keys), with the stamp the
cursor pages by. A page carries them with the cursor to save after it, like ``connectors.base.Page``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from crmsync.connectors.base import Quarantined
from crmsync.connectors.mapping import ObjectMapping


@dataclass(slots=True)
class EngagementRecord:
    connection: str
    source_object: str  # the connector's object name: prospects, sequence_states, mailings, ...
    source_id: str
    modified_at: dt.datetime
    data: dict[str, Any]
    deleted: bool = False


@dataclass(slots=True)
class EngagementPage:
    records: list[EngagementRecord]
    cursor: dict[str, Any]
    quarantined: list[Quarantined] = field(default_factory=list)
    api_calls: int = 0
    done: bool = False


#: sequence-state states that hold a person in a sequence (a new enrolment in it would be refused)
ACTIVE_STATES = frozenset({"active", "paused", "pending", "bounced", "failed", "opted_out_paused"})


class NativeShapes:
    """For tools whose objects crmsync reads and writes in their own shape: no field tables (the
    outbox drain translates pushes through ``mappings``; these have nothing to translate)."""

    @property
    def mappings(self) -> dict[str, ObjectMapping]:
        return {}

