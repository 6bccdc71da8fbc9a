"""The daily API budget count is charged under a row lock: concurrent charges never lose an increment
(PostgreSQL with ``CRMSYNC_TEST_STORE_URL``; SQLite serialises writers with ``BEGIN IMMEDIATE``)."""

from __future__ import annotations

import datetime as dt
import threading

from crmsync.settings import ConnectionSettings
from crmsync.store import Store
from crmsync.sync.budget import ApiBudget

THREADS, CHARGES = 6, 15


def test_concurrent_charges_are_all_counted(store: Store) -> None:
    conn = ConnectionSettings(name="pd", kind="pipedrive", credentials={"api_token": "t"},
                              options={"daily_limit": 100_000})
    moment = dt.datetime(2026, 1, 2, 12, tzinfo=dt.UTC)
    budget = ApiBudget(store, conn, clock=lambda: moment)
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def charge_many() -> None:
        try:
            start.wait(timeout=30)
            for _ in range(CHARGES):
                with store.transaction() as tx:
                    budget.charge(tx, 1)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=charge_many) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert budget.used_today() == THREADS * CHARGES
