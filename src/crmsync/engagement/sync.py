"""Pull a sales-engagement connection's objects into ``engagement_records``.

Each page's records, quarantined rows and cursor are written in one transaction (as the CRM sync
does), so a crash resumes at the last page and nothing is read twice into different states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crmsync.engagement import records
from crmsync.logging import get_logger
from crmsync.store import Store

log = get_logger("crmsync.engagement")


@dataclass
class EngagementSync:
    connection: str
    records: dict[str, int] = field(default_factory=dict)
    api_calls: int = 0
    quarantined: int = 0


def sync_engagement(store: Store, connector: Any, objects: Sequence[str] | None = None) -> EngagementSync:
    result = EngagementSync(connector.name)
    for object_name in objects or connector.objects():
        cursor = store.load_cursor(connector.name, object_name)
        count = 0
        for page in connector.pull(object_name, cursor):
            with store.transaction() as tx:
                count += records.upsert(tx, page.records)
                for bad in page.quarantined:
                    tx.quarantine(connector.name, object_name, bad.source_id, bad.payload, bad.reason)
                tx.save_cursor(connector.name, object_name, page.cursor)
            result.api_calls += page.api_calls
            result.quarantined += len(page.quarantined)
        result.records[object_name] = count
    log.info("engagement.synced", connection=connector.name, records=sum(result.records.values()),
             api_calls=result.api_calls)
    return result
