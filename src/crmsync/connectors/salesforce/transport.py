"""The HTTP edge: a requests Session that authenticates, retries and classifies.

simple-salesforce (and its Bulk 2.0 client) send every call through ``session.request``; this
Session puts the current session id on each call, re-logs in once on ``INVALID_SESSION_ID``,
retries 429/5xx/timeouts with tenacity (honouring ``Retry-After``), reads ``Sforce-Limit-Info``
into ``usage`` after every answer, and turns refusals into the connector error taxonomy.
Messages carry the method, path and Salesforce's error code, never headers, tokens or bodies.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import orjson
import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from crmsync.connectors.backoff import retry_wait
from crmsync.connectors.base import (
    AuthError,
    BudgetExhausted,
    FatalError,
    RateLimitedError,
    RetriableError,
    Usage,
)
from crmsync.connectors.server_time import ReadTimes

TOKEN_PATH = "/services/oauth2/token"
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
RETRY_STATUSES = frozenset({500, 502, 503, 504})

#: JSON as Salesforce writes it, non-integers as Decimal (money stays exact), objects as plain dicts
EXACT_JSON = msgspec.json.Decoder(float_hook=Decimal)


class NotFoundError(FatalError):
    """404: a record, job or resource that does not (or no longer) exist."""


def refusal(method: str, path: str, response: requests.Response) -> FatalError:
    """A 4xx that is neither retried nor an auth or quota stop, in the connector taxonomy."""
    status = response.status_code
    code, message = error_code(response)
    kind = NotFoundError if status == 404 else FatalError
    return kind(f"Salesforce {status} {code}: {message}".strip(), status=status)


Login = Callable[["SalesforceSession"], tuple[str, str]]


def error_code(response: requests.Response) -> tuple[str, str]:
    """(errorCode, message) from Salesforce's JSON array error body, best effort."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode", "")), str(body[0].get("message", ""))[:200]
    if isinstance(body, dict):
        return str(body.get("error", body.get("errorCode", ""))), str(body.get("error_description", ""))[:200]
    return "", ""


def _is_json(response: requests.Response) -> bool:
    return "json" in response.headers.get("Content-Type", "").lower() and bool(response.content)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class SalesforceSession(requests.Session):
    def __init__(self, *, ca_bundle: Path | str | None = None, usage: Usage | None = None,
                 max_attempts: int = 5, max_wait_s: float = 60.0, timeout_s: float = 60.0) -> None:
        super().__init__()
        # An explicit CA wins over REQUESTS_CA_BUNDLE (requests lets the environment override .verify).
        self.ca_verify: str | bool = str(ca_bundle) if ca_bundle else True
        self.verify = self.ca_verify
        self.usage = usage or Usage()
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self.access_token: str | None = None
        self.instance_url: str | None = None
        self.user_id: str | None = None  # the API user (from the OAuth identity URL), when known
        self._login: Login | None = None
        self.logins = 0
        self.read_times = ReadTimes()  # server read time of each answer, per thread

    def authenticate(self, login: Login | None, token: str | None = None, instance_url: str | None = None) -> None:
        """Use a fixed session id, or log in now (and again whenever the session expires)."""
        self._login = login
        if login is not None:
            self.relogin()
        else:
            self.access_token, self.instance_url = token, instance_url

    def relogin(self) -> None:
        if self._login is None:
            raise AuthError("session expired and no login credentials are configured", status=401)
        self.access_token, self.instance_url = self._login(self)
        self.logins += 1

    def _wait(self, state: RetryCallState) -> float:
        return retry_wait(state, initial=0.5, max_wait_s=self.max_wait_s)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        retrying = Retrying(retry=retry_if_exception_type(RetriableError), stop=stop_after_attempt(self.max_attempts),
                            wait=self._wait, reraise=True)
        method_s = method.decode() if isinstance(method, bytes) else method
        url_s = url.decode() if isinstance(url, bytes) else url
        for attempt in retrying:
            with attempt:
                return self._once(method_s, url_s, args, dict(kwargs))
        raise AssertionError("unreachable")  # pragma: no cover

    def call_json(self, method: str, url: str, *, params: dict[str, Any] | None = None,
                  body: bytes | None = None, decoder: msgspec.json.Decoder[Any] | None = None) -> Any:
        """One JSON call decoded inside the retries (``EXACT_JSON``; a body cut short or undecodable
        is retried like a 5xx); a refusal raises ``refusal``. The body is decoded once, straight
        from the bytes, into plain dicts: no second parse, no ``OrderedDict`` per record."""
        retrying = Retrying(retry=retry_if_exception_type(RetriableError), stop=stop_after_attempt(self.max_attempts),
                            wait=self._wait, reraise=True)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        path = urlsplit(url).path
        for attempt in retrying:
            with attempt:
                response = self._once(method, url, (), {"params": params, "data": body, "headers": headers,
                                                        "stream": True})
                with response:
                    try:
                        content = response.content
                    except requests.RequestException:
                        raise RetriableError(f"{method} {path}: body cut short") from None
                    if response.status_code >= 300:
                        raise refusal(method, path, response)
                    if not content:
                        return None
                    try:
                        return (decoder or EXACT_JSON).decode(content)
                    except msgspec.DecodeError:
                        raise RetriableError(f"{method} {path}: {response.status_code} with a truncated or "
                                             "invalid JSON body", status=response.status_code) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, method: str, url: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> requests.Response:
        path = urlsplit(url).path
        is_token = path.endswith(TOKEN_PATH)
        kwargs.setdefault("timeout", self.timeout_s)
        kwargs["verify"] = self.ca_verify
        relogged = False
        while True:
            headers = dict(kwargs.get("headers") or {})
            if not is_token and self.access_token:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                headers["Authorization"] = f"Bearer {self.access_token}"
            sent_at, started = time.time(), time.monotonic()
            try:
                response = super().request(method, url, *args, **{**kwargs, "headers": headers})
            except requests.Timeout:
                raise RetriableError(f"{method} {path}: timed out") from None
            except requests.ConnectionError:
                raise RetriableError(f"{method} {path}: connection failed") from None
            self.usage.calls += 1
            self.read_times.note(response.headers.get("Date"), time.monotonic() - started, sent_at)
            self._read_usage(response, sent_at=started)
            status = response.status_code
            if status == 401 and not is_token:
                code, _ = error_code(response)
                if code == "INVALID_SESSION_ID" and self._login is not None and not relogged:
                    self.relogin()
                    relogged = True
                    continue
                raise AuthError(f"{method} {path}: 401 {code or 'unauthorized'}", status=401)
            break
        if status == 429:
            raise RateLimitedError(f"{method} {path}: 429 rate limited", status=429, retry_after=_retry_after(response))
        if status in RETRY_STATUSES:
            code, _ = error_code(response)
            raise RetriableError(f"{method} {path}: {status} {code}".rstrip(), status=status,
                                 retry_after=_retry_after(response))
        if status == 403:
            code, message = error_code(response)
            if code == "REQUEST_LIMIT_EXCEEDED":
                raise BudgetExhausted(f"{method} {path}: daily API limit exceeded ({message})")
        if 200 <= status < 300 and not kwargs.get("stream") and _is_json(response):
            # simple-salesforce parses the body after this returns, outside the retries: a body cut
            # short would escape as a bare JSONDecodeError, so it is checked (and retried) here
            try:
                orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise RetriableError(f"{method} {path}: {status} with a truncated or invalid JSON body",
                                     status=status) from None
        return response

    def _read_usage(self, response: requests.Response, *, sent_at: float) -> None:
        self.usage.note_server_date(response.headers.get("Date"))
        info = response.headers.get("Sforce-Limit-Info")
        if not info:
            return
        match = _USAGE.search(info)
        if match:
            used, limit = int(match.group(1)), int(match.group(2))
            # parallel result downloads answer in any order: a late answer must not lower ``used``
            self.usage.note_quota(limit, max(0, limit - used), sent_at=sent_at, arrived_at=time.monotonic())
            self.usage.observed_at = dt.datetime.now(dt.UTC)
