"""The Pipedrive simulator's person, product and note field listings over real HTTP (``/v1/*Fields``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from crmsync.sandbox import Knobs, SandboxServer, generate_world
from crmsync.sandbox.pipedrive import DEFAULT_TOKEN, PipedriveSimulator
from crmsync.sandbox.pipedrive.field_lists import NOTE_FIELDS, PERSON_FIELDS, PRODUCT_FIELDS

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    sim = PipedriveSimulator(generate_world(seed=11, deals=50, now=NOW), Knobs(burst_window_s=2.0, daily_limit=1_000))
    with SandboxServer(sim.build_app(), name="pipedrive-field-lists") as srv, \
            httpx.Client(base_url=srv.url, params={"api_token": DEFAULT_TOKEN}) as c:
        yield c


@pytest.mark.parametrize(("path", "fields"), [("/v1/personFields", PERSON_FIELDS),
                                              ("/v1/productFields", PRODUCT_FIELDS),
                                              ("/v1/noteFields", NOTE_FIELDS)])
def test_listing_pages_every_field_once_in_order(client: httpx.Client, path: str,
                                                 fields: tuple[tuple[str, str, str], ...]) -> None:
    keys: list[str] = []
    start, pages = 0, 0
    while True:
        response = client.get(path, params={"start": start, "limit": 4})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        pages += 1
        keys += [f["key"] for f in body["data"]]
        pagination = body["additional_data"]["pagination"]
        if not pagination["more_items_in_collection"]:
            break
        start = pagination["next_start"]
    assert keys == [key for key, _, _ in fields] and pages == -(-len(fields) // 4)
    whole = client.get(path).json()["data"]
    assert [f["key"] for f in whole] == keys
    assert {f["field_type"] for f in whole} >= {"double", "date"} and all(f["edit_flag"] is False for f in whole)


def test_listings_spend_the_spec_token_cost(client: httpx.Client) -> None:
    before = int(client.get("/v1/dealFields").headers["x-daily-ratelimit-token-remaining"])
    after = int(client.get("/v1/personFields").headers["x-daily-ratelimit-token-remaining"])
    assert before - after == 20
