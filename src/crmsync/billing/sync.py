"""The scheduled billing job: price-book drift (pushed when billing is the price master) and
won deals provisioned into Meteroid customers and subscriptions.

Each won deal is provisioned at most once: a deal whose provisioning succeeded (or was blocked by
a check, which became a CRM task) is remembered in ``kv_state``; a failed one is retried on the
next run, and ``provision`` itself looks up before it creates, so a retry never duplicates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from crmsync.billing.catalog import load_catalog
from crmsync.billing.checks import CheckConfig
from crmsync.billing.crm_side import load_crm_side
from crmsync.billing.mapping import build_mapping
from crmsync.billing.reports import price_book_drift, price_book_updates
from crmsync.billing.won_deals import provision, record_result
from crmsync.errors import describe_error
from crmsync.logging import get_logger
from crmsync.model import Account, ObjectType, now_utc
from crmsync.settings import Settings
from crmsync.store import OutboxItem, Store

log = get_logger("crmsync.billing")
PROVISIONED = "billing_provisioned"


@dataclass
class BillingSyncResult:
    drift: int = 0
    price_updates_queued: int = 0
    provisioned: int = 0
    blocked: int = 0
    failed: int = 0
    skipped: int = 0
    by_connection: dict[str, dict[str, int]] = field(default_factory=dict)

    def __int__(self) -> int:
        return self.provisioned


def run_billing_sync(settings: Settings, store: Store, *, today: dt.date | None = None,
                     limit: int | None = None) -> BillingSyncResult:
    from crmsync.connectors.meteroid import MeteroidConnector

    result = BillingSyncResult()
    if not settings.billing.connection:
        return result
    today = today or now_utc().date()
    cfg = CheckConfig(amount_tolerance=Decimal(settings.billing.amount_tolerance),
                      discount_approval_threshold=Decimal(settings.billing.discount_approval_threshold))
    connector = MeteroidConnector(settings.connection(settings.billing.connection))
    run_id = store.start_run("billing", settings.billing.connection)
    try:
        catalog = load_catalog(connector)
        for conn in settings.connections:
            if not conn.is_crm or not conn.enabled:
                continue
            counts = result.by_connection.setdefault(conn.name, {})
            side = load_crm_side(store, conn.name)
            lines = side.lines
            mapping = build_mapping(side.codes(), catalog, settings.billing.product_map)
            drift = price_book_drift(side.products, side.entries, mapping)
            result.drift += len(drift)
            updates = price_book_updates(side.products, [e for e in side.entries if e.price_book_id != "product"],
                                         mapping, master=settings.billing.price_master)
            if updates:
                with store.transaction() as tx:
                    result.price_updates_queued += sum(bool(tx.enqueue(OutboxItem(operation="update", **u)))
                                                       for u in updates)
            for deal in side.deals:
                if not deal.is_won or deal.source_id not in lines:
                    continue
                key = f"{conn.name}:{deal.source_id}"
                if store.get_state(PROVISIONED, key):
                    result.skipped += 1
                    continue
                if limit is not None and result.provisioned + result.blocked + result.failed >= limit:
                    break
                account = store.get(ObjectType.ACCOUNT, conn.name, deal.account_id) if deal.account_id else None
                outcome = provision(deal, lines[deal.source_id], connector=connector, catalog=catalog,
                                    mapping=mapping, connection=conn.name,
                                    account=account if isinstance(account, Account) else None, cfg=cfg)
                record_result(store, deal, outcome, billing_connection=settings.billing.connection, today=today)
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
                if outcome.status == "provisioned":
                    result.provisioned += 1
                elif outcome.status == "blocked":
                    result.blocked += 1
                else:
                    result.failed += 1
                    continue  # retried next run; provision looks up before it creates
                store.set_state(PROVISIONED, key, {"status": outcome.status, "customer": outcome.customer_id,
                                                   "subscriptions": outcome.subscription_ids,
                                                   "at": now_utc().isoformat()})
        store.finish_run(run_id, "ok", {"drift": result.drift, "provisioned": result.provisioned,
                                        "blocked": result.blocked, "failed": result.failed,
                                        "price_updates_queued": result.price_updates_queued})
    except Exception as exc:
        store.finish_run(run_id, "failed", {"provisioned": result.provisioned}, describe_error(exc))
        raise
    finally:
        connector.close()
    log.info("billing.synced", drift=result.drift, provisioned=result.provisioned, blocked=result.blocked,
             failed=result.failed)
    return result
