"""Bulk-upsert throughput of crmsync.store on SQLite and PostgreSQL.

Generates N realistic Deal records (Decimals, dates, contact ids, nested ``extra``), upserts them in
pages (one transaction per page, like the sync engine) into a fresh SQLite file and into a throwaway
PostgreSQL database (created and dropped through ``--pg-url``), then upserts them again with a newer
``modified_at`` (the update path), and prints deals/s for each.

    python bench/bench_store.py                      # 200,000 deals, pages of 2,000, both databases
    python bench/bench_store.py --only sqlite -n 50000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crmsync.model import UTC, Deal
from crmsync.store import Store

STAGES = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin", "closedwon"]
SOURCES = ["Web", "Partner", "Outbound", "Event", None]


def make_deals(n: int, *, seed: int = 7, connection: str = "hubspot-main") -> list[Deal]:
    rng = random.Random(seed)
    base = dt.datetime(2024, 1, 1, tzinfo=UTC)
    deals = []
    for i in range(n):
        created = base + dt.timedelta(seconds=rng.randrange(0, 300 * 86400))
        modified = created + dt.timedelta(seconds=rng.randrange(0, 30 * 86400), microseconds=rng.randrange(10**6))
        close = (created + dt.timedelta(days=rng.randrange(10, 180))).date()
        deals.append(
            Deal(
                connection=connection,
                source_object="deals",
                source_id=str(10_000_000 + i),
                modified_at=modified,
                created_at=created,
                name=f"Deal {i} - Acme {rng.randrange(1000)} expansion",
                amount=Decimal(rng.randrange(100, 5_000_000)) / 100,
                currency=rng.choice(["USD", "EUR", "GBP"]),
                pipeline_id="default",
                stage_id=rng.choice(STAGES),
                probability=Decimal(rng.randrange(0, 101)) / 100,
                is_closed=False,
                close_date=close,
                owner_id=str(rng.randrange(100, 160)),
                account_id=str(rng.randrange(1, 20_000)),
                contact_ids=[str(rng.randrange(1, 50_000)) for _ in range(rng.randrange(0, 4))],
                deal_type=rng.choice(["newbusiness", "existingbusiness"]),
                lead_source=rng.choice(SOURCES),
                stage_changed_at=modified - dt.timedelta(days=rng.randrange(0, 20)),
                last_activity_at=modified,
                extra={
                    "hs_object_id": str(10_000_000 + i),
                    "hs_priority": rng.choice(["low", "medium", "high"]),
                    "custom_region": {"name": rng.choice(["EMEA", "NA", "APAC"]), "tier": rng.randrange(1, 4)},
                    "tags": ["inbound", "q3"] if i % 3 == 0 else [],
                },
            )
        )
    return deals


def bumped(deals: Sequence[Deal]) -> list[Deal]:
    """The same deals, a minute later, with a changed amount (the update path)."""
    out = []
    for d in deals:
        out.append(
            Deal(
                **{
                    **d.as_dict(),
                    "modified_at": d.modified_at + dt.timedelta(minutes=1),
                    "amount": (d.amount or Decimal(0)) + Decimal("1.01"),
                }
            )
        )
    return out


def timed_upsert(store: Store, deals: Sequence[Deal], page: int) -> tuple[float, int]:
    start = time.perf_counter()
    written = 0
    for i in range(0, len(deals), page):
        with store.transaction() as tx:
            written += tx.upsert(deals[i : i + page])
            tx.save_cursor(deals[0].connection, "deals", {"after": deals[min(i + page, len(deals)) - 1].source_id})
    return time.perf_counter() - start, written


def run(label: str, store: Store, deals: list[Deal], updates: list[Deal], page: int, report: Callable[[str], None]) -> None:
    store.upgrade()
    seconds, written = timed_upsert(store, deals, page)
    report(f"{label:<10} insert: {len(deals):>8,} deals in {seconds:6.2f}s = {len(deals) / seconds:>9,.0f} deals/s (rows written {written:,})")
    seconds, written = timed_upsert(store, updates, page)
    report(f"{label:<10} update: {len(updates):>8,} deals in {seconds:6.2f}s = {len(updates) / seconds:>9,.0f} deals/s (rows written {written:,})")
    assert store.count("deal") == len(deals), "row count mismatch"
    probe = updates[len(updates) // 2]
    assert store.get("deal", probe.connection, probe.source_id) == probe, "round trip mismatch"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--count", type=int, default=200_000)
    parser.add_argument("--page", type=int, default=2_000)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="admin connection used to create and drop a throwaway database")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    deals = make_deals(args.count)
    updates = bumped(deals)
    print(f"generated {2 * args.count:,} deals in {time.perf_counter() - t0:.1f}s; page size {args.page:,}")

    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
            try:
                run("sqlite", store, deals, updates, args.page, print)
            finally:
                store.close()

    if args.only in (None, "postgresql"):
        admin_url = make_url(args.pg_url).set(drivername="postgresql+psycopg")
        name = f"crmsync_bench_{secrets.token_hex(4)}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            store = Store.open(admin_url.set(database=name).render_as_string(hide_password=False))
            try:
                run("postgresql", store, deals, updates, args.page, print)
            finally:
                store.close()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
