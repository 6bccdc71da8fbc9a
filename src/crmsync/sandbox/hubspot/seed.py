"""World -> HubSpot rows: compact rows whose properties are built on demand from World objects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from crmsync.sandbox.hubspot.clock import iso_ms as fast_iso_ms
from crmsync.sandbox.hubspot.schema import deal_custom_property, to_ms
from crmsync.sandbox.hubspot.table import ObjectTable, Props, Row
from crmsync.sandbox.world import (
    BILLING_PERIOD_MONTHS,
    CURRENCY,
    DEAL_CUSTOM_FIELDS,
    PRODUCTS,
    STAGES,
    WAccount,
    WContact,
    WDeal,
    World,
    crm_list_price,
)

FREQUENCY = {"MONTHLY": "monthly", "QUARTERLY": "quarterly", "SEMIANNUAL": "per_six_months", "ANNUAL": "annually"}
PIPELINE_ID = "default"
_CUSTOM_PROPS = tuple(deal_custom_property(f) for f in DEAL_CUSTOM_FIELDS)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else fast_iso_ms(to_ms(value))


def _date(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def deal_props(deal: WDeal) -> Props:
    props: Props = {
        "dealname": deal.name,
        "amount": str(deal.amount),
        "dealstage": STAGES[deal.stage].key,
        "pipeline": PIPELINE_ID,
        "closedate": f"{deal.close_date.isoformat()}T00:00:00.000Z",
        "hubspot_owner_id": str(deal.owner_id),
        "deal_currency_code": deal.currency,
        "dealtype": deal.deal_type,
        "lead_source": deal.lead_source,
        "hs_v2_date_entered_current_stage": _iso(deal.stage_changed_at),
        "notes_last_updated": _iso(deal.last_activity_at),
        "contract_start": _date(deal.contract_start),
        "contract_end": _date(deal.contract_end),
        "handoff_done": "true" if deal.handoff_done else "false",
        "closed_lost_reason": None,
        "competitor": None,
        "crmsync_key": None,
        "hs_merged_object_ids": None,
    }
    props.update(zip(_CUSTOM_PROPS, deal.custom, strict=True))
    return props


def deal_props_in(world: World) -> Callable[[WDeal], Props]:
    """``deal_props`` plus what the World derives per deal (loss reason and competitor)."""
    def build(deal: WDeal) -> Props:
        props = deal_props(deal)
        loss = world.loss(deal)
        if loss is not None:
            props["closed_lost_reason"], props["competitor"] = loss
        return props
    return build


def company_props(account: WAccount) -> Props:
    return {
        "name": account.name, "domain": account.domain, "industry": account.industry, "country": account.country,
        "sales_region": account.region, "segment": account.segment, "numberofemployees": str(account.employees),
        "annualrevenue": None, "hubspot_owner_id": str(account.owner_id), "hs_merged_object_ids": None,
    }


def contact_props(contact: WContact) -> Props:
    return {
        "firstname": contact.first_name, "lastname": contact.last_name, "email": contact.email,
        "jobtitle": contact.title, "associatedcompanyid": str(contact.account_id), "hubspot_owner_id": None,
        "hs_merged_object_ids": None,
    }


def product_props(index: int) -> Props:
    product = PRODUCTS[index]
    return {
        "name": product.name, "hs_sku": product.code, "description": f"{product.family}: {product.name}",
        "price": str(crm_list_price(product)), "product_family": product.family,
        "recurringbillingfrequency": "monthly", "hs_recurring_billing_period": "P1M",
        "hs_product_active": "true", "hubspot_owner_id": None,
    }


class LineItemSource:
    """Line items of World deals, computed per deal only when read."""

    def __init__(self, world: World) -> None:
        self.world = world

    def props(self, src: tuple[WDeal, int]) -> Props:
        deal, pos = src
        item = self.world.line_items(deal)[pos]
        months = BILLING_PERIOD_MONTHS[item.billing_period]
        return {
            "name": item.product.name, "hs_product_id": str(PRODUCTS.index(item.product) + 1),
            "hs_sku": item.product.code, "quantity": str(item.quantity), "price": str(item.unit_price),
            "list_price": str(item.list_price), "hs_discount_percentage": str(item.discount_percent),
            "discount": None, "amount": str(item.total), "hs_line_item_currency_code": CURRENCY,
            "recurringbillingfrequency": FREQUENCY[item.billing_period],
            "hs_recurring_billing_period": f"P{months * (item.term_months // months)}M",
            "hs_term_in_months": str(item.term_months),
            "hs_recurring_billing_start_date": _date(deal.contract_start),
            "hubspot_owner_id": None,
        }


def seed_deals(world: World) -> ObjectTable:
    table = ObjectTable("deals", deal_props_in(world))
    table.seed([Row(d.id, to_ms(d.created_at), to_ms(d.modified_at), d) for d in world.deals])
    return table


def _synthetic_times(world: World, record_id: int, salt: int) -> tuple[int, int]:
    """Companies and contacts carry no timestamps in the World: derive stable ones from the id."""
    now = to_ms(world.now)
    created = now - ((record_id * 7_919 + salt) % 700 + 30) * 86_400_000 - (record_id * 104_729) % 86_400_000
    modified = min(now - 60_000, created + ((record_id * 31 + salt) % 200) * 86_400_000)
    return created, modified


def seed_companies(world: World) -> ObjectTable:
    table = ObjectTable("companies", company_props)
    table.seed([Row(a.id, *_synthetic_times(world, a.id, 1), a) for a in world.accounts])
    return table


def seed_contacts(world: World) -> ObjectTable:
    table = ObjectTable("contacts", contact_props)
    table.seed([Row(c.id, *_synthetic_times(world, c.id, 2), c) for c in world.contacts])
    return table


def seed_products(world: World) -> ObjectTable:
    table = ObjectTable("products", product_props)
    at = to_ms(world.now) - 400 * 86_400_000
    table.seed([Row(i + 1, at, at, i) for i in range(len(PRODUCTS))])
    return table


def seed_line_items(world: World) -> ObjectTable:
    source = LineItemSource(world)
    table = ObjectTable("line_items", source.props)
    rows = []
    now = to_ms(world.now)
    for deal in world.deals:
        created = to_ms(deal.created_at)
        at = min(now, created + 3_600_000)
        for item in world.line_items(deal):
            rows.append(Row(item.id, created, at, (deal, item.id - deal.id * 10)))
    table.seed(rows)
    table.next_id = max(table.next_id, (max(d.id for d in world.deals) + 1) * 10 if world.deals else 1)
    return table
