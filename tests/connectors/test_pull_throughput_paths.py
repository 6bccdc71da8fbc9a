"""The pull path's speed work keeps behaviour: fast converters agree with the model's parsers,
Salesforce Bulk results are streamed into small Pages that resume mid-results, HubSpot reads
associations 1,000 ids per call, Pipedrive money stays exact through the faster JSON decoder, and
the engine's read-ahead hands pages over in order and surfaces errors where they happened."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from crmsync.connectors.base import Page
from crmsync.connectors.converters import as_date, as_decimal, as_int, as_timestamp
from crmsync.connectors.mapping import FieldMap, ObjectMapping
from crmsync.connectors.pipedrive import PipedriveConnector
from crmsync.connectors.salesforce import SalesforceConnector
from crmsync.model import ModelError, ObjectType, parse_date, parse_decimal, parse_timestamp
from crmsync.readahead import ReadAhead
from crmsync.sandbox import Knobs, LocalCA, SandboxServer, generate_world
from crmsync.sandbox.hubspot import SANDBOX_TOKEN, HubSpotSimulator
from crmsync.sandbox.pipedrive import DEFAULT_TOKEN, PipedriveSimulator
from crmsync.sandbox.salesforce import SalesforceSimulator
from crmsync.settings import ConnectionSettings

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


# --- converters ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["2024-03-31T12:00:00.000Z", "2024-03-31T12:00:00.000+0000", "2024-03-31T12:00:00Z",
                                   "2024-03-31T14:00:00+02:00", " 2024-03-31T12:00:00Z ", "1711886400000",
                                   1711886400000, "", None])
def test_fast_timestamp_agrees_with_the_model(value: Any) -> None:
    assert as_timestamp(value, "f") == parse_timestamp(value, field_name="f")
    result = as_timestamp(value, "f")
    assert result is None or result.tzinfo is dt.UTC


@pytest.mark.parametrize("value", ["2024-03-31", "2024-03-31T25:00:00Z", "nonsense", "2024-03-31T12:00:00", "2024-13-01T00:00:00Z",
                                   "20240102"])  # a basic ISO date, not epoch ms 20240102
def test_fast_timestamp_refuses_what_the_model_refuses(value: str) -> None:
    with pytest.raises(ModelError) as fast:
        as_timestamp(value, "CloseDate")
    with pytest.raises(ModelError) as slow:
        parse_timestamp(value, field_name="CloseDate")
    assert str(fast.value) == str(slow.value) and "CloseDate" in str(fast.value)


@pytest.mark.parametrize("value", ["1234.50", " 12.5 ", "0", "-3", "1E+3", 7, 2.5, Decimal("9.99"), "", None])
def test_fast_decimal_and_int_agree_with_the_model(value: Any) -> None:
    assert as_decimal(value, "amount") == parse_decimal(value, field_name="amount")
    assert str(as_decimal(value, "amount")) == str(parse_decimal(value, field_name="amount"))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "abc", "1.2.3", True])
def test_fast_decimal_refuses_non_finite_and_junk(value: Any) -> None:
    with pytest.raises(ModelError, match="amount"):
        as_decimal(value, "amount")


def test_as_int_and_as_date_fast_paths() -> None:
    assert as_int(12, "n") == 12 and as_int("12", "n") == 12 and as_int(None, "n") is None
    with pytest.raises(ModelError, match="n"):
        as_int("1.5", "n")
    assert as_date("2024-02-29", "d") == parse_date("2024-02-29") == dt.date(2024, 2, 29)
    assert as_date("2024-02-29T10:00:00Z", "d") == dt.date(2024, 2, 29)
    with pytest.raises(ModelError, match="d"):
        as_date("2024-02-30", "d")


def test_compiled_mapping_keeps_extra_order_nested_paths_and_errors() -> None:
    mapping = ObjectMapping("stages", ObjectType.STAGE, "stages", "id", "updatedAt", (
        FieldMap("label", "name"), FieldMap("metadata.probability", "probability", as_decimal),
        FieldMap("note", "extra.note"),
    ), created_field="createdAt", ignore=frozenset({"archived"}))
    raw = {"id": 7, "updatedAt": "2024-01-01T00:00:00Z", "createdAt": "2023-01-01T00:00:00Z", "label": "Won",
           "metadata": {"probability": "1.0"}, "note": "", "archived": False, "zeta": 1, "alpha": 2}
    record = mapping.to_record("c", raw)
    assert record.source_id == "7" and record.name == "Won" and record.probability == Decimal("1.0")  # type: ignore[attr-defined]
    assert list(record.extra) == ["note", "zeta", "alpha"] and record.extra["note"] is None
    assert record.created_at == dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ModelError, match=r"metadata\.probability"):
        mapping.to_record("c", {**raw, "metadata": {"probability": "high"}})


# --- read-ahead ---------------------------------------------------------------------------------
def test_read_ahead_keeps_order_and_raises_where_the_source_failed() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("page 3 failed")

    ahead = ReadAhead(source())
    assert next(ahead) == 1 and next(ahead) == 2
    with pytest.raises(RuntimeError, match="page 3 failed"):
        next(ahead)
    ahead.close()


def test_read_ahead_close_stops_the_source_early() -> None:
    produced: list[int] = []
    closed: list[bool] = []

    def source() -> Iterator[int]:
        try:
            for n in range(1000):
                produced.append(n)
                yield n
        finally:
            closed.append(True)

    ahead = ReadAhead(source(), depth=2)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    assert closed == [True] and len(produced) <= 3 + 2 + 1  # at most the queue plus the one in hand


# --- Salesforce Bulk: streamed chunks, resumable mid-results ---------------------------------------
@pytest.fixture(scope="module")
def sf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SalesforceSimulator, SandboxServer, LocalCA]]:
    ca = LocalCA.create(tmp_path_factory.mktemp("ca"))
    sim = SalesforceSimulator(generate_world(7, 1200, now=NOW))
    server = SandboxServer(sim.build_app(), tls=ca, name="salesforce").start()
    yield sim, server, ca
    server._server.force_exit = True
    server.stop()


def sf_connector(sim: SalesforceSimulator, server: SandboxServer, ca: LocalCA, **options: Any) -> SalesforceConnector:
    creds = sim.credentials
    return SalesforceConnector(ConnectionSettings(
        name="sf", kind="salesforce", base_url=server.url, ca_bundle=ca.ca_path,
        credentials={"client_id": creds.client_id, "client_secret": creds.client_secret,
                     "username": creds.username, "password": creds.password},
        options={"bulk_poll_seconds": 0.01, "max_wait_seconds": 0.2, **options}))


def test_bulk_results_page_is_streamed_in_chunks_and_resumes_mid_page(
        sf_server: tuple[SalesforceSimulator, SandboxServer, LocalCA]) -> None:
    sim, server, ca = sf_server
    sim.bulk.result_page_rows = 700  # the pages resultPages lists (the server sizes them)
    options = {"bulk_threshold": 100, "bulk_page_size": 700, "bulk_chunk": 250}
    sf = sf_connector(sim, server, ca, **options)
    pages = sf.pull("deals", None, backfill=True)
    taken = [next(pages) for _ in range(4)]  # job checkpoint, then 250 + 250 + 200 rows of results page 1
    assert [len(p.records) for p in taken] == [0, 250, 250, 200]
    assert taken[1].cursor["skip"] == 250 and taken[2].cursor["skip"] == 500
    assert "skip" not in taken[3].cursor and taken[3].cursor["locator"]  # next results page
    # The process dies after committing the second chunk: a new one resumes inside results page 1.
    seen = [r.source_id for p in taken[:3] for r in p.records]
    pages.close()  # type: ignore[attr-defined]
    sf.close()
    resumed = sf_connector(sim, server, ca, **options)
    rest = list(resumed.pull("deals", taken[2].cursor))
    resumed.close()
    seen += [r.source_id for p in rest for r in p.records]
    assert len(seen) == len(set(seen))  # nothing read twice ...
    assert set(seen) == {r["Id"] for r in sim.truth("Opportunity", include_deleted=True)}  # ... nothing missed
    assert rest[-1].done and "mode" not in rest[-1].cursor
    assert max(len(p.records) for p in rest) <= 250


# --- HubSpot: associations 1,000 ids per call ---------------------------------------------------------
def test_hubspot_backfill_reads_associations_a_thousand_at_a_time() -> None:
    from crmsync.connectors.hubspot import HubSpotConnector

    sim = HubSpotSimulator(generate_world(21, 2500), Knobs(search_per_second=1000))
    with SandboxServer(sim.build_app(), name="hubspot") as server:
        hs = HubSpotConnector(ConnectionSettings(
            name="hs", kind="hubspot", base_url=server.url, credentials={"access_token": SANDBOX_TOKEN},
            options={"search_per_second": 1000, "limits_raised": True, "lookback_seconds": 0,
                     "backfill_via": "search"}))
        records: dict[str, Any] = {}
        pages = list(hs.pull("deals", None, backfill=True))
        for page in pages:
            records.update((r.source_id, r) for r in page.records)
        routes = sim.log.snapshot()["by_route"]
    assert len(records) == 2500
    assert all(len(p.records) <= 1000 for p in pages)
    assoc = sum(n for route, n in routes.items() if "/crm/v4/associations/deals/" in route)
    searches = sum(n for route, n in routes.items() if route.endswith("/search"))
    assert assoc == 2 * math.ceil(2500 / 1000)  # companies and contacts, 1,000 ids per call
    assert searches == math.ceil(2500 / 200) + (1 if 2500 % 200 == 0 else 0)
    assert sum(p.api_calls for p in pages) == sum(routes.values())
    truth = {str(d["id"]): d for d in sim.truth("deals")}
    for deal_id, record in records.items():
        assert record.account_id == (truth[deal_id]["associations"]["companies"] or [None])[0]


# --- Pipedrive: exact money through msgspec (the sandbox, like Pipedrive, sends JSON numbers) -----------
def test_pipedrive_money_is_exact_and_the_next_page_is_prefetched() -> None:
    sim = PipedriveSimulator(generate_world(seed=5, deals=1200, now=NOW), Knobs(burst_window_s=2.0))
    with SandboxServer(sim.build_app(), name="pd") as server:
        deal_id = str(sim.truth("deals")[0]["id"])
        sim.edit("deals", deal_id, {"value": Decimal("1234567.89")})
        pd = PipedriveConnector(ConnectionSettings(name="pd", kind="pipedrive", base_url=server.url,
                                                   credentials={"api_token": DEFAULT_TOKEN},
                                                   options={"max_wait_s": 5, "page_limit": 500}))
        pages: list[Page] = list(pd.pull("deals", None, backfill=True))
        pd.close()
    amounts = {r.source_id: r.amount for p in pages for r in p.records}  # type: ignore[attr-defined]
    amount = amounts[deal_id]  # the JSON number's own digits, never a binary float
    assert type(amount) is Decimal and str(amount) == "1234567.89"
    assert len(amounts) == len(sim.truth("deals"))
    assert sum(p.api_calls for p in pages) == sim.log.total - 1  # every call accounted (minus the field list)
