"""Cost of recording stage events on the pull path (SQLite and PostgreSQL).

Writes N deals in pages the way ``SyncEngine._apply`` does (one transaction per page) twice per
database -- once upserting only, once with ``record_stage_events`` first (one look-up of the
stored stages per page plus the event inserts) -- for three passes: a first backfill (every deal
new: one event each), a re-pull of the same records (no event) and a re-pull where 10% of the
deals moved stage (one event each). Prints deals/s per pass; the pull path's target is >10,000/s.

    python bench/bench_stage_events.py                 # 50,000 deals, pages of 1,000, both databases
    python bench/bench_stage_events.py --only sqlite -n 20000
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench_store import make_deals
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crmsync.model import Deal
from crmsync.store import Store
from crmsync.store.stage_events import count_stage_events, record_stage_events

STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin", "closedwon")


def write(store: Store, deals: Sequence[Deal], page: int, events: bool) -> float:
    started = time.perf_counter()
    for start in range(0, len(deals), page):
        chunk = deals[start : start + page]
        with store.transaction() as tx:
            if events:
                record_stage_events(tx.conn, chunk)
            tx.upsert(chunk)
    return time.perf_counter() - started


def passes(deals: list[Deal]) -> list[tuple[str, list[Deal]]]:
    later = dt.timedelta(hours=1)
    same = [dataclasses.replace(d, modified_at=d.modified_at + later) for d in deals]
    moved = []
    for i, d in enumerate(same):
        if i % 10 == 0:
            stage = STAGES[(STAGES.index(d.stage_id) + 1) % len(STAGES)] if d.stage_id in STAGES else STAGES[0]
            d = dataclasses.replace(d, stage_id=stage, modified_at=d.modified_at + later,
                                    stage_changed_at=d.modified_at + later)
        moved.append(d)
    return [("first backfill", deals), ("re-pull, no change", same), ("re-pull, 10% moved", moved)]


def run(label: str, open_store: Callable[[], Store], deals: list[Deal], page: int,
        report: Callable[[str], None]) -> None:
    for events in (False, True):
        store = open_store()
        try:
            for name, batch in passes(deals):
                seconds = write(store, batch, page, events)
                report(f"{label:<10} {'upsert + events' if events else 'upsert only':<16} {name:<20} "
                       f"{len(batch) / seconds:>10,.0f} deals/s  ({seconds:.2f} s)")
            if events:
                report(f"{label:<10} events stored: {count_stage_events(store.engine):,}")
        finally:
            store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=50_000)
    parser.add_argument("--page", type=int, default=1_000)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    deals = make_deals(args.n)
    print(f"{args.n:,} deals, pages of {args.page:,}")
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            counter = iter(range(10))

            def sqlite_store() -> Store:
                store = Store.open(f"sqlite:///{Path(tmp) / f'bench-{next(counter)}.db'}")
                store.upgrade()
                return store

            run("sqlite", sqlite_store, deals, args.page, print)
    if args.only != "sqlite":
        admin = create_engine(make_url(args.pg_url), isolation_level="AUTOCOMMIT")
        names: list[str] = []

        def pg_store() -> Store:
            name = f"crmsync_bench_{secrets.token_hex(4)}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            names.append(name)
            store = Store.open(make_url(args.pg_url).set(database=name).render_as_string(hide_password=False))
            store.upgrade()
            return store

        try:
            run("postgresql", pg_store, deals, args.page, print)
        finally:
            with admin.connect() as conn:
                for name in names:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
