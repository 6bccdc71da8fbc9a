"""httpx exchanges in the shape openapi-core validates (its Request and Response protocols).

Used to check the simulators against the official specs in ``../shared/specs``. ``host_url``
defaults to the request's scheme and host; pass the spec's server base when its server URL
carries a path prefix (Pipedrive's ``/api/v2``).
"""

from __future__ import annotations

from typing import Any

import httpx


class HttpxOpenAPIRequest:
    """openapi-core's ``Request`` protocol over an ``httpx.Request``."""

    def __init__(self, request: httpx.Request, host_url: str | None = None) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self._request = request
        self._host_url = host_url or f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.parameters = RequestParameters(query=ImmutableMultiDict(list(request.url.params.multi_items())),
                                            header=Headers(dict(request.headers)), cookie=ImmutableMultiDict(),
                                            path={})

    @property
    def host_url(self) -> str:
        return self._host_url

    @property
    def path(self) -> str:
        return self._request.url.path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self._request.content or None

    @property
    def content_type(self) -> str:
        return self._request.headers.get("content-type", "application/json")


class HttpxOpenAPIResponse:
    """openapi-core's ``Response`` protocol over an ``httpx.Response``."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return self._response.headers.get("content-type", "application/json").lower()

    @property
    def headers(self) -> Any:
        from werkzeug.datastructures import Headers

        return Headers(dict(self._response.headers))

    @property
    def data(self) -> bytes | None:
        return self._response.content
