"""Recorded HTTP (vcrpy) of the connector against the sandbox, replayed with no network.

The cassette is written by ``python tests/cassettes/record_salesforce.py`` (it starts the sandbox
over TLS, runs ``run_flow`` and scrubs credentials). These tests replay it with
``record_mode="none"`` and assert the wire shapes the connector sends.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import vcr
import yaml

from crmsync.connectors.base import PushItem
from crmsync.connectors.salesforce import SalesforceConnector
from crmsync.settings import ConnectionSettings

CASSETTE = Path(__file__).resolve().parents[1] / "cassettes" / "salesforce" / "connector_flow.yaml"
SECRET_FORM_FIELDS = ["client_id", "client_secret", "username", "password"]
PAGE_SIZE = 120
DEALS = 300


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response["body"]["string"]
    text = body.decode() if isinstance(body, bytes) else body
    if '"access_token"' in text:
        data = json.loads(text)
        data.update(access_token="FILTERED", signature="FILTERED", id="FILTERED")
        response["body"]["string"] = json.dumps(data).encode()
    return response


def make_vcr(record_mode: str) -> vcr.VCR:
    return vcr.VCR(record_mode=record_mode, filter_headers=["authorization", "cookie", "set-cookie"],
                   filter_post_data_parameters=SECRET_FORM_FIELDS, before_record_response=scrub_response,
                   match_on=["method", "scheme", "host", "port", "path", "query"])


def settings(base_url: str, credentials: dict[str, str], ca_bundle: Path | None) -> ConnectionSettings:
    return ConnectionSettings(name="sf", kind="salesforce", base_url=base_url, ca_bundle=ca_bundle,
                              credentials=credentials,  # type: ignore[arg-type]
                              options={"page_size": PAGE_SIZE, "track_deletes": False})


def run_flow(connector: SalesforceConnector, deal_ids: list[str] | None = None) -> dict[str, Any]:
    """The recorded scenario: a paged pull, a count, batched updates and idempotent creates."""
    pages = list(connector.pull("deals", None))
    ids = deal_ids or [r.source_id for p in pages for r in p.records][:3]
    updates = connector.push([PushItem("deals", "update", {"NextStep": "Recorded"}, source_id=i, ref=n)
                              for n, i in enumerate(ids)])
    creates = connector.push([PushItem("tasks", "create", {"subject": f"Call {n}", "deal_id": i},
                                       idempotency_key=f"cassette:{i}", ref=n) for n, i in enumerate(ids)])
    return {"pages": pages, "count": connector.count("deals"), "updates": updates, "creates": creates, "ids": ids}


def interactions() -> list[dict[str, Any]]:
    return list(yaml.safe_load(CASSETTE.read_text())["interactions"])


pytestmark = pytest.mark.skipif(not CASSETTE.exists(), reason="run tests/cassettes/record_salesforce.py first")


def test_cassette_holds_no_credentials() -> None:
    text = CASSETTE.read_text()
    assert not re.search(r"(?i)authorization|bearer |client_secret=|password=|00D000000000001!", text)
    for item in interactions():
        assert "authorization" not in {k.lower() for k in item["request"]["headers"]}


def test_request_shapes_from_the_cassette() -> None:
    calls = [(i["request"]["method"], urlsplit(i["request"]["uri"])) for i in interactions()]
    assert calls[0][0] == "POST" and calls[0][1].path == "/services/oauth2/token"
    token_body = parse_qs(interactions()[0]["request"]["body"])
    assert token_body == {"grant_type": ["password"]}  # the secrets were filtered out before writing
    pulls = [parse_qs(u.query)["q"][0] for m, u in calls if u.path == "/services/data/v59.0/queryAll/"]
    assert len(pulls) == DEALS // PAGE_SIZE + 1
    for q in pulls:
        assert q.startswith("SELECT Id, SystemModstamp, Name, Amount") and " FROM Opportunity WHERE " in q
        assert re.search(r"\(SystemModstamp > \S+\+00:00 OR \(SystemModstamp = \S+\+00:00 AND Id > '\w*'\)\) "
                         rf"ORDER BY SystemModstamp, Id LIMIT {PAGE_SIZE}$", q)
    assert "Id > ''" in pulls[0] and "Id > ''" not in pulls[1]
    patches = [i for i in interactions() if i["request"]["method"] == "PATCH"]
    update, upsert = (json.loads(p["request"]["body"]) for p in patches)
    assert urlsplit(patches[0]["request"]["uri"]).path == "/services/data/v59.0/composite/sobjects"
    assert update["allOrNone"] is False and len(update["records"]) == 3
    assert all(r["attributes"] == {"type": "Opportunity"} and r["id"] and r["NextStep"] == "Recorded"
               for r in update["records"])
    assert urlsplit(patches[1]["request"]["uri"]).path.endswith("/composite/sobjects/Task/Crmsync_Key__c")
    assert all(r["Crmsync_Key__c"].startswith("cassette:") and r["WhatId"] for r in upsert["records"])
    count = [parse_qs(u.query)["q"][0] for m, u in calls if u.path == "/services/data/v59.0/query/"]
    assert count == ["SELECT COUNT() FROM Opportunity"]
    assert all("sforce-limit-info" in {k.lower() for k in i["response"]["headers"]} for i in interactions()[1:])


def test_replay_without_network_reproduces_the_flow() -> None:
    base = urlsplit(interactions()[0]["request"]["uri"])
    creds = {"client_id": "x", "client_secret": "x", "username": "x", "password": "x"}
    with make_vcr("none").use_cassette(str(CASSETTE)) as cassette:
        connector = SalesforceConnector(settings(f"{base.scheme}://{base.netloc}", creds, None))
        result = run_flow(connector)
        connector.close()
    assert cassette.all_played
    pulled = [r.source_id for p in result["pages"] for r in p.records]
    assert len(pulled) == len(set(pulled)) == DEALS == result["count"]
    assert all(r.ok for r in result["updates"]) and all(r.ok and r.created for r in result["creates"])
    assert connector.usage.used is not None and connector.usage.limit == 100_000
