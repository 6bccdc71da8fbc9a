"""Gong's HTTP edge: Basic auth (access key + secret), retries, usage and error classification.

The credentials travel only in the ``Authorization`` header; messages name the method and path,
never a query, body or credential. 429 waits ``Retry-After`` (Gong sends it in seconds) and 5xx,
timeouts and truncated bodies back off; requests are paced to ``calls_per_second`` (3, Gong's
default) so a pass does not collect 429s in the first place; the 10,000-a-day company quota is counted per answer
(Gong sends no quota headers), and a 429 asking for longer than ``max_wait_s`` raises
``BudgetExhausted`` so a cycle stops cleanly instead of sleeping for hours. Gong answers a date
window without calls with 404; ``request`` returns ``None`` for it so callers read it as empty.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from crmsync.connectors.base import (
    Usage,
)
from crmsync.connectors.exchange import send
from crmsync.connectors.json_http import error_text, json_object, rate_limited, refuse, seconds, with_retries
from crmsync.connectors.wire import encode_body

DEFAULT_BASE_URL = "https://api.gong.io"
DAILY_LIMIT = 10_000


class GongHttp:
    def __init__(self, base_url: str, access_key: str, secret: str, *, verify: Any = True, timeout: float = 30.0,
                 max_attempts: int = 6, max_wait_s: float = 60.0, sleep: Callable[[float], None] = time.sleep,
                 daily_limit: int = DAILY_LIMIT, calls_per_second: float | None = 3.0) -> None:
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, verify=verify,
                                   auth=httpx.BasicAuth(access_key, secret),
                                   headers={"accept": "application/json", "user-agent": "crmsync/0.1"})
        self.usage = Usage(limit=daily_limit)
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._day: dt.date | None = None
        # pace requests to Gong's documented 3 calls per second instead of collecting 429s
        self._per_second = calls_per_second
        self._sent: deque[float] = deque()

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        return with_retries(lambda: self._once(method, path, params, body), attempts=self.max_attempts,
                            max_wait_s=self.max_wait_s, sleep=self._sleep)

    def _pace(self) -> None:
        if not self._per_second:
            return
        window = max(1, int(self._per_second))
        span = window / self._per_second
        now = time.monotonic()
        while self._sent and self._sent[0] <= now - span:
            self._sent.popleft()
        if len(self._sent) >= window:
            self._sleep(max(0.0, self._sent[0] + span - now))
            self._sent.popleft()

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None,
              body: Mapping[str, Any] | None) -> dict[str, Any] | None:
        where = f"{method} {path}"
        self._pace()
        content = encode_body(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            response, _read_at = send(self.client, method, path, where=where, params=params, content=content,
                                      headers=headers)
        finally:  # when the answer came: no earlier than the server counted the call
            self._sent.append(time.monotonic())
        self._observe(response)
        return self._classify(where, response)

    def _observe(self, response: httpx.Response) -> None:
        usage = self.usage
        now = dt.datetime.now(dt.UTC)
        if self._day != now.date():  # Gong's daily quota: counted per UTC day on this side
            self._day, usage.used = now.date(), 0
        usage.calls += 1
        usage.used = (usage.used or 0) + 1
        usage.remaining = None if usage.limit is None else max(0, usage.limit - usage.used)
        usage.observed_at = now
        usage.note_server_date(response.headers.get("date"))

    def _classify(self, where: str, response: httpx.Response) -> dict[str, Any] | None:
        status = response.status_code
        if status == 429:
            rate_limited(where, seconds(response.headers.get("retry-after")), max_wait_s=self.max_wait_s,
                         hint=" (the daily quota?)")
        if status == 404 and path_is_list(where):
            return None
        refuse(where, response, detail=lambda r: error_text(r, "errors"),
               auth_detail=True,
               auth_hint="(check credentials.access_key and access_key_secret)")
        return json_object(where, response)


def path_is_list(where: str) -> bool:
    return where.endswith(("/v2/calls", "/v2/calls/extensive"))

