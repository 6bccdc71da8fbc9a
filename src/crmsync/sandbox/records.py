"""Canonical records (Deal, LineItem, Product, PriceBookEntry) built from the sandbox World.

The CRM connectors normalise their own dialects into these same shapes; this module gives the
billing checks and the sandbox commands the CRM side without going through a CRM, the way the
CRM simulators derive their line items (``world.line_items``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from crmsync.model import Deal, LineItem, PriceBookEntry, Product
from crmsync.sandbox.world import (
    BILLING_PERIOD_MONTHS,
    CURRENCY,
    PRODUCTS,
    STAGES,
    WDeal,
    World,
    crm_list_price,
)


def deal_record(world: World, deal: WDeal, connection: str = "world") -> Deal:
    stage = STAGES[deal.stage]
    return Deal(connection=connection, source_object="deal", source_id=str(deal.id), modified_at=deal.modified_at,
                created_at=deal.created_at, name=deal.name, amount=deal.amount, currency=deal.currency,
                stage_id=stage.key, is_closed=stage.is_closed, is_won=stage.is_won, close_date=deal.close_date,
                owner_id=str(deal.owner_id), account_id=str(deal.account_id), deal_type=deal.deal_type,
                contract_start=deal.contract_start, contract_end=deal.contract_end, pipeline_id="default",
                stage_changed_at=deal.stage_changed_at, last_activity_at=deal.last_activity_at,
                extra={k: v for k, v in deal.custom_fields().items() if v is not None})


def line_records(world: World, deal: WDeal, connection: str = "world") -> list[LineItem]:
    out = []
    for item in world.line_items(deal):
        out.append(LineItem(connection=connection, source_object="line_item", source_id=str(item.id),
                            modified_at=deal.modified_at, deal_id=str(deal.id), product_id=item.product.code,
                            product_code=item.product.code, name=item.product.name, quantity=item.quantity,
                            unit_price=item.unit_price, list_price=item.list_price,
                            discount_percent=item.discount_percent, total=item.total, currency=deal.currency,
                            billing_period=item.billing_period, term_months=item.term_months))
    return out


def product_records(world: World, connection: str = "world") -> tuple[list[Product], list[PriceBookEntry]]:
    """The CRM catalog: products with their monthly list price, and one standard price book."""
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    products, entries = [], []
    for p in PRODUCTS:
        price = crm_list_price(p)
        products.append(Product(connection=connection, source_object="product", source_id=p.code, modified_at=at,
                                name=p.name, code=p.code, family=p.family, unit_price=price, currency=CURRENCY,
                                billing_period="MONTHLY"))
        for period, months in (("MONTHLY", 1), ("ANNUAL", 12)):
            entries.append(PriceBookEntry(connection=connection, source_object="price_book_entry",
                                          source_id=f"std-{p.code}-{period}", modified_at=at, price_book_id="std",
                                          product_id=p.code, unit_price=(price * months).quantize(Decimal("0.01")),
                                          currency=CURRENCY, extra={"billing_period": period}))
    return products, entries


MONTHS = BILLING_PERIOD_MONTHS
