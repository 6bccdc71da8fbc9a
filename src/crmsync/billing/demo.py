"""The billing part of ``crmsync demo``: drift between the CRMs and Meteroid, and won deals
turned into customers and subscriptions (idempotently: a second demo run creates nothing new)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from crmsync.billing.catalog import load_catalog
from crmsync.billing.checks import CheckConfig
from crmsync.billing.crm_side import load_crm_side
from crmsync.billing.mapping import build_mapping
from crmsync.billing.reports import deal_drift, price_book_drift
from crmsync.billing.won_deals import provision, record_result
from crmsync.model import Account, Deal, LineItem, ObjectType, PriceBookEntry, Product
from crmsync.settings import Settings
from crmsync.store import Store


def world_crm_side(seed: int, deals: int) -> tuple[list[tuple[Deal, list[LineItem]]], list[Product], list[PriceBookEntry]]:
    """The CRM side of a generated sandbox world (``crmsync billing ... --world-seed``): its deals
    with their line items, products and price-book entries, without going through a CRM."""
    from crmsync.sandbox import generate_world
    from crmsync.sandbox.records import deal_record, line_records, product_records

    world = generate_world(seed, deals)
    products, entries = product_records(world)
    return [(deal_record(world, d), line_records(world, d)) for d in world.deals], products, entries


def run_billing_demo(console: Console, settings: Settings, store: Store, *, provision_per_crm: int = 5,
                     details: bool = True) -> None:
    from crmsync.connectors.meteroid import MeteroidConnector

    if not settings.billing.connection:
        console.print("[yellow]no billing connection configured; skipping billing[/yellow]")
        return
    connector = MeteroidConnector(settings.connection(settings.billing.connection))
    try:
        catalog = load_catalog(connector)
        cfg = CheckConfig(amount_tolerance=Decimal(settings.billing.amount_tolerance),
                          discount_approval_threshold=Decimal(settings.billing.discount_approval_threshold))
        drift = Table(title="drift between CRM and billing (per CRM)")
        for col in ("connection", "price-book drift", "deal mismatches", "money at stake", "unmatched products"):
            drift.add_column(col)
        provisioned = Table(title="won deals turned into subscriptions")
        for col in ("connection", "deal", "status", "customer", "subscriptions", "created", "note"):
            provisioned.add_column(col, overflow="fold")
        today = dt.datetime.now(dt.UTC).date()
        for conn in settings.connections:
            if not conn.is_crm:
                continue
            side = load_crm_side(store, conn.name)
            mapping = build_mapping(side.codes(), catalog, settings.billing.product_map)
            lines = side.lines
            rows = price_book_drift(side.products, side.entries, mapping)
            deal_rows = deal_drift(side.deals_with_lines(), catalog, mapping, cfg)
            at_stake = sum((r.money_at_stake for r in rows + deal_rows), Decimal(0))
            drift.add_row(conn.name, str(len(rows)), str(len(deal_rows)), f"{at_stake:,.2f}",
                          ", ".join(mapping.report.unmatched_crm) or "none")
            won = [d for d in side.deals if d.is_won and d.contract_start and d.contract_start >= today
                   and lines.get(d.source_id)]
            for deal in won[:provision_per_crm]:
                account = store.get(ObjectType.ACCOUNT, conn.name, deal.account_id) if deal.account_id else None
                result = provision(deal, lines[deal.source_id], connector=connector, catalog=catalog,
                                   mapping=mapping, connection=conn.name,
                                   account=account if isinstance(account, Account) else None, cfg=cfg)
                record_result(store, deal, result, billing_connection=settings.billing.connection, today=today)
                provisioned.add_row(conn.name, deal.source_id, result.status, result.customer_id or "-",
                                    ", ".join(result.subscription_ids) or "-",
                                    f"customer {int(result.created_customer)}, subs {result.created_subscriptions}",
                                    (result.error or f"{len(result.findings)} findings")[:90])
        console.print(drift)
        if details:
            console.print(provisioned)
        else:
            outcomes = Counter(provisioned.columns[2].cells)
            console.print("won deals to subscriptions: "
                          + (", ".join(f"{n} {status}" for status, n in sorted(outcomes.items())) or "none"))
    finally:
        connector.close()
