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
import re
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


# --- requests crmsync sends, as the simulators captured them ------------------------------------
_HUBSPOT_GENERIC = re.compile(r"^/crm/v3/objects/(deals|companies|contacts|tasks|notes)(?=/|$)")
_BOOLEAN_SPELLINGS = {"True", "False", "TRUE", "FALSE"}  # Python-style spellings of a boolean


def spec_of_request(system: str, path: str) -> tuple[str | None, str]:
    """(spec file, path as the spec names it) for a request crmsync sent to ``system``.

    HubSpot's specs cover deals (as object type ``0-3``), line items, products, owners, pipelines
    and associations; companies, contacts, tasks and notes are the same generic CRM objects API
    and are checked against the deals spec. The SDK asks for owners at ``/crm/v3/owners/`` (with
    a slash), which the API serves as ``/crm/v3/owners``. Salesforce publishes no OpenAPI spec.
    """
    if system == "hubspot":
        if path.startswith("/crm/v4/"):
            return "hubspot/associations.v4.json", path
        if path.startswith("/crm/v3/owners"):
            return "hubspot/owners.v3.json", "/crm/v3/owners" if path == "/crm/v3/owners/" else path
        if path.startswith("/crm/v3/pipelines"):
            return "hubspot/pipelines.v3.json", path
        if path.startswith("/crm/v3/objects/line_items"):
            return "hubspot/line_items.v3.json", path
        if path.startswith("/crm/v3/objects/products"):
            return "hubspot/products.v3.json", path
        return "hubspot/deals.v3.json", _HUBSPOT_GENERIC.sub("/crm/v3/objects/0-3", path)
    if system == "pipedrive":
        return ("pipedrive/openapi-v2.yml" if path.startswith("/api/v2/") else "pipedrive/openapi-v1.yml"), path
    if system == "meteroid":
        return "meteroid/openapi.json", path
    return None, path


def _as_spec_body(system: str, path: str, body: bytes) -> bytes:
    """The one documented disagreement between a spec and its real API (docs/api-facts.md):
    HubSpot's spec types search ``sorts`` as strings, the API sorts only by objects
    ``{"propertyName", "direction"}`` (strings are ignored). Objects of that exact shape are
    checked, then handed to the spec validator in the spec's form."""
    if system != "hubspot" or not path.endswith("/search") or not body:
        return body
    data = json.loads(body)
    sorts = []
    for sort in data.get("sorts", []):
        if not (isinstance(sort, dict) and set(sort) == {"propertyName", "direction"}
                and sort["direction"] in ("ASCENDING", "DESCENDING")):
            raise AssertionError(f"search sort {sort!r} is not the API's {{propertyName, direction}} form")
        sorts.append(sort["propertyName"])
    data["sorts"] = sorts
    return json.dumps(data).encode()


def validate_client_request(system: str, method: str, path: str, query: str, headers: dict[str, str],
                            body: bytes) -> bool:
    """Raise if a request crmsync sent does not match the official spec; False when no spec covers it."""
    from urllib.parse import parse_qsl

    from werkzeug.datastructures import ImmutableMultiDict

    spec_name, spec_path = spec_of_request(system, path)
    if spec_name is None:
        return False
    args = parse_qsl(query, keep_blank_values=True)
    for key, value in args:
        if value in _BOOLEAN_SPELLINGS:
            raise AssertionError(f"{method} {path}: query {key}={value}: booleans are spelled true/false")
    openapi, server = load_spec(spec_name)
    content_type = headers.get("content-type", "application/json").split(";")[0]
    request = MockRequest(server, method.lower(), spec_path, args=ImmutableMultiDict(args) if args else None,
                          headers=headers, data=_as_spec_body(system, spec_path, body) or None,
                          content_type=content_type)
    openapi.validate_request(request)
    return True
