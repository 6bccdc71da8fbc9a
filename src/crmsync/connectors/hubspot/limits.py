"""HubSpot's documented request limits, and the rates a connection may ask for under them.

The search endpoints have a limit of their own, outside the ten-secondly one: 5 requests per
second per token in HubSpot's current API usage guidelines (the 2021 changelog announcing it said
4; crmsync spaces searches at 4 by default). A ``search_per_second`` above the documented limit
only buys 429 storms, so it is capped with a warning, unless the connection says its limits were
raised (``limits_raised: true``: an agreement with HubSpot, or a sandbox whose limits were lifted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from crmsync.connectors.ratelimit import RollingLimiter, shared
from crmsync.logging import get_logger

log = get_logger("crmsync.connectors.hubspot")

DEFAULT_SEARCH_PER_SECOND = 4.0
DOCUMENTED_SEARCH_PER_SECOND = 5.0


def search_rate(options: Mapping[str, Any], connection: str) -> float:
    """Search calls per second for this connection: as configured, within the documented limit."""
    raw = options.get("search_per_second", DEFAULT_SEARCH_PER_SECOND)
    try:
        wanted = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"connection {connection}: options.search_per_second must be a number, "
                         f"got {raw!r}") from None
    if wanted <= 0:
        raise ValueError(f"connection {connection}: options.search_per_second must be above 0, got {raw!r}")
    if wanted > DOCUMENTED_SEARCH_PER_SECOND and not options.get("limits_raised"):
        log.warning("settings.rate_capped", connection=connection, option="search_per_second", wanted=wanted,
                    used=DOCUMENTED_SEARCH_PER_SECOND,
                    reason="above HubSpot's documented search limit; set limits_raised: true if yours is higher")
        return DOCUMENTED_SEARCH_PER_SECOND
    return wanted


# The ten-second limit a portal starts with until its headers say more: the lowest documented one
# (Free/Starter and OAuth apps, 100 per 10 s; developers.hubspot.com/apisbytier).
DEFAULT_TEN_SECONDLY = 100
TEN_SECONDS = 10.0


def general_limiter(base_url: object, token: str, options: Mapping[str, Any]) -> RollingLimiter | None:
    """The portal's ten-second limiter, one per (host, token) in this process, shared by every
    connector, object and thread using it; it follows ``X-HubSpot-RateLimit-Max`` /
    ``-Interval-Milliseconds``. None with ``limits_raised: true`` (the server's 429s only)."""
    if options.get("limits_raised"):
        return None
    fingerprint = hashlib.sha256(token.encode()).hexdigest()[:12]
    start = int(options.get("ten_secondly_limit", DEFAULT_TEN_SECONDLY))
    return shared(("hubspot", str(base_url or "https://api.hubapi.com"), fingerprint, "ten_secondly"),
                  start, TEN_SECONDS)
