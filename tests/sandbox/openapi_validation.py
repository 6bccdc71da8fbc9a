"""Validate one HTTP exchange against an official OpenAPI spec in ../shared/specs beside the repository (openapi-core).

    validate_exchange("hubspot/deals.v3.json", request, response)

``request``/``response`` are ``httpx.Request``/``httpx.Response``. The request is matched against
the spec's first server URL whatever host it was sent to (the sandbox runs on loopback).
Raises openapi-core's validation errors; returns nothing.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import httpx
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SPECS_DIR = Path(os.environ.get("CRMSYNC_SPECS_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "specs"))


@functools.cache
def load_spec(spec_name: str) -> tuple[OpenAPI, str]:
    path = SPECS_DIR / spec_name
    if not path.exists() and not spec_name.endswith((".json", ".yml", ".yaml")):
        path = SPECS_DIR / f"{spec_name}.json"
    openapi = OpenAPI.from_file_path(str(path))
    if path.suffix == ".json":
        servers = json.loads(path.read_text()).get("servers") or [{"url": ""}]
    else:
        import yaml

        servers = (yaml.safe_load(path.read_text()) or {}).get("servers") or [{"url": ""}]
    return openapi, str(servers[0]["url"]).rstrip("/")


def _mock_request(server: str, request: httpx.Request) -> MockRequest:
    args: dict[str, Any] = {}
    for key, value in request.url.params.multi_items():
        args.setdefault(key, []).append(value)
    flat = {k: (v if len(v) > 1 else v[0]) for k, v in args.items()}
    from werkzeug.datastructures import ImmutableMultiDict

    body = request.content or None
    return MockRequest(server, request.method.lower(), request.url.path,
                       args=ImmutableMultiDict([(k, x) for k, v in args.items() for x in v]) if flat else None,
                       headers=dict(request.headers), data=body,
                       content_type=request.headers.get("content-type", "application/json").split(";")[0])


def validate_exchange(spec_name: str, request: httpx.Request, response: httpx.Response) -> None:
    """Raise if the request or the response does not match the spec's operation."""
    openapi, server = load_spec(spec_name)
    mock_request = _mock_request(server, request)
    openapi.validate_request(mock_request)
    content_type = response.headers.get("content-type", "application/json").split(";")[0]
    mock_response = MockResponse(response.content or b"", status_code=response.status_code,
                                 headers=dict(response.headers), content_type=content_type)
    openapi.validate_response(mock_request, mock_response)
