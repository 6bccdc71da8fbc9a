"""The shared quota rule: answers of requests in flight together arrive in any order, and a late
one must never raise what is left (every connector's transport feeds ``Usage.note_quota``)."""

from __future__ import annotations

import threading
import time

from crmsync.connectors.base import Usage
from crmsync.connectors.hubspot.transport import HEADER, HubSpotTransport


def test_a_late_answer_is_dropped_and_a_reset_is_taken() -> None:
    usage = Usage()
    sent = time.monotonic()
    usage.note_quota(1_000, 700, sent_at=sent, arrived_at=sent + 0.2)
    usage.note_quota(1_000, 710, sent_at=sent, arrived_at=sent + 0.3)  # answered first, arrived last
    assert (usage.remaining, usage.used) == (700, 300)
    usage.note_quota(1_000, 690, sent_at=sent, arrived_at=sent + 0.4)  # lower: always taken
    assert usage.remaining == 690
    usage.note_quota(1_000, 999, sent_at=sent + 0.5, arrived_at=sent + 0.6)  # sent after: a reset
    assert (usage.remaining, usage.used) == (999, 1)
    usage.note_quota(5_000, 4_000, sent_at=sent, arrived_at=sent + 0.7)  # a new limit is taken
    assert (usage.limit, usage.remaining, usage.used) == (5_000, 4_000, 1_000)
    usage.note_quota(None, None, sent_at=sent + 1, arrived_at=sent + 1.1)  # no headers: unchanged
    assert (usage.limit, usage.remaining) == (5_000, 4_000)


def test_threads_answering_in_any_order_leave_the_lowest_count() -> None:
    usage, start = Usage(), threading.Barrier(8)
    sent = time.monotonic()
    counts = list(range(1_000, 0, -1))  # the server's order: each answer one call lower

    def answer(mine: list[int]) -> None:
        start.wait()
        for remaining in mine:
            usage.note_quota(2_000, remaining, sent_at=sent, arrived_at=time.monotonic())

    threads = [threading.Thread(target=answer, args=(counts[i::8][::-1],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert usage.remaining == 1 and usage.used == 1_999


def test_hubspot_transport_keeps_the_lowest_daily_count() -> None:
    transport = HubSpotTransport("http://127.0.0.1:9", "token")
    sent = time.monotonic()

    def headers(remaining: int) -> dict[str, str]:
        return {HEADER + "Daily": "250000", HEADER + "Daily-Remaining": str(remaining)}

    transport._observe(headers(240_000), sent_at=sent)
    transport._observe(headers(240_001), sent_at=sent)  # the other list request, answered earlier
    assert transport.usage.remaining == 240_000 and transport.usage.used == 10_000
    transport._observe(headers(249_999), sent_at=time.monotonic())  # a new day in the portal's zone
    assert transport.usage.remaining == 249_999
