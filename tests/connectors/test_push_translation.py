"""Push translation shared by the three CRM connectors, over real HTTP against the sandbox:

- canonical names, including a connection's ``field_mappings`` overrides, go back to native names
  (Salesforce columns, Pipedrive custom-field hex keys) and are read back by the same table;
- ``writable_fields`` may list canonical or native names;
- notes (Salesforce ``Note``, Pipedrive v1 notes) are created once per idempotency key;
- an update after crmsync's own earlier write to the same record is not a conflict, a human
  edit after it still is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from crmsync.connectors import build_connector
from crmsync.connectors.base import PushItem
from crmsync.connectors.salesforce.notes import TITLE_MAX, note_marker
from crmsync.sandbox.pipedrive.fields import DEAL_KEY_BY_NAME
from crmsync.sandbox.runner import CONNECTION_NAMES, SandboxHandle, start_sandbox
from crmsync.settings import ConnectionSettings

SCORE_OVERRIDE = {"salesforce": {"Crmsync_Score__c": "extra.health:decimal"},
                  "hubspot": {"crmsync_score": "extra.health:decimal"},
                  "pipedrive": {"crmsync_score": "extra.health:decimal"}}
DEAL_OBJECT = {"salesforce": "Opportunity", "hubspot": "deals", "pipedrive": "deals"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(deals=60, seed=5, systems=("salesforce", "hubspot", "pipedrive"),
                           state_dir=tmp_path_factory.mktemp("push-translation"))
    try:
        yield handle
    finally:
        handle.stop()


def _conn(sandbox: SandboxHandle, system: str, **changes: Any) -> ConnectionSettings:
    entry = next(d for d in sandbox.connection_dicts() if d["name"] == CONNECTION_NAMES[system])
    entry.update(changes)
    return ConnectionSettings.model_validate(entry)


def _connector(sandbox: SandboxHandle, system: str, **changes: Any) -> Any:
    return build_connector(_conn(sandbox, system, **changes))


def _deals(connector: Any) -> list[Any]:
    return list(next(iter(connector.pull("deals", None))).records)


def _truth_deal(sandbox: SandboxHandle, system: str, deal_id: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = sandbox.sims[system].truth(DEAL_OBJECT[system])  # type: ignore[attr-defined]
    return next(r for r in rows if str(r.get("Id") or r.get("id")) == deal_id)


def _score_in_truth(system: str, row: dict[str, Any]) -> Any:
    if system == "salesforce":
        return row["Crmsync_Score__c"]
    if system == "hubspot":
        return row["properties"]["crmsync_score"]
    return row["custom_fields"][DEAL_KEY_BY_NAME["crmsync_score"]]


@pytest.mark.parametrize("system", ["salesforce", "hubspot", "pipedrive"])
def test_field_mapping_override_is_written_under_the_native_name_and_read_back(
        sandbox: SandboxHandle, system: str) -> None:
    connector = _connector(sandbox, system, field_mappings={"deals": SCORE_OVERRIDE[system]})
    try:
        deal = _deals(connector)[3]
        [result] = connector.push([PushItem("deals", "update", {"extra.health": Decimal("42.5")},
                                            source_id=deal.source_id, ref=1)])
        assert result.ok, result.error
        assert Decimal(str(_score_in_truth(system, _truth_deal(sandbox, system, deal.source_id)))) == Decimal("42.5")
        again = {r.source_id: r for r in _deals(connector)}[deal.source_id]
        assert again.extra["health"] == Decimal("42.5")
    finally:
        connector.close()


@pytest.mark.parametrize(("system", "owner_native"), [("salesforce", "OwnerId"), ("hubspot", "hubspot_owner_id"),
                                                      ("pipedrive", "owner_id")])
def test_writable_fields_accept_native_and_canonical_names(sandbox: SandboxHandle, system: str,
                                                           owner_native: str) -> None:
    native_score = next(iter(SCORE_OVERRIDE[system]))
    connector = _connector(sandbox, system, field_mappings={"deals": SCORE_OVERRIDE[system]},
                           writable_fields={"deals": [owner_native, native_score, "close_date"]})
    try:
        deals = _deals(connector)
        target, other = deals[5], deals[6]
        results = connector.push([
            PushItem("deals", "update", {"owner_id": target.owner_id, "extra.health": Decimal(7),
                                         "close_date": dt.date(2027, 1, 15)}, source_id=target.source_id, ref=1),
            PushItem("deals", "update", {"name": "not ours to write"}, source_id=other.source_id, ref=2),
        ])
        assert results[0].ok, results[0].error
        assert not results[1].ok and "name" in (results[1].error or "") and "writable" in (results[1].error or "")
        assert Decimal(str(_score_in_truth(system, _truth_deal(sandbox, system, target.source_id)))) == 7
    finally:
        connector.close()


def test_salesforce_pipeline_constant_is_dropped_and_other_pipelines_refused(sandbox: SandboxHandle) -> None:
    connector = _connector(sandbox, "salesforce")
    try:
        deal = _deals(connector)[0]
        fields = {"name": "Renewal: test", "stage_id": "Qualification", "close_date": dt.date(2027, 3, 1),
                  "account_id": deal.account_id, "pipeline_id": "default", "deal_type": "Renewal"}
        ok, refused = connector.push([
            PushItem("deals", "create", fields, idempotency_key="renewal-test-1", ref=1),
            PushItem("deals", "create", {**fields, "pipeline_id": "enterprise"}, idempotency_key="renewal-test-2",
                     ref=2),
        ])
        assert ok.ok and ok.created, ok.error
        assert not refused.ok and "pipeline_id" in (refused.error or "") and "field_mappings" in (refused.error or "")
        created = [r for r in sandbox.sims["salesforce"].truth("Opportunity")  # type: ignore[attr-defined]
                   if r["Crmsync_Key__c"] in ("renewal-test-1", "renewal-test-2")]
        assert [r["Crmsync_Key__c"] for r in created] == ["renewal-test-1"]
        assert created[0]["StageName"] == "Qualification" and created[0]["Type"] == "Renewal"
    finally:
        connector.close()


@pytest.mark.parametrize("system", ["salesforce", "pipedrive"])
def test_notes_are_created_once_per_key(sandbox: SandboxHandle, system: str) -> None:
    connector = _connector(sandbox, system)
    key = f"handoff-note:{system}:{'x' * 90}"  # longer than a Salesforce Title can carry
    try:
        deal = _deals(connector)[8]
        note = PushItem("notes", "create", {"body": "Handoff to CS\nuse_case: analytics", "deal_id": deal.source_id},
                        idempotency_key=key, ref=1)
        first = connector.push([note])[0]
        second = connector.push([note])[0]  # a retried push after a lost answer
        assert first.ok and first.created, first.error
        assert second.ok and not second.created and second.source_id == first.source_id
        unparented = connector.push([PushItem("notes", "create", {"body": "orphan"}, idempotency_key="n-2", ref=2)])[0]
        assert not unparented.ok and "deal_id" in (unparented.error or "")
    finally:
        connector.close()
    sim: Any = sandbox.sims[system]
    if system == "salesforce":
        notes = [r for r in sim.truth("Note") if r["ParentId"] == deal.source_id]
        assert len(notes) == 1 and notes[0]["Body"].startswith("Handoff to CS")
        assert notes[0]["Title"].endswith(note_marker(key)) and len(notes[0]["Title"]) <= TITLE_MAX
        assert notes[0]["Title"].startswith("Handoff to CS ")
    else:
        notes = [r for r in sim.truth("notes") if r["deal_id"] == int(deal.source_id)]
        assert len(notes) == 1 and notes[0]["content"].endswith(f"[crmsync:{key}]")


def test_pipedrive_note_on_a_missing_deal_is_refused(sandbox: SandboxHandle) -> None:
    connector = _connector(sandbox, "pipedrive")
    try:
        [result] = connector.push([PushItem("notes", "create", {"body": "x", "deal_id": "999999"},
                                            idempotency_key="n-missing", ref=1)])
        assert not result.ok and not result.retriable and "999999" in (result.error or "")
    finally:
        connector.close()


def _tick(system: str, sim: Any) -> None:
    """Move the simulator's clock past its stamp resolution (a later write gets a later stamp):
    Salesforce keeps whole seconds, HubSpot milliseconds."""
    sim.clock.advance(1.0 if system == "salesforce" else 0.002)


@pytest.mark.parametrize("system", ["salesforce", "hubspot", "pipedrive"])
def test_own_earlier_write_is_not_a_conflict_but_a_later_human_edit_is(sandbox: SandboxHandle, system: str) -> None:
    connector = _connector(sandbox, system, field_mappings={"deals": SCORE_OVERRIDE[system]})
    sim: Any = sandbox.sims[system]
    try:
        deal = _deals(connector)[11]
        based = deal.modified_at

        def update(fields: dict[str, Any], ref: int) -> Any:
            return connector.push([PushItem("deals", "update", fields, source_id=deal.source_id,
                                            based_on_modified_at=based, ref=ref)])[0]

        _tick(system, sim)
        first = update({"extra.health": Decimal(10)}, 1)
        assert first.ok, first.error
        second = update({"owner_id": deal.owner_id}, 2)  # decided with the first, pushed in a later batch
        assert second.ok and not second.conflict, second.error
        if system == "pipedrive":
            sim.advance(2)  # update_time has one-second resolution
        else:
            _tick(system, sim)
        human = {"salesforce": {"NextStep": "call back"}, "hubspot": {"dealname": "Renamed by a human"},
                 "pipedrive": {"title": "Renamed by a human"}}[system]
        sim.edit(DEAL_OBJECT[system], deal.source_id, human)
        third = update({"extra.health": Decimal(11)}, 3)
        assert third.conflict and not third.ok
        assert Decimal(str(_score_in_truth(system, _truth_deal(sandbox, system, deal.source_id)))) == 10
    finally:
        if system == "pipedrive":
            sim.advance(-2)
        connector.close()


def test_salesforce_identity_gives_the_api_user(sandbox: SandboxHandle) -> None:
    connector = _connector(sandbox, "salesforce")
    try:
        assert connector.session.user_id and connector.session.user_id.startswith("005")
    finally:
        connector.close()


BIG_MONEY = Decimal("12345678901234567.89")  # 19 significant digits: a float keeps ~15


@pytest.mark.parametrize("system", ["salesforce", "hubspot", "pipedrive"])
def test_money_past_float_precision_goes_out_and_comes_back_exactly(sandbox: SandboxHandle, system: str) -> None:
    """The one msgspec encoder writes a Decimal from its digits; the simulator keeps them; the pull
    reads them back as the same Decimal (and a custom decimal field does too)."""
    connector = _connector(sandbox, system, field_mappings={"deals": SCORE_OVERRIDE[system]})
    try:
        deal = _deals(connector)[5]
        [result] = connector.push([PushItem("deals", "update", {"amount": BIG_MONEY, "extra.health": BIG_MONEY},
                                            source_id=deal.source_id, ref=1)])
        assert result.ok, result.error
        row = _truth_deal(sandbox, system, deal.source_id)
        assert Decimal(str(_score_in_truth(system, row))) == BIG_MONEY
        [again] = [d for page in connector.pull("deals", None) for d in page.records if d.source_id == deal.source_id]
        assert again.amount == BIG_MONEY
        assert again.extra["health"] == BIG_MONEY
    finally:
        connector.close()


def test_a_non_finite_decimal_is_refused_before_sending() -> None:
    from crmsync.connectors.base import FatalError
    from crmsync.connectors.wire import encode_body

    assert encode_body({"amount": BIG_MONEY}) == b'{"amount":12345678901234567.89}'
    with pytest.raises(FatalError, match="cannot encode"):
        encode_body({"amount": Decimal("NaN")})
