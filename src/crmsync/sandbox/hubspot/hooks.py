"""HubSpot's answers for auth failures, rate limits and the X-HubSpot-RateLimit-* headers."""

from __future__ import annotations

import hashlib
import re
import time
import uuid

from starlette.requests import Request
from starlette.responses import Response

from crmsync.sandbox.core import RateLimiter, SimulatorHooks, json_response
from crmsync.sandbox.hubspot.schema import TYPE_IDS

# Nominal limits reported when a knob leaves a limit unset (HubSpot Pro/Enterprise private app).
NOMINAL_DAILY = 500_000
NOMINAL_TEN_SECONDLY = 190
POLICY = {"daily": "DAILY", "burst": "TEN_SECONDLY_ROLLING", "secondly": "SECONDLY",
          "injected": "TEN_SECONDLY_ROLLING"}
MESSAGES = {
    "DAILY": "You have reached your daily limit.",
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
}
_ID_SEGMENT = re.compile(r"/(\d+)(?=/|$)")
_TYPE_SEGMENT = re.compile(r"/(0-\d+)(?=/|$)")


def error_body(category: str, message: str, **extra: object) -> dict[str, object]:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category,
            **extra}


class HubSpotHooks(SimulatorHooks):
    name = "hubspot"

    def __init__(self, tokens: set[str]) -> None:
        self.tokens = tokens

    def route_of(self, method: str, path: str) -> str:
        path = _TYPE_SEGMENT.sub(lambda m: "/" + TYPE_IDS.get(m.group(1), m.group(1)), path)
        return f"{method} " + _ID_SEGMENT.sub("/{id}", path)

    def is_search(self, method: str, path: str) -> bool:
        return method == "POST" and path.endswith("/search")

    def is_public(self, path: str) -> bool:
        """The control API, and token metadata (the token is in the path, no Authorization header)."""
        return path.startswith(("/_sandbox", "/oauth/v1/access-tokens/"))

    def authenticate(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            return None
        return hashlib.sha256(token.encode()).hexdigest()[:8]

    def unauthorized(self) -> Response:
        return json_response(error_body(
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
            "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"), 401)

    def rate_limited(self, which: str, retry_after: float) -> Response:
        policy = POLICY.get(which, "TEN_SECONDLY_ROLLING")
        body = {"status": "error", "message": MESSAGES[policy], "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()), "policyName": policy, "requestId": str(uuid.uuid4())}
        headers = {"Retry-After": str(max(1, round(retry_after)))} if which == "injected" else None
        return json_response(body, 429, headers)

    def server_error(self, status: int) -> Response:
        return json_response(error_body("INTERNAL_ERROR", "internal error"), status)

    def limit_headers(self, limiter: RateLimiter) -> dict[str, str]:
        knobs = limiter.knobs
        now = time.monotonic()
        with limiter._lock:  # the core limiter keeps its window private; read it consistently
            window = [(at, cost) for at, cost in limiter._burst if at > now - knobs.burst_window_s]
        used = sum(cost for _, cost in window)
        last_second = sum(cost for at, cost in window if at > now - 1.0)
        burst = knobs.burst_limit or NOMINAL_TEN_SECONDLY
        daily = knobs.daily_limit or NOMINAL_DAILY
        secondly = max(1, int(burst / max(knobs.burst_window_s, 1.0)))
        return {
            "X-HubSpot-RateLimit-Daily": str(daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, daily - limiter.daily_used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(knobs.burst_window_s * 1000)),
            "X-HubSpot-RateLimit-Max": str(burst),
            "X-HubSpot-RateLimit-Remaining": str(max(0, burst - used)),
            "X-HubSpot-RateLimit-Secondly": str(secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, secondly - last_second)),
        }
