"""How much a Pipedrive backfill window has still to read decides which window is split when a
chain frees (pure: no requests)."""

from __future__ import annotations

from crmsync.connectors.pipedrive.windows import Window


def test_the_last_full_page_raises_the_estimate_of_a_window_crowded_at_the_top() -> None:
    # 1,000 rows read over the first 10,000 s, and the last full page of 500 took only 100 s:
    # deals crowd toward recent update times, so the rest reads at the recent density
    window = Window(lo=0, hi=None, api_hi=None, rows=1_000, position=10_000, recent=(500, 100))
    assert window.remaining_estimate(started=11_000) == 5 * 1_000
    window.recent = None  # without a full page: the average density
    assert window.remaining_estimate(started=11_000) == 100
    window.recent = (500, 100_000)  # a sparse last page never lowers the estimate
    assert window.remaining_estimate(started=11_000) == 100


def test_a_finished_or_unread_window_has_nothing_left() -> None:
    assert Window(lo=None, hi=None, api_hi=None).remaining_estimate(started=10) == 0
    done = Window(lo=0, hi=100, api_hi=100, rows=5, position=50, done=True, recent=(500, 1))
    assert done.remaining_estimate(started=10) == 0
