"""``crmsync billing drift | renewals | sync``: thin shells over crmsync.billing (mounted by cli.py).

The CRM side comes from the store (records the CRM connectors pulled) or, with ``--world-seed``,
from the sandbox World; the billing side always from the configured Meteroid connection.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from crmsync.billing.catalog import BillingCatalog, load_catalog
from crmsync.billing.checks import CheckConfig
from crmsync.billing.mapping import ProductMapping, build_mapping
from crmsync.billing.reports import deal_drift, price_book_drift, price_book_updates, renewals, write_csv
from crmsync.cli_options import ConfigOption, JsonOption, console, print_json, state
from crmsync.model import Deal, LineItem, PriceBookEntry, Product
from crmsync.settings import Settings

billing_app = typer.Typer(help="Quote-to-cash checks against Meteroid: drift, renewals, price-book sync.",
                          no_args_is_help=True)


def _settings(config: Path | None) -> Settings:
    """The global ``--config/-c`` (or this command's own), secrets handed to the log redactor."""
    return state.settings(config)


def _connector(settings: Settings) -> Any:
    from crmsync.connectors.meteroid import MeteroidConnector

    if not settings.billing.connection:
        raise typer.BadParameter("billing.connection is not set in the configuration")
    return MeteroidConnector(settings.connection(settings.billing.connection))


def _crm_side(settings: Settings, world_seed: int | None, world_deals: int
              ) -> tuple[list[tuple[Deal, list[LineItem]]], list[Product], list[PriceBookEntry]]:
    if world_seed is not None:
        from crmsync.billing.demo import world_crm_side

        return world_crm_side(world_seed, world_deals)
    from crmsync.billing.crm_side import load_crm_side

    store = state.read_store()  # read-only: never migrated here
    deals: list[tuple[Deal, list[LineItem]]] = []
    products: list[Product] = []
    entries: list[PriceBookEntry] = []
    try:
        for conn in settings.connections:
            if not conn.is_crm:
                continue
            side = load_crm_side(store, conn.name)
            deals += side.deals_with_lines()
            products += side.products
            entries += side.entries
        return deals, products, entries
    finally:
        store.close()


def _catalog(settings: Settings, connector: Any, codes: list[str]) -> tuple[BillingCatalog, ProductMapping]:
    catalog = load_catalog(connector)
    return catalog, build_mapping(codes, catalog, settings.billing.product_map)


@billing_app.command()
def drift(config: ConfigOption = None,
          as_json: JsonOption = False,
          csv_path: Path | None = typer.Option(None, "--csv", help="write every mismatch to this CSV"),
          world_seed: int | None = typer.Option(None, help="use the sandbox World as the CRM side"),
          world_deals: int = typer.Option(1000), top: int = typer.Option(25, help="rows shown in the table")) -> None:
    """Every mismatch between the CRM and billing, with the money at stake."""
    settings = _settings(config)
    connector = _connector(settings)
    deals, products, entries = _crm_side(settings, world_seed, world_deals)
    codes = sorted({p.code for p in products if p.code} | {li.product_code for _, ls in deals for li in ls
                                                           if li.product_code})
    catalog, mapping = _catalog(settings, connector, codes)
    cfg = CheckConfig(amount_tolerance=Decimal(settings.billing.amount_tolerance),
                      discount_approval_threshold=Decimal(settings.billing.discount_approval_threshold))
    rows = price_book_drift(products, entries, mapping) + deal_drift(deals, catalog, mapping, cfg)
    rows.sort(key=lambda r: r.money_at_stake, reverse=True)
    total = sum((r.money_at_stake for r in rows), Decimal(0))
    if csv_path is not None:
        write_csv(rows, csv_path)
    connector.close()
    if as_json:
        print_json({"mismatches": [dataclasses.asdict(r) for r in rows], "total_at_stake": total,
                    "unmatched_crm_products": list(mapping.report.unmatched_crm),
                    "csv": str(csv_path) if csv_path else None})
        return
    table = Table(title=f"billing drift: {len(rows)} mismatches")
    for col in ("kind", "subject", "crm", "billing", "at stake"):
        table.add_column(col, overflow="fold")
    table.add_column("reason", overflow="fold", ratio=1)
    for r in rows[:top]:
        table.add_row(r.kind, r.subject, r.crm_value, r.billing_value, f"{r.money_at_stake} {r.currency or ''}",
                      r.reason)
    console.print(table)
    console.print(f"total at stake: {total}; unmatched CRM products: {mapping.report.unmatched_crm or 'none'}")
    if csv_path is not None:
        console.print(f"wrote {len(rows)} rows to {csv_path}")


@billing_app.command("renewals")
def renewals_cmd(config: ConfigOption = None, as_json: JsonOption = False,
                 days_from: int = typer.Option(60), days_to: int = typer.Option(90)) -> None:
    """Subscriptions ending in the next 60-90 days and their renewal status."""
    settings = _settings(config)
    connector = _connector(settings)
    rows = renewals(connector.list_all("subscriptions"), dt.datetime.now(dt.UTC).date(), window=(days_from, days_to))
    connector.close()
    if as_json:
        print_json({"window_days": [days_from, days_to], "renewals": [dataclasses.asdict(r) for r in rows]})
        return
    table = Table(title=f"renewals in {days_from}-{days_to} days: {len(rows)}")
    for col in ("subscription", "customer", "plan", "ends", "days", "ARR", "status", "renewal"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.subscription_id, r.customer, r.plan, r.end_date.isoformat(), str(r.days_left), str(r.arr),
                      r.status, r.renewal_status)
    console.print(table)


@billing_app.command()
def sync(config: ConfigOption = None,
         world_seed: int | None = typer.Option(None), world_deals: int = typer.Option(200)) -> None:
    """Price-book sync: billing as master enqueues CRM price updates; report_only prints them."""
    settings = _settings(config)
    connector = _connector(settings)
    _, products, entries = _crm_side(settings, world_seed, world_deals)
    _, mapping = _catalog(settings, connector, sorted({p.code for p in products if p.code}))
    master = settings.billing.price_master
    drift_rows = price_book_drift(products, entries, mapping)
    for r in drift_rows:
        console.print(f"{r.subject}: CRM {r.crm_value} vs billing {r.billing_value}")
    updates = price_book_updates(products, entries, mapping, master=master)
    if updates and world_seed is None:
        from crmsync.store import OutboxItem, Store

        store = Store.open(settings.store.url)
        with store.transaction() as tx:
            queued = sum(bool(tx.enqueue(OutboxItem(operation="update", **u))) for u in updates)
        store.close()
        console.print(f"price master = billing: {queued} price-book updates queued")
    else:
        console.print(f"price master = {master}: {len(drift_rows)} differences reported, nothing queued")
    connector.close()
