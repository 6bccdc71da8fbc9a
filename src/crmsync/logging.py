"""structlog setup: console on a terminal, JSON elsewhere, contextvars, and secret redaction.

The redactor is the last processor before rendering: every configured secret value (tokens,
passwords, API keys) and any value under a secret-looking key is replaced with ``[REDACTED]``,
wherever it appears in the event, including inside nested structures and exception text.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, unbind_contextvars
from structlog.typing import EventDict, WrappedLogger

LogFormat = Literal["auto", "console", "json"]
REDACTED = "[REDACTED]"
SECRET_KEY_PATTERN = re.compile(r"(pass(word)?|secret|token|api[_-]?key|authorization|session[_-]?id|cookie)",
                                re.IGNORECASE)

__all__ = ["SecretRedactor", "bind", "clear", "configure_logging", "get_logger", "unbind"]

bind = bind_contextvars
unbind = unbind_contextvars
clear = clear_contextvars


class SecretRedactor:
    """A structlog processor that scrubs known secret values and secret-named keys."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if s and len(s) >= 4}  # tiny values would redact ordinary words
        self._secrets = sorted(set(self._secrets) | values, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: (REDACTED if isinstance(k, str) and SECRET_KEY_PATTERN.search(k) and v
                        else self.scrub(v)) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return type(value)(self.scrub(v) for v in value) if not isinstance(value, set) else {self.scrub(v) for v in value}
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        scrubbed: MutableMapping[str, Any] = {}
        for key, value in event_dict.items():
            if key != "event" and SECRET_KEY_PATTERN.search(key) and value:
                scrubbed[key] = REDACTED
            else:
                scrubbed[key] = self.scrub(value)
        return dict(scrubbed)


_redactor = SecretRedactor()


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at write time (test runners swap and close it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(fmt: LogFormat = "auto", *, secrets: Iterable[str] = (), level: str = "INFO",
                      stream: Any = None) -> SecretRedactor:
    """Configure structlog (and stdlib logging through it). Safe to call more than once."""
    stream = stream or _CurrentStderr()
    _redactor.add(secrets)
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=True) if fmt == "console"
                     else structlog.processors.JSONRenderer(sort_keys=False))
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _bound_errors,
        _redactor,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=stream, format="%(levelname)s %(name)s %(message)s")
    return _redactor


#: the longest traceback a log line keeps (``error`` fields keep ``crmsync.errors.MAX_ERROR_CHARS``)
MAX_TRACEBACK_CHARS = 20_000


def _bound_errors(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Error texts in a log line are bounded and carry no SQL or SQL parameters (record values)."""
    from crmsync.errors import MAX_ERROR_CHARS, strip_sql

    for key in ("error", "reason"):
        value = event.get(key)
        if isinstance(value, str) and (len(value) > MAX_ERROR_CHARS or "[SQL" in value or "[param" in value):
            event[key] = strip_sql(value)[:MAX_ERROR_CHARS]
    trace = event.get("exception")
    if isinstance(trace, str):
        event["exception"] = strip_sql(trace)[-MAX_TRACEBACK_CHARS:]
    return event


def redactor() -> SecretRedactor:
    return _redactor


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()
