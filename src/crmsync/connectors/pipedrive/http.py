"""Pipedrive's HTTP edge: one call function with retries, usage tracking and error classification.

The api token travels only in the ``x-api-token`` header, never in a URL, so it cannot leak into
logs or exception messages (which name the method and the path template, never the query).
Every answer's ``x-ratelimit-*`` and ``x-daily-ratelimit-token-*`` headers are read into
``usage``. tenacity retries only ``RetriableError`` (429 burst, 5xx, timeouts, truncated bodies),
waiting ``Retry-After`` (or ``x-ratelimit-reset``) when the server says so; a spent daily token
budget raises ``BudgetExhausted`` at once instead of sleeping until midnight.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import httpx
import msgspec
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from crmsync.connectors.backoff import retry_wait
from crmsync.connectors.base import (
    AuthError,
    BudgetExhausted,
    FatalError,
    RateLimitedError,
    RetriableError,
    Usage,
)
from crmsync.connectors.exchange import send
from crmsync.connectors.ratelimit import RollingLimiter, shared
from crmsync.connectors.wire import decode_body, encode_body

DEFAULT_BASE_URL = "https://api.pipedrive.com"
# Burst limits count requests per token in a rolling 2-second window (pipedrive.readme.io
# "core-api-concepts-rate-limiting"); the limit itself is read from ``x-ratelimit-limit``.
BURST_WINDOW_S = 2.0
_NUMERIC = re.compile(r"/\d+(?=/|$)")


class NotFoundError(FatalError):
    """404: the record does not exist (or is not visible to this token)."""


class _Envelope(msgspec.Struct):
    """Pipedrive's answer envelope without its ``data``: msgspec checks the whole document's syntax
    but builds no objects for the records (a fraction of a full decode)."""

    success: Any = None
    additional_data: Any = None
    error: Any = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class RawPage(NamedTuple):
    """A list answer as it came (``content``, checked JSON), the server time it was read at and its
    ``next_cursor``: enough to request the next page before this one is decoded."""

    content: bytes
    read_at: float
    next_cursor: str | None


def path_template(path: str) -> str:
    return _NUMERIC.sub("/{id}", path)


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None


class PipedriveHttp:
    """``request(method, path, params, json) -> dict`` over one pooled httpx client."""

    def __init__(self, base_url: str, token: str, *, verify: Any = True, timeout: float = 30.0,
                 max_attempts: int = 5, max_wait_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None,
                 pace: bool = True) -> None:
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, verify=verify, transport=transport,
            headers={"x-api-token": token, "accept": "application/json", "user-agent": "crmsync/0.1"},
        )
        self.usage = Usage()
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._burst_reset_at: float | None = None
        # one burst limiter per token in this process, shared by every connector and thread using
        # it; unlimited until an answer's x-ratelimit-limit says what the limit is
        fingerprint = hashlib.sha256(token.encode()).hexdigest()[:12]
        self.burst: RollingLimiter | None = shared(("pipedrive", base_url.rstrip("/"), fingerprint, "burst"),
                                                   None, BURST_WINDOW_S) if pace else None

    def close(self) -> None:
        self.client.close()

    # --- one call ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request_timed(method, path, params=params, body=body)[0]

    def request_timed(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], float]:
        """``request`` plus a lower bound of the server time the answer was read at (``Date``)."""
        retrying = Retrying(
            retry=retry_if_exception_type(RetriableError), stop=stop_after_attempt(self.max_attempts),
            wait=self._wait, sleep=self._sleep, reraise=True,
        )
        for attempt in retrying:
            with attempt:
                response, read_at, where = self._once(method, path, params, body)
                return self._classify(where, response), read_at
        raise AssertionError("unreachable")  # pragma: no cover

    def request_page(self, path: str, *, params: Mapping[str, Any] | None = None) -> RawPage:
        """A GET of a cursor-paged list, checked like ``request`` (status, JSON, ``success``) but left
        undecoded: the caller decodes ``content`` (``wire.decode_body``) while the next page is fetched."""
        retrying = Retrying(
            retry=retry_if_exception_type(RetriableError), stop=stop_after_attempt(self.max_attempts),
            wait=self._wait, sleep=self._sleep, reraise=True,
        )
        for attempt in retrying:
            with attempt:
                response, read_at, where = self._once("GET", path, params, None)
                self._check_status(where, response)
                try:
                    envelope = _ENVELOPE.decode(response.content)
                except msgspec.ValidationError:  # JSON, but not an object: not Pipedrive's envelope
                    envelope = None
                except (msgspec.DecodeError, ValueError):
                    raise RetriableError(f"{where}: truncated or invalid JSON body",
                                         status=response.status_code) from None
                if envelope is None or envelope.success is False:
                    raise FatalError(f"{where}: unexpected answer ({_error_message(response)})",
                                     status=response.status_code)
                extra = envelope.additional_data
                cursor = extra.get("next_cursor") if isinstance(extra, dict) else None
                return RawPage(response.content, read_at, str(cursor) if cursor else None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        return retry_wait(state, initial=0.5, max_wait_s=self.max_wait_s)

    def _throttle(self) -> None:
        """The burst window is spent: wait for its reset instead of collecting a 429."""
        if self._burst_reset_at is None:
            return
        delay = self._burst_reset_at - time.monotonic()
        self._burst_reset_at = None
        if delay > 0:
            self._sleep(min(delay, self.max_wait_s))

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None,
              body: Mapping[str, Any] | None) -> tuple[httpx.Response, float, str]:
        where = f"{method} {path_template(path)}"
        self._throttle()
        if self.burst is not None:
            self.burst.acquire()
        content = encode_body(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        sent_at = time.monotonic()
        try:
            response, read_at = send(self.client, method, path, where=where, params=params, content=content,
                                     headers=headers)
        finally:
            if self.burst is not None:
                self.burst.release()
        self._observe(response, sent_at=sent_at)
        return response, read_at, where

    def _observe(self, response: httpx.Response, *, sent_at: float) -> None:
        headers = response.headers
        usage = self.usage
        usage.calls += 1
        usage.observed_at = dt.datetime.now(dt.UTC)
        usage.note_server_date(headers.get("date"))
        # several windowed chains' answers update the daily budget, in any order
        usage.note_quota(_header_int(headers, "x-daily-ratelimit-token-limit"),
                         _header_int(headers, "x-daily-ratelimit-token-remaining"),
                         sent_at=sent_at, arrived_at=time.monotonic())
        if self.burst is not None:
            self.burst.update(_header_int(headers, "x-ratelimit-limit"))
        burst = _header_int(headers, "x-ratelimit-remaining")
        if burst is not None:
            usage.burst_remaining = burst
            reset = _header_int(headers, "x-ratelimit-reset")
            if burst <= 0 and reset is not None and not self._own_requests_fill(headers):
                self._burst_reset_at = time.monotonic() + reset

    def _own_requests_fill(self, headers: httpx.Headers) -> bool:
        """True when the burst window the server reports spent holds no more requests than our own
        limiter does: then the limiter already waits exactly as long as needed, while the header's
        reset (whole seconds, rounded up) would stall every chain up to a second longer. A window
        spent beyond what we hold means another client shares the token: then its reset is kept."""
        limit = _header_int(headers, "x-ratelimit-limit")
        if self.burst is None or self.burst.limit is None or limit is None:
            return False
        counted = limit - max(0, _header_int(headers, "x-ratelimit-remaining") or 0)
        return self.burst.held() >= counted

    def _classify(self, where: str, response: httpx.Response) -> dict[str, Any]:
        self._check_status(where, response)
        status = response.status_code
        try:
            data = decode_body(response.content)
        except (msgspec.DecodeError, ValueError):
            raise RetriableError(f"{where}: truncated or invalid JSON body", status=status) from None
        if not isinstance(data, dict) or data.get("success") is False:
            raise FatalError(f"{where}: unexpected answer ({_error_message(response)})", status=status)
        return data

    def _check_status(self, where: str, response: httpx.Response) -> None:
        """Raise the error an answer's status means (429, 5xx, 401, 404, other 4xx)."""
        status = response.status_code
        if status == 429:
            retry_after = _header_int(response.headers, "retry-after")
            if retry_after is None:
                retry_after = _header_int(response.headers, "x-ratelimit-reset")
            if self.usage.remaining is not None and self.usage.remaining <= 0:
                raise BudgetExhausted(f"{where}: daily token budget spent (resets in {retry_after}s)")
            if retry_after is not None and retry_after > self.max_wait_s:
                raise BudgetExhausted(f"{where}: rate limited for {retry_after}s, longer than this run waits")
            raise RateLimitedError(f"{where}: 429 rate limited", status=429,
                                   retry_after=float(retry_after) if retry_after is not None else None)
        if status >= 500:
            raise RetriableError(f"{where}: server error {status}", status=status)
        if status == 401:
            raise AuthError(f"{where}: 401 {_error_message(response)}", status=401)
        if status == 404:
            raise NotFoundError(f"{where}: 404 {_error_message(response)}", status=404)
        if status >= 400:
            raise FatalError(f"{where}: {status} {_error_message(response)}", status=status)


def _error_message(response: httpx.Response) -> str:
    """The ``error`` text of Pipedrive's envelope, cut short; never the request or the token."""
    try:
        data = response.json()
    except ValueError:
        return "(no JSON body)"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"][:200]
    return "(no error message)"
