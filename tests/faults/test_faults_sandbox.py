"""The sandbox stays a faithful judge: the user handle behaves as the simulated API does."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from crmsync.sandbox.core import Knobs, SandboxServer
from crmsync.sandbox.runner import build_simulator, sandbox_credentials
from crmsync.sandbox.world import generate_world


def test_pipedrive_deal_edited_through_the_user_handle_keeps_its_products() -> None:
    sim = build_simulator("pipedrive", generate_world(11, 40), Knobs())
    with SandboxServer(sim.build_app(), name="pipedrive") as server:
        deal = next(r["deal_id"] for r in sim.truth("deal_products"))
        before = sorted(r["id"] for r in sim.truth("deal_products") if r["deal_id"] == deal)
        answer = httpx.patch(f"{server.url}/_sandbox/objects/deals/{deal}", json={"title": "renamed"})
        assert answer.status_code == 200
        after = sorted(r["id"] for r in sim.truth("deal_products") if r["deal_id"] == deal)
        assert after == before and before
        token = sandbox_credentials("pipedrive", sim)["api_token"]
        served = httpx.get(f"{server.url}/api/v2/deals/{deal}/products", params={"api_token": token})
        assert served.status_code == 200 and sorted(p["id"] for p in served.json()["data"]) == before


def test_pipedrive_non_finite_value_is_refused_and_the_deal_list_keeps_working() -> None:
    sim = build_simulator("pipedrive", generate_world(11, 40), Knobs())
    with SandboxServer(sim.build_app(), name="pipedrive") as server:
        for bad in (float("nan"), float("inf"), "-Infinity"):
            with pytest.raises(ValueError, match="finite"):
                sim.edit("deals", "3", {"value": bad})
        sim.edit("deals", "4", {"value": 1e300})  # huge but finite: kept, served as a JSON number
        token = sandbox_credentials("pipedrive", sim)["api_token"]
        listed = httpx.get(f"{server.url}/api/v2/deals", params={"api_token": token, "limit": 100})
        assert listed.status_code == 200
        values = {row["id"]: row["value"] for row in listed.json()["data"]}
        assert Decimal(str(values[4])) == Decimal("1e300")  # served as an exact JSON number
        refused = httpx.patch(f"{server.url}/api/v2/deals/3", params={"api_token": token},
                              content=b'{"value": "NaN"}', headers={"content-type": "application/json"})
        assert refused.status_code == 400


def test_user_handle_answers_the_api_status_not_500() -> None:
    sim = build_simulator("hubspot", generate_world(11, 40), Knobs())
    with SandboxServer(sim.build_app(), name="hubspot") as server:
        deal = str(sim.truth("deals")[0]["id"])
        answer = httpx.patch(f"{server.url}/_sandbox/objects/deals/{deal}", json={"dealstage": "no-such-stage"})
        assert answer.status_code == 400, answer.text
        answer = httpx.patch(f"{server.url}/_sandbox/objects/deals/{deal}", json={"no_such_property": "x"})
        assert answer.status_code == 400, answer.text


def test_salesforce_records_with_decimal_fields_read_back_through_the_user_handle(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from crmsync.sandbox.core import LocalCA

    sim = build_simulator("salesforce", generate_world(11, 40), Knobs())
    ca = LocalCA.create(tmp_path_factory.mktemp("ca"))
    with SandboxServer(sim.build_app(), tls=ca, name="salesforce") as server:
        answer = httpx.get(f"{server.url}/_sandbox/objects/Opportunity", verify=str(ca.ca_path))
        assert answer.status_code == 200, answer.text
        rows = answer.json()
        truth = {r["Id"]: r["Amount"] for r in sim.truth("Opportunity")}
        assert rows and all(str(truth[r["Id"]]) == str(r["Amount"]) or float(truth[r["Id"]]) == r["Amount"]
                            for r in rows if r["Amount"] is not None)
