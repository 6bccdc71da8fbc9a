"""Every report over N deals and their stage events, on SQLite and PostgreSQL: seconds and peak RSS.

Builds a store with N deals (7-stage pipeline, ~4 stage events each, lost deals with a loss
reason, 20,000 accounts with segments, 60 owners in 6 teams), then runs each report in its own
child process (so each peak RSS is the report's own): ``funnel`` (the rich tables' maths),
``deals`` and ``losses`` (the HTML pages, charts included, written to a temporary file).
Targets: each report under 10 s and 500 MB.

    python bench/bench_reports.py                       # 1,000,000 deals, both databases
    python bench/bench_reports.py -n 100000 --only sqlite
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crmsync.model import UTC, Account, Deal, Owner, Pipeline, Stage
from crmsync.store import Store
from crmsync.store.stage_events import StageEvent, insert_events

CONNECTION = "bench-crm"
STAGES = [("s1", "Qualification", False, False), ("s2", "Discovery", False, False), ("s3", "Demo", False, False),
          ("s4", "Proposal", False, False), ("s5", "Negotiation", False, False), ("won", "Closed Won", True, True),
          ("lost", "Closed Lost", True, False)]
REASONS = ["Price", "Competitor", "No budget", "Timing", "No decision", "Missing feature"]
SEGMENTS = ["SMB", "MidMarket", "Enterprise"]
SOURCES = ["Web", "Referral", "Event", "Outbound", "Partner"]
REPORTS = ("funnel", "deals", "losses")
NOW = dt.datetime(2026, 11, 20, 12, tzinfo=UTC)


def reference_rows() -> list:  # type: ignore[type-arg]
    at = NOW - dt.timedelta(days=900)
    rows: list = [Pipeline(connection=CONNECTION, source_object="pipelines", source_id="p", modified_at=at,  # type: ignore[type-arg]
                           name="Sales")]
    rows += [Stage(connection=CONNECTION, source_object="stages", source_id=sid, modified_at=at, name=name,
                   pipeline_id="p", display_order=n, is_closed=closed, is_won=won)
             for n, (sid, name, closed, won) in enumerate(STAGES)]
    rows += [Owner(connection=CONNECTION, source_object="owners", source_id=str(i), modified_at=at,
                   name=f"Rep {i}", team=f"Team {i % 6}") for i in range(60)]
    rows += [Account(connection=CONNECTION, source_object="accounts", source_id=str(i), modified_at=at,
                     name=f"Account {i}", segment=SEGMENTS[i % 3]) for i in range(20_000)]
    return rows


def deal_chunks(n: int, chunk: int, seed: int = 7) -> Iterator[tuple[list[Deal], list[StageEvent]]]:
    rng = random.Random(seed)
    for start in range(0, n, chunk):
        deals, events = [], []
        for i in range(start, min(n, start + chunk)):
            created = NOW - dt.timedelta(seconds=rng.randrange(5 * 86_400, 720 * 86_400))
            outcome = rng.random()
            reached = rng.randrange(0, 5)
            path = [f"s{k + 1}" for k in range(reached + 1)]
            closed = outcome < 0.6
            won = closed and outcome < 0.3
            if won:
                path = [f"s{k + 1}" for k in range(5)] + ["won"]
            elif closed:
                path.append("lost")
            t = created
            before = None
            for stage in path:
                events.append(StageEvent(CONNECTION, str(i), "p", before, stage, t, "history"))
                before = stage
                t += dt.timedelta(seconds=rng.randrange(3_600, 40 * 86_400))
            deals.append(Deal(
                connection=CONNECTION, source_object="deals", source_id=str(i), modified_at=t, created_at=created,
                name=f"Deal {i}", amount=Decimal(rng.randrange(1_000, 20_000_000)) / 100,
                currency="EUR" if i % 50 else "USD", pipeline_id="p", stage_id=path[-1], is_closed=closed,
                is_won=won, owner_id=str(rng.randrange(60)), account_id=str(rng.randrange(20_000)),
                lead_source=rng.choice(SOURCES), stage_changed_at=events[-1].at,
                extra={"loss_reason": rng.choice(REASONS)} if closed and not won else {}))
        yield deals, events


def populate(store: Store, n: int, chunk: int = 5_000) -> float:
    started = time.perf_counter()
    store.upgrade()
    with store.transaction() as tx:
        tx.upsert(reference_rows())
    for deals, events in deal_chunks(n, chunk):
        with store.transaction() as tx:
            tx.upsert(deals)
            insert_events(tx.conn, events)
    return time.perf_counter() - started


def run_report(name: str, url: str) -> None:
    """In the child: run one report, print seconds and peak RSS."""
    from crmsync.report.deal_metrics import rollup
    from crmsync.report.deal_stream import iter_deal_facts
    from crmsync.report.funnel import compute_funnels
    from crmsync.report.funnel_data import load_funnel_input, load_owners
    from crmsync.report.page import write_html
    from crmsync.report.revenue import deals_page, losses_page

    started = time.perf_counter()
    store = Store.open(url)
    try:
        if name == "funnel":  # the rich tables of ``crmsync report funnel`` (loads records)
            rows = sum(len(f.rows) for f in compute_funnels(load_funnel_input(store)))
            detail = f"{rows} funnel rows"
        else:  # ``crmsync report deals|losses``: one streamed pass into a Rollup
            totals = rollup(iter_deal_facts(store, owners=load_owners(store)))
            page = deals_page(totals, now=NOW) if name == "deals" else losses_page(totals, now=NOW)
            with tempfile.TemporaryDirectory() as tmp:
                size = write_html(page, Path(tmp) / "report.html").stat().st_size
            detail = f"{totals.total.deals:,} deals, {len(page.charts)} charts, {len(page.tables)} tables, " \
                     f"{size / 1e6:.2f} MB html"
    finally:
        store.close()
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  {name:<7} {seconds:7.1f} s  peak RSS {peak_mb:7.0f} MB  {detail}", flush=True)


def bench(label: str, url: str, n: int, reports: Sequence[str]) -> None:
    store = Store.open(url)
    try:
        print(f"{label}: populating {n:,} deals ...", flush=True)
        print(f"{label}: populated in {populate(store, n):.1f} s", flush=True)
    finally:
        store.close()
    for name in reports:
        subprocess.run([sys.executable, __file__, "--child", name, "--url", url], check=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--count", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="admin connection used to create and drop a throwaway database")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--reports", default=",".join(REPORTS),
                        help="comma-separated subset of: " + ", ".join(REPORTS))
    parser.add_argument("--child", choices=REPORTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_report(args.child, args.url)
        return 0
    reports = [r for r in args.reports.split(",") if r]
    unknown = set(reports) - set(REPORTS)
    if unknown:
        parser.error(f"--reports: unknown {', '.join(sorted(unknown))}")
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            bench("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.count, reports)
    if args.only in (None, "postgresql"):
        admin_url = make_url(args.pg_url).set(drivername="postgresql+psycopg")
        name = f"crmsync_bench_{secrets.token_hex(4)}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            bench("postgresql", admin_url.set(database=name).render_as_string(hide_password=False), args.count,
                  reports)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
