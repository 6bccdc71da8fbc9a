"""Request-rate arithmetic over the times a simulator answered (``RequestLog`` stamps)."""

from __future__ import annotations


def most_in_any_window(times: list[float], window: float) -> int:
    """The most requests the simulator answered within any ``window`` seconds."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, at in enumerate(times):
        while times[lo] <= at - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
