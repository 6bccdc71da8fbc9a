"""The official Meteroid OpenAPI spec, patched in memory so a strict validator can use it.

Every tagged union in the spec (``Pricing``, ``Fee``, ``SubscriptionFee``, ``PriceEntry``,
``CouponDiscount``...) names a ``type`` discriminator, but the variant schemas do not declare
``type``, so ``oneOf`` cannot tell some variants apart (ONE_TIME vs EXTRA_RECURRING pricing).
``patched_spec`` makes each variant require ``type`` as a one-value enum (its tag), and drops the
server list so any loopback host matches. ``HttpxOpenAPIRequest``/``HttpxOpenAPIResponse`` adapt
httpx objects to openapi-core's protocols.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

import httpx

from crmsync.sandbox.openapi import HttpxOpenAPIRequest, HttpxOpenAPIResponse

# The specs live in ../shared/specs beside the repository (override with CRMSYNC_SPECS_DIR).
_SPECS_DIR = Path(os.environ.get("CRMSYNC_SPECS_DIR", Path(__file__).resolve().parents[4].parent / "shared" / "specs"))
DEFAULT_SPEC_PATH = Path(os.environ.get("CRMSYNC_METEROID_SPEC", _SPECS_DIR / "meteroid" / "openapi.json"))


def patch_tagged_unions(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` whose discriminated variants require their ``type`` tag."""
    out = copy.deepcopy(spec)
    schemas = out["components"]["schemas"]
    tags: dict[str, dict[str, set[str]]] = {}
    for schema in schemas.values():
        disc = schema.get("discriminator")
        if not disc:
            continue
        prop = disc["propertyName"]
        for tag, ref in disc.get("mapping", {}).items():
            tags.setdefault(ref.rsplit("/", 1)[-1], {}).setdefault(prop, set()).add(tag)
    for name, props in tags.items():
        variant = schemas[name]
        for prop, values in props.items():
            variant.setdefault("properties", {})[prop] = {"type": "string", "enum": sorted(values)}
            required = variant.setdefault("required", [])
            if prop not in required:
                required.append(prop)
            variant.setdefault("type", "object")
    out["servers"] = [{"url": "/"}]
    return out


@functools.lru_cache(maxsize=2)
def patched_spec(path: str = str(DEFAULT_SPEC_PATH)) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return patch_tagged_unions(json.load(fh))


def openapi(path: str = str(DEFAULT_SPEC_PATH)) -> Any:
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(copy.deepcopy(patched_spec(path)))


def validate_exchange(api: Any, response: httpx.Response) -> None:
    """Validate one request/response pair against the patched spec; raises on a mismatch."""
    api.validate_response(HttpxOpenAPIRequest(response.request), HttpxOpenAPIResponse(response))


def validate_request(api: Any, request: httpx.Request) -> None:
    api.validate_request(HttpxOpenAPIRequest(request))
