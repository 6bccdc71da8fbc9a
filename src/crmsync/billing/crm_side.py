"""The CRM side of billing, read from the store: deals, their line items, products, price books.

CRMs differ in where a line's product code lives: Salesforce and HubSpot copy it onto the line
(``ProductCode``, ``hs_sku``), Pipedrive only links the product. Lines without a code get it from
their product here, so the billing checks see the same data whichever CRM it came from. CRMs with
no price-book object (HubSpot, Pipedrive) list a price on the product itself; that price is
compared with billing like a price-book entry (``price_book_id`` = ``product``).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

from crmsync.model import Deal, LineItem, ObjectType, PriceBookEntry, Product
from crmsync.store import Store


@dataclass
class CrmSide:
    connection: str
    deals: list[Deal] = field(default_factory=list)
    lines: dict[str, list[LineItem]] = field(default_factory=dict)  # deal id -> lines
    products: list[Product] = field(default_factory=list)
    entries: list[PriceBookEntry] = field(default_factory=list)

    def codes(self) -> list[str]:
        return sorted({p.code for p in self.products if p.code}
                      | {li.product_code for ls in self.lines.values() for li in ls if li.product_code})

    def deals_with_lines(self) -> list[tuple[Deal, list[LineItem]]]:
        return [(d, self.lines.get(d.source_id, [])) for d in self.deals]


def load_crm_side(store: Store, connection: str) -> CrmSide:
    side = CrmSide(connection)
    side.products = [p for p in store.iter_records(ObjectType.PRODUCT, connection=connection)
                     if isinstance(p, Product)]
    code_of = {p.source_id: p.code for p in side.products if p.code}
    side.entries = [e for e in store.iter_records(ObjectType.PRICE_BOOK_ENTRY, connection=connection)
                    if isinstance(e, PriceBookEntry)]
    if not side.entries:
        side.entries = [product_price_entry(p) for p in side.products if p.unit_price is not None]
    lines: dict[str, list[LineItem]] = defaultdict(list)
    for li in store.iter_records(ObjectType.LINE_ITEM, connection=connection):
        if not isinstance(li, LineItem) or not li.deal_id or li.deleted:
            continue
        if not li.product_code and li.product_id in code_of:
            li = dataclasses.replace(li, product_code=code_of[li.product_id])
        lines[str(li.deal_id)].append(li)
    side.lines = dict(lines)
    side.deals = [d for d in store.iter_records(ObjectType.DEAL, connection=connection) if isinstance(d, Deal)]
    return side


def product_price_entry(product: Product) -> PriceBookEntry:
    """A product's own list price as a price-book entry (for CRMs without price books)."""
    extra = {"billing_period": product.billing_period} if product.billing_period else {}
    return PriceBookEntry(connection=product.connection, source_object=product.source_object,
                          source_id=product.source_id, modified_at=product.modified_at, price_book_id="product",
                          product_id=product.source_id, unit_price=product.unit_price,
                          currency=product.currency, extra=extra)
