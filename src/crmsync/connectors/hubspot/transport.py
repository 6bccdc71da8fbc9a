"""Every HubSpot call goes through here: the official client, retries, usage and error taxonomy.

Calls use hubspot-api-client's generated APIs with ``_preload_content=False`` and parse the
body with orjson (the generated models are slow and drop unknown fields). tenacity retries
``RetriableError`` only, waiting what the server asked (``Retry-After``, or 1 s for HubSpot's
SECONDLY policy, at most ``max_wait_s``) or an exponential backoff with jitter (``backoff``); a DAILY 429 is ``BudgetExhausted``. Search calls are
spaced to the search API's own per-second limit. Messages carry status, category and the
operation name - never the token or a payload.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hubspot
import orjson
import urllib3
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from urllib3.util.retry import Retry

from crmsync.connectors.backoff import retry_wait
from crmsync.connectors.base import (
    AuthError,
    BudgetExhausted,
    FatalError,
    RateLimitedError,
    RetriableError,
    Usage,
)
from crmsync.connectors.ratelimit import RollingLimiter
from crmsync.connectors.server_time import ReadTimes

HEADER = "x-hubspot-ratelimit-"


class HubSpotTransport:
    def __init__(self, base_url: str | None, token: str, *, ca_bundle: Path | None = None,
                 search_per_second: float = 4.0, max_attempts: int = 6, timeout_s: float = 60.0,
                 max_wait_s: float = 60.0,
                 usage: Usage | None = None, sleep: Callable[[float], None] = time.sleep,
                 general: RollingLimiter | None = None) -> None:
        # urllib3's own default retries a 429/503 with Retry-After, sleeping as long as the header
        # says (uncapped, uncounted, unjittered): every retry is this transport's decision instead
        options: dict[str, Any] = {"access_token": token, "retry": Retry(total=0, raise_on_status=False)}
        if base_url:
            options["host"] = base_url.rstrip("/")
        if ca_bundle is not None:
            options["ssl_ca_cert"] = str(ca_bundle)
        self.client = hubspot.Client.create(**options)
        self.usage = usage or Usage()
        # spaced a little wider than 1/limit: the server's rolling second counts arrivals, not sends
        self.search_interval = 1.07 / search_per_second if search_per_second > 0 else 0.0
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self._last_search = 0.0
        self._search_lock = threading.Lock()
        self.daily_reserve = 0  # calls below which only pushes may spend (set by the connector)
        self.read_times = ReadTimes()  # server read time of each answer, per thread
        # the ten-second limit, shared by every connector of this portal in the process (None: off)
        self.general = general

    # --- the one entry point ------------------------------------------------------------------
    def call(self, operation: str, fn: Callable[..., Any], *args: Any, search: bool = False,
             push: bool = False, **kwargs: Any) -> Any:
        """Run one SDK call with retries; return the parsed JSON body (None for 204)."""
        if not push and self.usage.remaining is not None and self.usage.remaining <= self.daily_reserve:
            raise BudgetExhausted(f"hubspot {operation}: {self.usage.remaining} calls left today, "
                                  f"{self.daily_reserve} are kept for pushes")
        retrying = Retrying(retry=retry_if_exception_type(RetriableError), stop=stop_after_attempt(self.max_attempts),
                            wait=self._wait, sleep=self.sleep, reraise=True)
        return retrying(self._once, operation, fn, args, kwargs, search)

    def _wait(self, state: RetryCallState) -> float:
        return retry_wait(state, initial=0.25, max_wait_s=self.max_wait_s, cap=10.0)

    def _throttle_search(self) -> None:
        if not self.search_interval:
            return
        with self._search_lock:
            wait = self._last_search + self.search_interval - time.monotonic()
            if wait > 0:
                self.sleep(wait)
            self._last_search = time.monotonic()

    def _once(self, operation: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              search: bool) -> Any:
        limiter = None if search else self.general  # search is exempt from the ten-second limit (spec)
        if search:
            self._throttle_search()
        elif limiter is not None:
            limiter.acquire()
        sent_at, started = time.time(), time.monotonic()
        try:
            try:
                response = fn(*args, _preload_content=False, _request_timeout=self.timeout_s, **kwargs)
            finally:
                if limiter is not None:
                    limiter.release()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetriableError(f"hubspot {operation}: {type(exc).__name__}") from None
        except Exception as exc:  # noqa: BLE001 - the SDK's ApiException family
            status = getattr(exc, "status", None)
            if status is None:
                raise
            self._observe(getattr(exc, "headers", None), sent_at=started)
            raise classify(operation, int(status), getattr(exc, "body", None), getattr(exc, "headers", None)) from None
        self._observe(response.headers, sent_at=started)
        self.read_times.note((response.headers or {}).get("Date"), time.monotonic() - started, sent_at)
        data = response.data
        if response.status == 204 or not data:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise RetriableError(f"hubspot {operation}: truncated or invalid JSON body",
                                 status=response.status) from None

    def _observe(self, headers: Any, *, sent_at: float) -> None:
        self.usage.calls += 1
        if not headers:
            return
        get = headers.get
        self.usage.note_server_date(get("Date") or get("date"))

        def number(name: str) -> int | None:
            value = get(HEADER + name) or get("X-HubSpot-RateLimit-" + name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        # the list backfill has several requests in flight: their answers arrive in any order
        self.usage.note_quota(number("Daily"), number("Daily-Remaining"), sent_at=sent_at,
                              arrived_at=time.monotonic())
        burst = number("Remaining")
        if burst is not None:
            self.usage.burst_remaining = burst
        if self.general is not None:
            interval = number("Interval-Milliseconds")
            self.general.update(number("Max"), interval / 1000 if interval else None)
        self.usage.observed_at = dt.datetime.now(dt.UTC)


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name) or headers.get(name.lower())
    return str(value) if value is not None else None


def classify(operation: str, status: int, body: Any, headers: Any) -> Exception:
    """HTTP status + HubSpot error body -> base.py's taxonomy (no payload in the message)."""
    info: dict[str, Any] = {}
    if body:
        try:
            parsed = orjson.loads(body)
            info = parsed if isinstance(parsed, dict) else {}
        except (orjson.JSONDecodeError, TypeError):
            info = {}
    category = info.get("category") or info.get("errorType") or ""
    where = f"hubspot {operation}: HTTP {status}" + (f" {category}" if category else "")
    if status == 429:
        policy = str(info.get("policyName") or "")
        if policy == "DAILY":
            return BudgetExhausted(f"{where} DAILY limit reached")
        retry_after = _header(headers, "Retry-After")
        if retry_after is not None:
            wait = float(retry_after)
        elif policy == "SECONDLY":
            wait = 1.0
        else:
            interval = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
            wait = min(float(interval) / 1000 if interval else 10.0, 2.0)
        return RateLimitedError(f"{where} {policy}".rstrip(), status=status, retry_after=wait)
    if status in (401, 403):
        return AuthError(where, status=status)
    if status >= 500 or status in (408, 0):
        return RetriableError(where, status=status)
    sub = info.get("subCategory")
    return FatalError(where + (f" ({sub})" if sub else ""), status=status)
