"""Drift (every billing mismatch with the money at stake), renewals (60-90 days) and price-book sync."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from crmsync.billing.catalog import PERIOD_MONTHS, BillingCatalog
from crmsync.billing.checks import CheckConfig, Finding, run_checks
from crmsync.billing.mapping import ProductMapping
from crmsync.csv_cells import safe_row
from crmsync.model import Deal, LineItem, PriceBookEntry, Product


@dataclass(frozen=True, slots=True)
class DriftRow:
    kind: str  # "price_book" or a check name
    subject: str  # product code or deal id
    crm_value: str
    billing_value: str
    money_at_stake: Decimal
    currency: str | None
    reason: str


def price_book_drift(products: Iterable[Product], entries: Iterable[PriceBookEntry],
                     mapping: ProductMapping) -> list[DriftRow]:
    """CRM product / price-book prices vs the billing plan price for the same period."""
    rows = []
    code_of = {p.source_id: p.code for p in products}
    for e in entries:
        code = code_of.get(e.product_id or "") or e.product_id
        comp = mapping.component(code)
        period = str(e.extra.get("billing_period", "MONTHLY"))
        if comp is None or e.unit_price is None:
            continue
        billing = comp.price_for(period)
        if billing is not None and billing != e.unit_price:
            rows.append(DriftRow("price_book", f"{code} ({period})", str(e.unit_price), str(billing),
                                 abs(e.unit_price - billing), e.currency,
                                 f"price book {e.price_book_id} lists {e.unit_price}, billing charges {billing}"))
    return rows


def deal_drift(deals: Iterable[tuple[Deal, Sequence[LineItem]]], catalog: BillingCatalog, mapping: ProductMapping,
               cfg: CheckConfig | None = None) -> list[DriftRow]:
    rows = []
    for deal, lines in deals:
        for f in run_checks(deal, lines, catalog, mapping, cfg):
            rows.append(_row(f))
    return rows


def _row(f: Finding) -> DriftRow:
    return DriftRow(f.check, f"deal {f.deal_id}" + (f" line {f.line_id}" if f.line_id else ""),
                    f.details.get("crm", ""), f.details.get("billing", ""), f.money_at_stake, f.currency, f.reason)


def write_csv(rows: Sequence[DriftRow], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "subject", "crm_value", "billing_value", "money_at_stake", "currency", "reason"])
        for r in rows:
            writer.writerow(safe_row([r.kind, r.subject, r.crm_value, r.billing_value, r.money_at_stake,
                                      r.currency or "", r.reason]))


@dataclass(frozen=True, slots=True)
class RenewalRow:
    subscription_id: str
    customer: str
    plan: str
    end_date: dt.date
    days_left: int
    arr: Decimal
    status: str
    renewal_status: str  # cancelled | renewal_deal_open | needs_renewal


def renewals(subscriptions: Iterable[dict[str, Any]], today: dt.date, *, window: tuple[int, int] = (60, 90),
             open_renewal_accounts: set[str] | None = None) -> list[RenewalRow]:
    rows = []
    for s in subscriptions:
        if not s.get("end_date"):
            continue
        end = dt.date.fromisoformat(s["end_date"])
        days = (end - today).days
        if not window[0] <= days <= window[1]:
            continue
        alias = s.get("customer_alias") or ""
        if s["status"] == "CANCELLED":
            state = "cancelled"
        elif open_renewal_accounts and alias in open_renewal_accounts:
            state = "renewal_deal_open"
        else:
            state = "needs_renewal"
        rows.append(RenewalRow(s["id"], s.get("customer_name") or alias, s.get("plan_name", ""), end, days,
                               (Decimal(int(s["mrr_cents"])) * 12 / 100).quantize(Decimal("0.01")), s["status"], state))
    return sorted(rows, key=lambda r: r.end_date)


def price_book_updates(products: Iterable[Product], entries: Iterable[PriceBookEntry], mapping: ProductMapping,
                       *, master: str) -> list[dict[str, Any]]:
    """With billing as master: one update per CRM price-book entry whose price differs (for the outbox)."""
    if master != "billing":
        return []
    out = []
    code_of = {p.source_id: p.code for p in products}
    for e in entries:
        code = code_of.get(e.product_id or "") or e.product_id
        comp = mapping.component(code)
        period = str(e.extra.get("billing_period", "MONTHLY"))
        billing = comp.price_for(period) if comp else None
        if billing is not None and e.unit_price != billing and period in PERIOD_MONTHS:
            out.append({"connection": e.connection, "object_name": "price_book_entries", "source_id": e.source_id,
                        "fields": {"unit_price": str(billing)}, "based_on_modified_at": e.modified_at,
                        "idempotency_key": f"billing:price:{e.connection}:{e.source_id}:{billing}"})
    return out
