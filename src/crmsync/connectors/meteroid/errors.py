"""Meteroid SDK/httpx failures mapped onto the connector error taxonomy (no payloads, no keys)."""

from __future__ import annotations

import meteroid

from crmsync.connectors.base import AuthError, ConnectorError, FatalError, RateLimitedError, RetriableError


class AlreadyExists(FatalError):
    """409 CONFLICT: e.g. the customer alias is taken (someone created it first)."""


class NotFound(FatalError):
    pass


class AmbiguousCreate(RetriableError):
    """A create whose outcome is unknown (timeout, dropped connection, 5xx): look up before retrying."""


def _retry_after(exc: meteroid.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify(exc: Exception, what: str, *, create: bool = False) -> ConnectorError:
    if isinstance(exc, meteroid.APIStatusError):
        status = exc.response.status_code
        code = ""
        try:
            body = exc.response.json()
            code = str(body.get("code", "")) if isinstance(body, dict) else ""
            message = str(body.get("message", ""))[:200] if isinstance(body, dict) else ""
        except ValueError:
            message = ""
        text = f"meteroid {what}: HTTP {status} {code} {message}".strip()
        if status in (401, 403):
            return AuthError(text, status=status)
        if status == 404:
            return NotFound(text, status=status)
        if status == 409:
            return AlreadyExists(text, status=status)
        if status == 429:
            return RateLimitedError(text, status=status, retry_after=_retry_after(exc))
        if status >= 500 or status == 408:
            if create:
                return AmbiguousCreate(text, status=status)
            return RetriableError(text, status=status, retry_after=_retry_after(exc))
        return FatalError(text, status=status)
    if isinstance(exc, meteroid.APIConnectionError | meteroid.APITimeoutError):
        text = f"meteroid {what}: {type(exc).__name__}"
        return AmbiguousCreate(text) if create else RetriableError(text)
    if isinstance(exc, meteroid.APIResponseValidationError):
        return FatalError(f"meteroid {what}: response did not match the SDK's schema")
    return FatalError(f"meteroid {what}: {type(exc).__name__}")
