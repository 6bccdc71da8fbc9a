"""Outreach's HTTP edge: OAuth2 bearer tokens, JSON:API media type, rate-limit headers, retries.

- Every request carries ``Authorization: Bearer <access token>`` and ``Accept``/``Content-Type:
  application/vnd.api+json`` (Outreach answers 415 to a body without it). The access token comes from
  ``POST /oauth/token`` with the refresh-token grant (client id, secret, refresh token), or is given
  as ``credentials.access_token``; a 401 refreshes it once. Tokens never appear in messages.
- ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (epoch seconds) are read on every answer into
  ``usage``; at ``Remaining: 0`` the next call waits for the reset (bounded) instead of collecting a 429.
- tenacity retries ``RetriableError`` (429, 5xx, timeouts, cut-off bodies) with the shared wait policy
  (``Retry-After`` first); a wait longer than ``max_wait_s`` is ``BudgetExhausted`` (stop, resume later).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from crmsync.connectors.base import (
    AuthError,
    BudgetExhausted,
    FatalError,
    RateLimitedError,
    RetriableError,
    Usage,
)
from crmsync.connectors.exchange import send
from crmsync.connectors.json_http import json_object, rate_limited, refuse, seconds, with_retries
from crmsync.connectors.wire import encode_body

DEFAULT_BASE_URL = "https://api.outreach.io"
JSONAPI = "application/vnd.api+json"
_IDS = re.compile(r"/\d+(?=/|$)")


class NotFoundError(FatalError):
    pass


class ValidationError(FatalError):
    """422: Outreach refused the resource (the ``detail`` says why)."""


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name)
    try:
        return None if raw is None else int(float(raw))
    except ValueError:
        return None


class OutreachHttp:
    def __init__(self, base_url: str, *, access_token: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, refresh_token: str | None = None, verify: Any = True,
                 timeout: float = 30.0, max_attempts: int = 5, max_wait_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not access_token and not (client_id and client_secret and refresh_token):
            raise AuthError("outreach: credentials need access_token, or client_id + client_secret + refresh_token")
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout, verify=verify,
                                   headers={"accept": JSONAPI, "user-agent": "crmsync/0.1"})
        self._token = access_token
        self._oauth = (client_id, client_secret, refresh_token)
        self.usage = Usage()
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._reset_at: float | None = None

    def close(self) -> None:
        self.client.close()

    # --- OAuth ------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        client_id, secret, refresh = self._oauth
        if not (client_id and secret and refresh):
            raise AuthError("outreach: the access token was refused and there is no refresh token to renew it")
        try:
            response = self.client.post("/oauth/token", data={
                "client_id": client_id, "client_secret": secret, "refresh_token": refresh,
                "grant_type": "refresh_token"})
        except httpx.HTTPError as exc:
            raise RetriableError(f"POST /oauth/token: transport error ({type(exc).__name__})") from None
        if response.status_code >= 500:
            raise RetriableError(f"POST /oauth/token: server error {response.status_code}",
                                 status=response.status_code)
        if response.status_code != 200:
            raise AuthError(f"POST /oauth/token: {response.status_code} (client or refresh token refused)",
                            status=response.status_code)
        self._token = str(response.json()["access_token"])

    # --- one call ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], float]:
        """(JSON:API document, lower bound of the server time it was read at). ``path`` may be a
        ``links.next`` URL as the API gave it (its host is replaced by the configured base URL).

        A create (``POST`` other than a sequence-state action) is retried here only after a 429, which
        the server refused before doing anything; after a 5xx or a timeout it may have been done, so
        the error goes up and the outbox pushes the item again later, looking up before creating."""
        safe = method != "POST" or "/actions/" in path
        return with_retries(lambda: self._once(method, path, params, body), attempts=self.max_attempts,
                            max_wait_s=self.max_wait_s, sleep=self._sleep,
                            retry_on=RetriableError if safe else RateLimitedError)

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None,
              body: Mapping[str, Any] | None) -> tuple[dict[str, Any], float]:
        url = _relative(path)
        where = f"{method} {_IDS.sub('/{id}', url.split('?', 1)[0])}"
        if self._token is None:
            self._refresh()
        if self._reset_at is not None:
            delay, self._reset_at = self._reset_at - time.time(), None
            if delay > self.max_wait_s:
                raise BudgetExhausted(f"{where}: hourly rate limit spent (resets in {int(delay)}s)")
            if delay > 0:
                self._sleep(delay)
        content = encode_body(body) if body is not None else None
        for renewed in (False, True):
            headers = {"authorization": f"Bearer {self._token}"}
            if content is not None:
                headers["content-type"] = JSONAPI
            response, read_at = send(self.client, method, url, where=where, params=params, content=content,
                                     headers=headers)
            self._observe(response)
            if response.status_code == 401 and not renewed:
                self._refresh()
                continue
            return self._classify(where, response), read_at
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe(self, response: httpx.Response) -> None:
        headers, usage = response.headers, self.usage
        usage.calls += 1
        usage.observed_at = dt.datetime.now(dt.UTC)
        usage.note_server_date(headers.get("date"))
        limit = _header_int(headers, "x-ratelimit-limit")
        remaining = _header_int(headers, "x-ratelimit-remaining")
        if limit is not None:
            usage.limit = limit
        if remaining is not None:
            usage.remaining = remaining
            usage.burst_remaining = remaining
        if usage.limit is not None and usage.remaining is not None:
            usage.used = usage.limit - usage.remaining
        reset = _header_int(headers, "x-ratelimit-reset")
        if remaining is not None and remaining <= 0 and reset is not None:
            self._reset_at = float(reset)

    def _classify(self, where: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            retry_after = seconds(response.headers.get("retry-after"))
            if retry_after is None:
                reset = _header_int(response.headers, "x-ratelimit-reset")
                retry_after = None if reset is None else float(max(1, int(reset - time.time())))
            rate_limited(where, retry_after, max_wait_s=self.max_wait_s)
        refuse(where, response, detail=_detail, auth_detail=True, auth_statuses=(401,),
               named={404: NotFoundError, 422: ValidationError})
        if status == 204:
            return {}
        return json_object(where, response, member="data")


def _relative(path: str) -> str:
    """A ``links.next`` URL (absolute, on Outreach's host) as a path on the configured base URL."""
    if path.startswith(("http://", "https://")):
        rest = path.split("://", 1)[1]
        return "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return path


def _detail(response: httpx.Response) -> str:
    """The first JSON:API error's id and detail, cut short; never the request or the token."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return "(no JSON body)"
    if errors and isinstance(errors[0], dict):
        first = errors[0]
        return f"{first.get('id', '')}: {str(first.get('detail') or first.get('title') or '')[:200]}"
    return "(no error detail)"
