"""Client-side request limiters shared by every thread that talks to one portal, org or token.

A CRM counts requests per portal (HubSpot), org (Salesforce) or token (Pipedrive) in a rolling
window; every connector, object and thread of this process that uses the same credentials spends
from that one window. ``shared(key, ...)`` hands out one ``RollingLimiter`` per key, so a backfill
of several objects or connections of one portal running at once never sends more than the limit.

``RollingLimiter.acquire`` blocks until a request may be sent: at most ``limit - spare`` sends in
any ``window_s + slack_s`` (the server counts arrivals, which trail sends by a varying delay; the
slack keeps a request that arrives late from being counted in the next window). The limit and
window are learned from the CRM's rate-limit headers (``update``) on every answer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

SLACK_S = 0.05
SPARE = 1


class RollingLimiter:
    """At most ``limit`` requests per rolling ``window_s`` seconds, across threads."""

    def __init__(self, limit: int | None, window_s: float, *, slack_s: float = SLACK_S, spare: int = SPARE,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit = limit
        self.window_s = window_s
        self.slack_s = slack_s
        self.spare = spare
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time callers were held back (figures)
        self.acquired = 0

    @property
    def rate(self) -> float | None:
        """Sustained requests per second this limiter allows (None: unlimited)."""
        if self.limit is None:
            return None
        return self.allowed / (self.window_s + self.slack_s)

    @property
    def allowed(self) -> int:
        return max(1, (self.limit or 0) - self.spare)

    def update(self, limit: int | None, window_s: float | None = None) -> None:
        """The CRM said what its limit is (rate-limit headers): follow it."""
        with self._lock:
            if limit is not None and limit > 0:
                self.limit = limit
            if window_s is not None and window_s > 0:
                self.window_s = window_s

    def acquire(self) -> float:
        """Wait for a free slot and take it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                if self.limit is None:
                    self.acquired += 1
                    return waited
                now = self._clock()
                horizon = now - self.window_s - self.slack_s
                while self._sent and self._sent[0] <= horizon:
                    self._sent.popleft()
                if len(self._sent) < self.allowed:
                    self._sent.append(now)
                    self.acquired += 1
                    self.waited_s += waited
                    return waited
                delay = self._sent[0] - horizon
            self._sleep(delay)
            waited += delay


_REGISTRY: dict[tuple[str, ...], RollingLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def shared(key: tuple[str, ...], limit: int | None, window_s: float, **kwargs: float) -> RollingLimiter:
    """The one limiter of ``key`` (e.g. ``("hubspot", base_url, token fingerprint, "general")``) in
    this process, made on first use. Later callers get the same object whatever limit they pass:
    the window is the CRM's, learned from its headers."""
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(key)
        if found is None:
            found = _REGISTRY[key] = RollingLimiter(limit, window_s, **kwargs)  # type: ignore[arg-type]
        return found


def forget(prefix: tuple[str, ...] = ()) -> None:
    """Drop the shared limiters whose key starts with ``prefix`` (all by default): tests, new portals."""
    with _REGISTRY_LOCK:
        for key in [k for k in _REGISTRY if k[:len(prefix)] == prefix]:
            del _REGISTRY[key]
