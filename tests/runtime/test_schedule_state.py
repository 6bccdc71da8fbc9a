"""The schedule's state under concurrent writers (SQLite or PostgreSQL, as the suite runs): a worker's
``mark_started`` and a dispatcher's update of the same connection, both on a row that does not exist
yet, keep each other's keys."""

from __future__ import annotations

import threading

from crmsync.model import now_utc
from crmsync.runtime import schedule_state
from crmsync.store import Store


def test_concurrent_first_updates_keep_each_others_keys(store: Store) -> None:
    names = [f"pd-{i:02d}" for i in range(30)]
    start = threading.Barrier(2)

    def dispatcher() -> None:
        start.wait()
        for name in names:
            schedule_state.update(store, name, last_deferred_at=now_utc(), next_due_at=now_utc())

    def worker() -> None:
        start.wait()
        for name in names:
            schedule_state.mark_started(store, name, "schedule")

    threads = [threading.Thread(target=dispatcher), threading.Thread(target=worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    states = schedule_state.load_all(store)
    lost = {n: sorted(states.get(n, {})) for n in names
            if not {"last_deferred_at", "next_due_at", "last_started_at", "last_reason"} <= set(states.get(n, {}))}
    assert not lost, f"keys lost: {lost}"
