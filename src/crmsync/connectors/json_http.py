"""The retry and answer ladder the JSON connectors share (Outreach, Apollo, SalesLoft, Gong).

One request is: send (``connectors.exchange``), read the usage headers (the connector's own),
then this ladder: 429 is ``RateLimitedError`` with the server's wait, or ``BudgetExhausted`` when
that wait is longer than the run waits; 5xx is ``RetriableError``; 401/403 ``AuthError``; a status
the connector names gets its own error class; any other 4xx is ``FatalError``; a 2xx body that does
not decode to a JSON object (cut off mid-transfer, a proxy's HTML) is retriable. Messages carry the
method and path template and the API's own error text, never a query, body or credential.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import httpx
import msgspec
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from crmsync.connectors.backoff import retry_wait
from crmsync.connectors.base import AuthError, BudgetExhausted, FatalError, RateLimitedError, RetriableError
from crmsync.connectors.wire import decode_body

T = TypeVar("T")


def with_retries(call: Callable[[], T], *, attempts: int, max_wait_s: float, sleep: Callable[[float], None],
                 retry_on: type[Exception] = RetriableError) -> T:
    """``call()`` retried on ``retry_on`` with the shared wait policy (the server's wait first)."""

    def wait(state: RetryCallState) -> float:
        return retry_wait(state, initial=0.5, max_wait_s=max_wait_s)

    retrying = Retrying(retry=retry_if_exception_type(retry_on), stop=stop_after_attempt(attempts), wait=wait,
                        sleep=sleep, reraise=True)
    for attempt in retrying:
        with attempt:
            return call()
    raise AssertionError("unreachable")  # pragma: no cover


def seconds(raw: str | None) -> float | None:
    """A ``Retry-After`` (or reset) header in seconds; ``None`` when absent or not a number."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def rate_limited(where: str, retry_after: float | None, *, max_wait_s: float, hint: str = "") -> NoReturn:
    """Raise for a 429: wait and retry, or stop the run when the wait is longer than it waits."""
    if retry_after is not None and retry_after > max_wait_s:
        raise BudgetExhausted(f"{where}: rate limited for {retry_after:g}s{hint}, longer than this run waits")
    raise RateLimitedError(f"{where}: 429 rate limited", status=429, retry_after=retry_after)


def refuse(where: str, response: httpx.Response, *, detail: Callable[[httpx.Response], str],
           auth_hint: str = "", auth_detail: bool = False, named: Mapping[int, type[FatalError]] | None = None,
           auth_statuses: tuple[int, ...] = (401, 403)) -> None:
    """Raise for a 5xx or 4xx answer (429 is the caller's: its wait headers differ per API).

    A refused credential says ``auth_hint`` (what to check), after the API's text if ``auth_detail``."""
    status = response.status_code
    if status >= 500:
        raise RetriableError(f"{where}: server error {status}", status=status)
    if status in auth_statuses:
        said = f"{detail(response)} " if auth_detail else ""
        raise AuthError(f"{where}: {status} {said}{auth_hint}".rstrip(), status=status)
    if named and status in named:
        raise named[status](f"{where}: {status} {detail(response)}", status=status)
    if status >= 400:
        raise FatalError(f"{where}: {status} {detail(response)}", status=status)


def json_object(where: str, response: httpx.Response, *, member: str | None = None) -> dict[str, Any]:
    """The answer's JSON object (with ``member`` in it when given); anything else is retriable."""
    status = response.status_code
    try:
        data = decode_body(response.content)
    except (msgspec.DecodeError, ValueError):
        raise RetriableError(f"{where}: truncated or invalid JSON body", status=status) from None
    if not isinstance(data, dict):
        raise RetriableError(f"{where}: unexpected answer (not a JSON object)", status=status)
    if member is not None and member not in data:
        raise RetriableError(f"{where}: answer without a {member} member", status=status)
    return data


def error_text(response: httpx.Response, *keys: str) -> str:
    """The API's error message under the first of ``keys`` that has one, cut short."""
    try:
        data = response.json()
    except ValueError:
        return "(no JSON body)"
    if not isinstance(data, dict):
        return "(no error message)"
    for key in keys:
        value = data.get(key)
        if isinstance(value, list) and value:
            return "; ".join(str(v) for v in value)[:200]
        if value:
            return str(value)[:200]
    return "(no error message)"
