"""Pipedrive's edge: api token auth, token-cost rate limits, its limit headers and error envelope.

Rate limits as Pipedrive documents them: a burst limit of *requests* per rolling 2-second window
per token, and a daily budget of *tokens* where each operation costs its ``x-token-cost``. The
daily budget resets at midnight UTC. 429 answers carry the usual envelope and ``Retry-After``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from crmsync.sandbox.core import Knobs, RateLimiter, SimulatorHooks, json_response
from crmsync.sandbox.pipedrive.costs import route_template, token_cost

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


def error_body(message: str, **extra: object) -> dict[str, object]:
    return {"success": False, "error": message, "error_info": ERROR_INFO, "data": None,
            "additional_data": None, **extra}


def error_response(status: int, message: str, **extra: object) -> Response:
    return json_response(error_body(message, **extra), status)


def seconds_to_utc_midnight(now: dt.datetime) -> int:
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


class TokenRateLimiter(RateLimiter):
    """Burst counts requests in the window; the daily budget counts tokens and resets at UTC midnight."""

    def __init__(self, knobs: Knobs, clock: Callable[[], dt.datetime]) -> None:
        super().__init__(knobs)
        self._clock = clock
        self._day = clock().date()
        self._day_lock = threading.Lock()

    def _roll_day(self) -> None:
        today = self._clock().date()
        with self._day_lock:
            if today != self._day:
                self._day = today
                self.daily_used = 0

    def acquire(self, cost: int = 1, *, search: bool = False) -> str | None:
        self._roll_day()
        now = time.monotonic()
        with self._lock:
            k = self.knobs
            if k.daily_limit is not None and self.daily_used + cost > k.daily_limit:
                return "daily"
            if k.burst_limit is not None and self._burst_used(now) + 1 > k.burst_limit:
                return "burst"
            self._burst.append((now, 1))
            self.daily_used += cost
            return None


class PipedriveHooks(SimulatorHooks):
    name = "pipedrive"

    def __init__(self, tokens: set[str], clock: Callable[[], dt.datetime]) -> None:
        self._tokens = tokens
        self._clock = clock

    def route_of(self, method: str, path: str) -> str:
        return route_template(method, path)

    def cost_of(self, method: str, path: str) -> int:
        return token_cost(method, path)

    def authenticate(self, request: Request) -> str | None:
        token = request.headers.get("x-api-token") or request.query_params.get("api_token")
        if token is None:
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                token = auth[7:].strip()
        if not token or token not in self._tokens:
            return None
        return hashlib.sha256(token.encode()).hexdigest()[:12]

    def unauthorized(self) -> Response:
        return error_response(401, "unauthorized access", errorCode=401)

    def rate_limited(self, which: str, retry_after: float) -> Response:
        if which == "daily":
            wait = seconds_to_utc_midnight(self._clock())
            message = "Daily token budget exceeded"
        else:
            wait = max(1, math.ceil(retry_after))
            message = "Request over limit"
        return json_response(error_body(message, errorCode=429), 429, headers={"Retry-After": str(wait)})

    def server_error(self, status: int) -> Response:
        return error_response(status, "Internal server error" if status == 500 else "Service unavailable")

    def limit_headers(self, limiter: RateLimiter) -> dict[str, str]:
        snap = limiter.snapshot()
        headers: dict[str, str] = {}
        if snap["burst_limit"] is not None:
            headers["x-ratelimit-limit"] = str(snap["burst_limit"])
            headers["x-ratelimit-remaining"] = str(snap["burst_remaining"])
            headers["x-ratelimit-reset"] = str(math.ceil(float(snap["burst_reset_s"] or 0.0)))
        if snap["daily_limit"] is not None:
            headers["x-daily-ratelimit-token-limit"] = str(snap["daily_limit"])
            headers["x-daily-ratelimit-token-remaining"] = str(snap["daily_remaining"])
        return headers
