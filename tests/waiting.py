"""Waiting in tests without fixed sleeps: poll a condition (a clock, a counter, a state) until it
holds or a deadline passes. The poll interval is only how often to look, never how long to wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, what: str = "the condition",
               interval: float = 0.01) -> T:
    """``condition()``'s first truthy value; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def wait_past(clock: Callable[[], float], instant: float, timeout: float = 30.0, what: str = "the clock") -> None:
    """Until ``clock()`` (a simulator's clock, the wall clock, ...) reads strictly after ``instant``."""
    wait_until(lambda: clock() > instant, timeout, f"{what} to pass {instant}")


def wait_while_progressing(condition: Callable[[], T], progress: Callable[[], object], *, stall: float,
                           cap: float, what: str, interval: float = 0.5) -> T:
    """``condition()``'s first truthy value, waiting as long as ``progress()`` (a counter, a tuple of
    counters) keeps changing: AssertionError when it stood still for ``stall`` seconds or after
    ``cap`` seconds in all. A liveness wait for work whose speed depends on the machine's load."""
    started = last_change = time.monotonic()
    seen = progress()
    while True:
        value = condition()
        if value:
            return value
        now = time.monotonic()
        current = progress()
        if current != seen:
            seen, last_change = current, now
        if now - last_change > stall:
            raise AssertionError(f"no progress for {stall:g} s waiting for {what} (at {seen!r})")
        if now - started > cap:
            raise AssertionError(f"timed out after {cap:g} s waiting for {what} (at {seen!r})")
        time.sleep(interval)
