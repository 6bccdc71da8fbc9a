"""Restoring deleted records through each simulator's user handle, and what goes with a deal.

Salesforce ``undelete`` brings a record back from the recycle bin (and the opportunity's line
items deleted with it: master-detail); HubSpot restores archived records by id (90 days);
Pipedrive restores deals deleted within 30 days, with their products and the status they had.
A restore moves the record's modification stamp to now, so incremental pulls see it.
"""

from __future__ import annotations

import datetime as dt

import pytest

from crmsync.sandbox.hubspot.simulator import HubSpotSimulator
from crmsync.sandbox.pipedrive import PipedriveSimulator
from crmsync.sandbox.salesforce.ids import make_id
from crmsync.sandbox.salesforce.simulator import SalesforceSimulator
from crmsync.sandbox.world import generate_world

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def test_salesforce_undelete_brings_back_the_opportunity_and_its_line_items() -> None:
    sim = SalesforceSimulator(generate_world(5, 20, now=NOW))
    opp = make_id("006", 3)
    items = sorted(r["Id"] for r in sim.truth("OpportunityLineItem") if r["OpportunityId"] == opp)
    assert items, "the world deal has line items"
    sim.clock.freeze(NOW.timestamp() + 3600)
    sim.delete("Opportunity", opp)
    assert opp not in {r["Id"] for r in sim.truth("Opportunity")}
    deleted_items = {r["Id"]: r for r in sim.truth("OpportunityLineItem", include_deleted=True) if r["Id"] in items}
    assert all(r["IsDeleted"] for r in deleted_items.values())  # deleted with their opportunity
    sim.clock.advance(5)
    sim.restore("Opportunity", opp)
    row = next(r for r in sim.truth("Opportunity") if r["Id"] == opp)
    assert row["SystemModstamp"].startswith((NOW + dt.timedelta(seconds=3605)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert sorted(r["Id"] for r in sim.truth("OpportunityLineItem") if r["OpportunityId"] == opp) == items
    with pytest.raises(ValueError, match="UNDELETE_FAILED"):
        sim.restore("Opportunity", opp)  # not in the recycle bin any more


def test_salesforce_hard_delete_takes_the_line_items_for_good() -> None:
    sim = SalesforceSimulator(generate_world(5, 20, now=NOW))
    opp = make_id("006", 4)
    sim.delete("Opportunity", opp, hard=True)
    assert not [r for r in sim.truth("OpportunityLineItem", include_deleted=True) if r["OpportunityId"] == opp]
    with pytest.raises(KeyError):
        sim.restore("Opportunity", opp)


def test_hubspot_restore_of_an_archived_deal() -> None:
    sim = HubSpotSimulator(generate_world(5, 20, now=NOW))
    sim.clock.freeze(NOW.timestamp() + 3600)
    sim.delete("deals", "7")
    assert "7" not in {r["id"] for r in sim.truth("deals")}
    sim.clock.advance(2)
    sim.restore("deals", "7")
    row = next(r for r in sim.truth("deals") if r["id"] == "7")
    assert not row["archived"]
    assert row["properties"]["hs_lastmodifieddate"].startswith(
        (NOW + dt.timedelta(seconds=3602)).strftime("%Y-%m-%dT%H:%M:%S"))
    with pytest.raises(ValueError, match="not archived"):
        sim.restore("deals", "7")


def test_pipedrive_restore_keeps_status_and_products() -> None:
    sim = PipedriveSimulator(generate_world(5, 20, now=NOW))
    sim.clock.freeze(NOW.timestamp() + 3600)
    sim.move_stage("5", "closedwon")
    before = sorted(r["id"] for r in sim.truth("deal_products") if r["deal_id"] == 5)
    assert before
    sim.delete("deals", "5")
    assert not [r for r in sim.truth("deal_products") if r["deal_id"] == 5]
    sim.clock.advance(3)
    sim.restore("deals", "5")
    row = next(r for r in sim.truth("deals") if r["id"] == 5)
    assert row["status"] == "won" and row["is_deleted"] is False
    assert row["update_time"] == "2026-11-20T13:00:03Z"
    assert sorted(r["id"] for r in sim.truth("deal_products") if r["deal_id"] == 5) == before
    with pytest.raises(KeyError):
        sim.restore("deals", "5")


def test_pipedrive_editing_a_deal_keeps_its_products() -> None:
    """A world deal's products used to vanish once the deal itself was edited (its row materialised)."""
    sim = PipedriveSimulator(generate_world(5, 20, now=NOW))
    before = [r["id"] for r in sim.truth("deal_products") if r["deal_id"] == 2]
    assert before
    sim.edit("deals", "2", {"title": "Renamed"})
    assert [r["id"] for r in sim.truth("deal_products") if r["deal_id"] == 2] == before
