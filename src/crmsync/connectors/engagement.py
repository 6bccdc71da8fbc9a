"""What the sales-engagement connectors (Outreach, Apollo) hand to the engagement sync.

Their objects (prospects, sequence states, mailings, calls) are not CRM records: they keep their
own shape, flattened to one level (attributes plus ``<relationship>Id`` keys), with the stamp the
cursor pages by. A page carries them with the cursor to save after it, like ``connectors.base.Page``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmsync.connectors.base import ConnectorError, PushItem, PushResult, Quarantined, RetriableError
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


def push_sequence_states(tool: str, items: Sequence[PushItem], enrol: Callable[[PushItem], PushResult],
                         stop: Callable[[PushItem], PushResult]) -> list[PushResult]:
    """Per item: ``create`` enrols, ``update`` takes the person off the sequence. A 429/5xx storm that
    outlasts the transport's retries on the first item stops the batch (raised), so the outbox
    pauses the connection; later in a batch it marks the item retriable."""
    results: list[PushResult] = []
    for item in items:
        try:
            if item.object_name == "sequence_states" and item.operation == "create":
                results.append(enrol(item))
            elif item.object_name == "sequence_states" and item.operation == "update":
                results.append(stop(item))
            else:
                results.append(PushResult(item.ref, False, error=f"{tool}: unsupported {item.operation} {item.object_name}"))
        except RetriableError:
            if not results:
                raise
            results.append(PushResult(item.ref, False, retriable=True, error="retriable error; retried later"))
        except ConnectorError as exc:
            results.append(PushResult(item.ref, False, error=str(exc)))
    return results

