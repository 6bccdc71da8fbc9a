"""Client-side request limiters shared by every thread that talks to one portal, org or token.

A CRM counts requests per portal (HubSpot), org (Salesforce) or token (Pipedrive) in a rolling
window; every connector, object and thread of this process that uses the same credentials spends
from that one window. ``shared(key, ...)`` hands out one ``RollingLimiter`` per key, so a backfill
of several objects or connections of one portal running at once never sends more than the limit.

``RollingLimiter.acquire`` blocks until a request may be sent and ``release`` gives its slot back
when the answer is in (see the class for why that makes every request safe). The limit and window
are learned from the CRM's rate-limit headers (``update``) on every answer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RollingLimiter:
    """At most ``limit`` requests per rolling ``window_s`` seconds, as the server counts them.

    The server stamps a request somewhere between its send and its answer, and a client cannot
    know where. So a request holds its slot from the moment it is sent (in flight) until
    ``window_s`` after its answer came back: if the server counted N requests in the window
    ending at a new request's stamp, each of them was answered after that window began, or is
    still in flight, and so holds a slot here. Hence no request this limiter lets go is ever
    refused for the window, whatever the network or server delays, at the cost of one round trip
    per window in throughput (rate ~ limit / (window + latency))."""

    def __init__(self, limit: int | None, window_s: float, *, spare: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.spare = spare
        self._clock = clock
        self._answered: deque[float] = deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self.waited_s = 0.0  # total time callers were held back (figures)
        self.acquired = 0

    @property
    def rate(self) -> float | None:
        """Sustained requests per second this limiter allows (None: unlimited)."""
        if self.limit is None:
            return None
        return self.allowed / self.window_s

    @property
    def allowed(self) -> int:
        return max(1, (self.limit or 0) - self.spare)

    def update(self, limit: int | None, window_s: float | None = None) -> None:
        """The CRM said what its limit is (rate-limit headers): follow it."""
        with self._cond:
            if limit is not None and limit > 0:
                self.limit = limit
            if window_s is not None and window_s > 0:
                self.window_s = window_s
            self._cond.notify_all()

    def acquire(self) -> float:
        """Wait for a free slot and take it (give it back with ``release`` once answered); returns
        the seconds waited."""
        started = self._clock()
        with self._cond:
            while True:
                now = self._clock()
                if self.limit is None:
                    break
                horizon = now - self.window_s
                while self._answered and self._answered[0] <= horizon:
                    self._answered.popleft()
                if len(self._answered) + self._in_flight < self.allowed:
                    break
                # the oldest answer leaves the window then; an answer or a new limit wakes us sooner
                delay = self._answered[0] - horizon if self._answered else self.window_s
                self._cond.wait(timeout=max(delay, 0.001))
            self._in_flight += 1
            self.acquired += 1
            waited = self._clock() - started
            self.waited_s += waited
            return waited

    def held(self) -> int:
        """Slots held now: requests in flight plus those answered within the last window. Never
        fewer than the server counts of this process's requests in its window (see the class)."""
        with self._cond:
            horizon = self._clock() - self.window_s
            while self._answered and self._answered[0] <= horizon:
                self._answered.popleft()
            return len(self._answered) + self._in_flight

    def release(self) -> None:
        """The request's answer (or failure) came back: its slot frees ``window_s`` from now."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            self._answered.append(self._clock())
            self._cond.notify_all()


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
