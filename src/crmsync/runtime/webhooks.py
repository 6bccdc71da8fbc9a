"""Webhook authentication and parsing for HubSpot and Pipedrive (pure functions, no I/O).

HubSpot (v3 signature): ``X-HubSpot-Signature-v3`` is base64(HMAC-SHA256(app client secret,
method + uri + body + timestamp)) with the timestamp (epoch ms) from ``X-HubSpot-Request-Timestamp``;
requests older than five minutes are rejected (replay protection). The URI is the full URL HubSpot
called, with a documented set of percent-escapes decoded. The body is a JSON array of events
(``subscriptionType`` like ``deal.propertyChange``, ``objectId``, ``portalId``).

Pipedrive does not sign webhooks: the webhook is created with ``http_auth_user`` /
``http_auth_password`` and every delivery carries them as HTTP Basic credentials, compared here in
constant time. Bodies: v1 ``{"meta": {"object": "deal", "id": 1, ...}, "current": ...}`` and v2
``{"meta": {"entity": "deal", "entity_id": "1", ...}, "data": ...}``.

Secrets come from ``worker.webhook_secrets``: ``hubspot:<connection>`` (or ``hubspot`` for all
HubSpot connections) holds the app's client secret; ``pipedrive:<connection>`` (or ``pipedrive``)
holds ``user:password``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

MAX_AGE_MS = 5 * 60 * 1000
# Percent-escapes HubSpot decodes before signing the URI.
_HUBSPOT_URI_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
                       "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_HUBSPOT_OBJECTS = {"deal": "deal", "contact": "contact", "company": "account", "line_item": "line_item",
                    "product": "product", "task": "task"}
_PIPEDRIVE_OBJECTS = {"deal": "deal", "person": "contact", "organization": "account", "lead": "lead",
                      "product": "product", "activity": "task", "user": "owner", "stage": "stage",
                      "pipeline": "pipeline", "deal_product": "line_item"}


class WebhookRejected(Exception):
    """Authentication failed; the message says why without echoing any secret."""


@dataclass
class WebhookEvent:
    """What a delivery says changed: (canonical object type, source id) pairs."""

    source: str
    touched: list[tuple[str, str]] = field(default_factory=list)
    account_ids: set[str] = field(default_factory=set)  # HubSpot portal ids seen


def secret_for(secrets: Mapping[str, SecretStr], kind: str, connection: str | None) -> str | None:
    for key in ([f"{kind}:{connection}"] if connection else []) + [kind]:
        value = secrets.get(key)
        if value is not None and value.get_secret_value():
            return value.get_secret_value()
    return None


# --- HubSpot --------------------------------------------------------------------------------------
def hubspot_signing_uri(uri: str) -> str:
    for escaped, plain in _HUBSPOT_URI_DECODE.items():
        uri = uri.replace(escaped, plain).replace(escaped.lower(), plain)
    return uri


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + hubspot_signing_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode("ascii")


def verify_hubspot_v3(secret: str, *, method: str, uri: str, body: bytes, signature: str | None,
                      timestamp: str | None, now_ms: int | None = None, max_age_ms: int = MAX_AGE_MS) -> None:
    if not signature or not timestamp:
        raise WebhookRejected("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    try:
        sent_ms = int(timestamp)
    except ValueError:
        raise WebhookRejected("X-HubSpot-Request-Timestamp is not epoch milliseconds") from None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if now_ms - sent_ms > max_age_ms:
        raise WebhookRejected("timestamp older than five minutes (replay?)")
    if sent_ms - now_ms > max_age_ms:
        raise WebhookRejected("timestamp too far in the future")
    expected = hubspot_v3_signature(secret, method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise WebhookRejected("signature mismatch")


def parse_hubspot(payload: Any) -> WebhookEvent:
    events = payload if isinstance(payload, list) else [payload]
    out = WebhookEvent("hubspot")
    for item in events:
        if not isinstance(item, dict):
            continue
        if item.get("portalId") is not None:
            out.account_ids.add(str(item["portalId"]))
        kind = str(item.get("subscriptionType", "")).split(".", 1)[0]
        object_type = _HUBSPOT_OBJECTS.get(kind)
        if object_type and item.get("objectId") is not None:
            out.touched.append((object_type, str(item["objectId"])))
    return out


# --- Pipedrive ------------------------------------------------------------------------------------
def verify_basic_auth(expected: str, authorization: str | None) -> None:
    """``expected`` is ``user:password``; compared in constant time with the Basic credentials."""
    if not authorization or not authorization.lower().startswith("basic "):
        raise WebhookRejected("missing HTTP Basic credentials")
    try:
        given = base64.b64decode(authorization[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected("malformed HTTP Basic credentials") from None
    if not hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected.encode()).digest()):
        raise WebhookRejected("wrong credentials")


def parse_pipedrive(payload: Any) -> WebhookEvent:
    out = WebhookEvent("pipedrive")
    if not isinstance(payload, dict):
        return out
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    assert isinstance(meta, dict)
    kind = meta.get("entity") or meta.get("object")
    source_id = meta.get("entity_id") or meta.get("id")
    if source_id in (None, "") :
        for key in ("data", "current", "previous"):
            body = payload.get(key)
            if isinstance(body, dict) and body.get("id") is not None:
                source_id = body["id"]
                break
    object_type = _PIPEDRIVE_OBJECTS.get(str(kind))
    if object_type and source_id not in (None, ""):
        out.touched.append((object_type, str(source_id)))
    if meta.get("company_id") is not None:
        out.account_ids.add(str(meta["company_id"]))
    return out
