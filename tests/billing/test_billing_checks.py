from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crmsync.billing.catalog import BillingCatalog
from crmsync.billing.checks import (
    CheckConfig,
    check_amount,
    check_contract_dates,
    check_currency,
    check_discount,
    check_line_math,
    check_list_price,
    check_period_term,
    check_seats,
    run_checks,
)
from crmsync.billing.mapping import build_mapping
from crmsync.model import Deal, LineItem
from crmsync.sandbox import generate_world
from crmsync.sandbox.meteroid import MeteroidSimulator
from crmsync.sandbox.records import deal_record, line_records
from crmsync.sandbox.world import CRM_LIST_PRICE_DRIFT

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
T = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def world():
    return generate_world(17, 800, now=NOW)


@pytest.fixture(scope="module")
def catalog(world) -> BillingCatalog:
    truth = MeteroidSimulator(world)
    return BillingCatalog.from_api(truth.truth("plans"), truth.truth("products"), truth.truth("coupons"))


@pytest.fixture(scope="module")
def mapping(world, catalog):
    return build_mapping([p.code for p in world.products], catalog)


def deal(**kw) -> Deal:
    base = dict(connection="sf", source_object="Opportunity", source_id="D1", modified_at=T, amount=Decimal("1000"),
                currency="EUR", is_won=True, is_closed=True, close_date=dt.date(2026, 5, 1),
                contract_start=dt.date(2026, 5, 2), contract_end=dt.date(2027, 5, 1), account_id="A1", owner_id="U1")
    base.update(kw)
    return Deal(**base)


def line(**kw) -> LineItem:
    base = dict(connection="sf", source_object="OpportunityLineItem", source_id="L1", modified_at=T, deal_id="D1",
                product_code="PLAT-CORE", quantity=Decimal(10), unit_price=Decimal("588.00"),
                list_price=Decimal("588.00"), discount_percent=Decimal(0), total=Decimal("5880.00"), currency="EUR",
                billing_period="ANNUAL", term_months=12)
    base.update(kw)
    return LineItem(**base)


CFG = CheckConfig()


def test_mapping_auto_matches_every_world_product(mapping, catalog) -> None:
    assert mapping.report.unmatched_crm == [] and mapping.report.bad_config == {}
    configured = build_mapping(["PLAT-CORE", "LEGACY-X", "ALIAS-1"], catalog, {"ALIAS-1": "PLAT-PRO", "LEGACY-X": "nope"})
    assert configured.report.configured == {"ALIAS-1": configured.by_code["ALIAS-1"].component_id}
    assert configured.report.bad_config == {"LEGACY-X": "nope"} and "LEGACY-X" in configured.report.unmatched_crm
    assert configured.component("ALIAS-1").product_code == "PLAT-PRO"


@pytest.mark.parametrize(("amount", "n"), [(Decimal("5880.00"), 0), (Decimal("5880.01"), 0), (Decimal("6000"), 1)])
def test_amount_vs_lines(amount, n) -> None:
    found = check_amount(deal(amount=amount), [line()], CFG)
    assert len(found) == n
    if n:
        assert found[0].money_at_stake == Decimal("120.00")


@pytest.mark.parametrize(("kw", "n"), [({}, 0), ({"total": Decimal("5000")}, 1),
                                       ({"discount_percent": Decimal(10), "total": Decimal("5292.00")}, 0),
                                       ({"discount_amount": Decimal(80), "total": Decimal("5800.00")}, 0)])
def test_line_math(kw, n) -> None:
    assert len(check_line_math(deal(), line(**kw), CFG)) == n


def test_list_price_vs_billing(mapping) -> None:
    comp = mapping.component("PLAT-CORE")
    assert check_list_price(deal(), line(), comp, CFG) == []
    found = check_list_price(deal(), line(list_price=Decimal("600.00")), comp, CFG)
    assert found[0].money_at_stake == Decimal("120.00") and found[0].check == "list_price_drift"
    monthly = check_list_price(deal(), line(billing_period="MONTHLY", list_price=Decimal("49.00")), comp, CFG)
    assert monthly == []
    assert check_list_price(deal(), line(product_code="NOPE"), None, CFG)[0].check == "product_unmapped"


@pytest.mark.parametrize(("kw", "approved", "n"), [
    ({"discount_percent": Decimal(25)}, "false", 1), ({"discount_percent": Decimal(25)}, "true", 0),
    ({"discount_percent": Decimal(20)}, "false", 0), ({"unit_price": Decimal("400.00")}, "false", 1)])
def test_discount_threshold(kw, approved, n) -> None:
    assert len(check_discount(deal(extra={"discount_approved": approved}), line(**kw), CFG)) == n


def test_currency(mapping) -> None:
    comp = mapping.component("PLAT-CORE")
    assert check_currency(deal(), [line()], [comp]) == []
    assert len(check_currency(deal(), [line(currency="USD")], [comp])) == 1
    assert len(check_currency(deal(), [line()], [comp], customer_currency="GBP")) == 1


def test_period_and_term(mapping) -> None:
    comp = mapping.component("PLAT-CORE")
    assert check_period_term(deal(), line(), comp, CFG) == []
    assert check_period_term(deal(), line(billing_period="QUARTERLY"), comp, CFG)[0].check == "billing_period"
    assert check_period_term(deal(), line(billing_period="WEEKLY"), comp, CFG)[0].check == "billing_period"
    long = deal(contract_end=dt.date(2028, 5, 1))
    assert check_period_term(long, line(), comp, CFG)[0].check == "term_mismatch"


def test_contract_dates() -> None:
    assert check_contract_dates(deal()) == []
    assert check_contract_dates(deal(contract_start=dt.date(2026, 4, 1)))[0].check == "backdated_contract"
    assert check_contract_dates(deal(contract_end=dt.date(2026, 5, 2)))[0].check == "contract_dates"
    assert check_contract_dates(deal(contract_start=None))[0].check == "contract_dates"


def test_seats(mapping) -> None:
    comp = mapping.component("PLAT-ENT")  # 25..5000 seats
    assert check_seats(deal(), line(product_code="PLAT-ENT", quantity=Decimal(30)), comp) == []
    low = check_seats(deal(), line(product_code="PLAT-ENT", quantity=Decimal(10)), comp)
    assert low[0].money_at_stake == Decimal(15) * comp.price_for("ANNUAL")
    assert check_seats(deal(), line(product_code="ADDON-API", quantity=Decimal(3)),
                       mapping.component("ADDON-API"))[0].severity == "warning"


def test_world_planted_problems_are_found(world, catalog, mapping) -> None:
    """The World plants drifted list prices, amount mismatches and discounts; the checks find them."""
    by_check: dict[str, set[str]] = {}
    for d in world.deals:
        for f in run_checks(deal_record(world, d), line_records(world, d), catalog, mapping):
            by_check.setdefault(f.check, set()).add(f.product_code or "")
    assert set(CRM_LIST_PRICE_DRIFT) <= by_check["list_price_drift"] and len(by_check["list_price_drift"]) == 2
    assert "amount_vs_lines" in by_check and "discount_unapproved" in by_check
    assert "line_math" not in by_check and "currency_mismatch" not in by_check
