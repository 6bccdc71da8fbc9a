"""One HTTP exchange for the httpx-based connectors (Pipedrive, Outreach, Apollo, SalesLoft, Gong).

Timeouts and transport errors become ``RetriableError`` named by the request's ``where`` (method and
path template: no ids, no query values); the answer comes with the server's read time (its ``Date``
minus the round trip, ``connectors.server_time``), which the cursors judge settledness by.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from crmsync.connectors.base import RetriableError
from crmsync.connectors.server_time import server_read_time


def send(client: httpx.Client, method: str, url: str, *, where: str, params: Mapping[str, Any] | None = None,
         content: bytes | None = None, headers: Mapping[str, str] | None = None) -> tuple[httpx.Response, float]:
    """``(response, server read time)``; raises ``RetriableError`` when no answer came."""
    sent_at, started = time.time(), time.monotonic()
    try:
        response = client.request(method, url, params=dict(params) if params else None, content=content,
                                  headers=headers)
    except httpx.TimeoutException as exc:
        raise RetriableError(f"{where}: timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise RetriableError(f"{where}: transport error ({type(exc).__name__})") from None
    return response, server_read_time(response.headers.get("date"), time.monotonic() - started, sent_at)
