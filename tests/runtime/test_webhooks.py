"""Webhook signature and credential checks (pure), table-driven."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from crmsync.runtime import webhooks

SECRET = "app-client-secret-123"
URI = "https://worker.example.com/webhooks/hubspot?x=1"
BODY = b'[{"objectId":1246965,"subscriptionType":"deal.propertyChange","portalId":62515}]'
NOW_MS = 1_700_000_000_000


def independent_signature(secret: str, method: str, uri: str, body: bytes, ts: str) -> str:
    raw = f"{method}{uri}".encode() + body + ts.encode()
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def test_hubspot_v3_accepts_a_valid_signature() -> None:
    ts = str(NOW_MS - 1000)
    sig = independent_signature(SECRET, "POST", URI, BODY, ts)
    webhooks.verify_hubspot_v3(SECRET, method="POST", uri=URI, body=BODY, signature=sig, timestamp=ts, now_ms=NOW_MS)


def test_hubspot_signing_uri_decodes_the_documented_escapes() -> None:
    ts = str(NOW_MS)
    encoded = "https://worker.example.com/webhooks/hubspot?next=%2Fa%3Ab%40c"
    sig = independent_signature(SECRET, "POST", "https://worker.example.com/webhooks/hubspot?next=/a:b@c", BODY, ts)
    webhooks.verify_hubspot_v3(SECRET, method="POST", uri=encoded, body=BODY, signature=sig, timestamp=ts,
                               now_ms=NOW_MS)


@pytest.mark.parametrize(("change", "why"), [
    ({"secret": "wrong"}, "signature mismatch"),
    ({"body": BODY + b" "}, "signature mismatch"),
    ({"uri": URI + "&y=2"}, "signature mismatch"),
    ({"method": "PUT"}, "signature mismatch"),
    ({"ts": str(NOW_MS - 5 * 60 * 1000 - 1)}, "older than five minutes"),
    ({"ts": "yesterday"}, "epoch milliseconds"),
    ({"signature": None}, "missing"),
])
def test_hubspot_v3_rejects(change: dict[str, str | None], why: str) -> None:
    ts = str(NOW_MS - 1000)
    good = independent_signature(SECRET, "POST", URI, BODY, ts)
    sig_ts = change.get("ts", ts)
    # the signature is computed over the ORIGINAL request; the receiver sees the changed one
    signature = change["signature"] if "signature" in change else (
        independent_signature(change["secret"] or "", "POST", URI, BODY, ts) if "secret" in change else
        independent_signature(SECRET, "POST", URI, BODY, sig_ts or "") if "ts" in change else good)
    with pytest.raises(webhooks.WebhookRejected, match=why):
        webhooks.verify_hubspot_v3(SECRET, method=change.get("method") or "POST", uri=change.get("uri") or URI,
                                   body=BODY + b" " if "body" in change else BODY, signature=signature,
                                   timestamp=sig_ts, now_ms=NOW_MS)


def test_hubspot_events_map_to_touched_records() -> None:
    event = webhooks.parse_hubspot([
        {"objectId": 11, "subscriptionType": "deal.propertyChange", "portalId": 62515},
        {"objectId": 12, "subscriptionType": "company.creation", "portalId": 62515},
        {"objectId": 13, "subscriptionType": "unknownthing.creation"},
    ])
    assert event.touched == [("deal", "11"), ("account", "12")]
    assert event.account_ids == {"62515"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("header", "ok"), [
    (basic("hook", "s3cret:with:colons"), True),
    (basic("hook", "s3cret:with:colon"), False),
    (basic("Hook", "s3cret:with:colons"), False),
    ("Bearer abc", False),
    ("Basic !!!notbase64", False),
    (None, False),
])
def test_pipedrive_basic_auth(header: str | None, ok: bool) -> None:
    expected = "hook:s3cret:with:colons"
    if ok:
        webhooks.verify_basic_auth(expected, header)
    else:
        with pytest.raises(webhooks.WebhookRejected):
            webhooks.verify_basic_auth(expected, header)


@pytest.mark.parametrize(("payload", "touched"), [
    ({"meta": {"action": "change", "entity": "deal", "entity_id": "7", "version": "2.0"}, "data": {"id": 7}},
     [("deal", "7")]),
    ({"meta": {"action": "updated", "object": "person", "id": 9, "v": 1}, "current": {"id": 9}}, [("contact", "9")]),
    ({"meta": {"action": "create", "entity": "organization"}, "data": {"id": 4}}, [("account", "4")]),
    ({"meta": {"entity": "note", "entity_id": 1}}, []),
])
def test_pipedrive_payloads(payload: dict[str, object], touched: list[tuple[str, str]]) -> None:
    assert webhooks.parse_pipedrive(payload).touched == touched
