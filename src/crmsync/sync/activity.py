"""Pull calls (Gong) and usage + invoices (Meteroid) into the store.

Calls: each page's calls and the cursor after it in one transaction, so a stopped pass resumes on
its page. Usage: one reading per metered component of each active subscription (this period) and
every invoice, upserted; re-running the pull only refreshes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crmsync.store import Store
from crmsync.store.activity import upsert_calls, upsert_invoices, upsert_readings

CALLS_OBJECT = "calls"


@dataclass
class ActivityResult:
    records: int = 0
    pages: int = 0
    api_calls: int = 0
    quarantined: int = 0
    invoices: int = 0


def sync_calls(store: Store, connector: Any, *, since: Any = None) -> ActivityResult:
    result = ActivityResult()
    cursor = store.load_cursor(connector.name, CALLS_OBJECT)
    for page in connector.pull(CALLS_OBJECT, cursor, since=since):
        with store.transaction() as tx:
            result.records += upsert_calls(tx, page.calls)
            for bad in page.quarantined:
                tx.quarantine(connector.name, "calls", bad.source_id, bad.payload, bad.reason)
            tx.save_cursor(connector.name, CALLS_OBJECT, page.cursor)
        result.pages += 1
        result.api_calls += page.api_calls
        result.quarantined += len(page.quarantined)
    return result


def sync_usage(store: Store, connector: Any, *, statuses: tuple[str, ...] = ("ACTIVE",)) -> ActivityResult:
    """Meter readings of every subscription in ``statuses`` and every invoice."""
    result = ActivityResult()
    calls_before = connector.usage.calls
    for page in connector.iter_pages("subscriptions", statuses=list(statuses)):
        readings = []
        for sub in page:
            readings.extend(connector.meter_readings(sub))
        with store.transaction() as tx:
            result.records += upsert_readings(tx, readings)
        result.pages += 1
    for invoices in connector.invoice_facts():
        with store.transaction() as tx:
            result.invoices += upsert_invoices(tx, invoices)
    result.api_calls = connector.usage.calls - calls_before
    return result
