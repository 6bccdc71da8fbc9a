"""SQLite writes beside a busy Python thread: ``executemany`` against one multi-row statement (figures).

sqlite3 lets go of the GIL around each ``sqlite3_step``; ``executemany`` steps once per row. While
another thread runs Python (in a backfill: the connector mapping the next page), every row waits
for the GIL to come back, up to the interpreter's switch interval. ``store.sqlite_batch`` writes a
page as one ``INSERT .. VALUES (..), (..)`` statement instead. This bench writes stage-event rows
(crmsync's ``stage_events`` table: a unique index and a secondary one) in pages of 500, one
transaction a page, both ways, alone and beside a thread that only computes, and prints the wall
time and how far the busy thread got.

    python bench/bench_sqlite_gil.py --rows 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from crmsync.store.sqlite_batch import statements

SCHEMA = (
    "CREATE TABLE stage_events (id INTEGER PRIMARY KEY, connection VARCHAR NOT NULL, deal_id VARCHAR NOT NULL,"
    " pipeline_id VARCHAR, from_stage_id VARCHAR, to_stage_id VARCHAR NOT NULL, at VARCHAR(32) NOT NULL,"
    " source VARCHAR NOT NULL, recorded_at VARCHAR(32) NOT NULL,"
    " CONSTRAINT uq UNIQUE (connection, deal_id, at, to_stage_id))",
    "CREATE INDEX ix_pipeline ON stage_events (connection, pipeline_id)",
)
INSERT = ("INSERT INTO stage_events (connection, deal_id, pipeline_id, from_stage_id, to_stage_id, at, source,"
          " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (connection, deal_id, at, to_stage_id) DO NOTHING")
PAGE = 500


def rows(n: int, seed: int) -> list[tuple[object, ...]]:
    ids = list(range(1, n + 1))
    random.Random(seed).shuffle(ids)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [("pd", str(i), "1", None, str(i % 7 + 1), (base + dt.timedelta(seconds=37 * i)).isoformat(), "sync",
             "2026-12-03T00:00:00+00:00") for i in ids]


def run(path: Path, data: list[tuple[object, ...]], *, multi_row: bool, busy: bool) -> tuple[float, int]:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    for ddl in SCHEMA:
        db.execute(ddl)
    stop = threading.Event()
    loops = [0]

    def compute() -> None:
        while not stop.is_set():
            total = 0
            for i in range(2_000):
                total += i * i
            loops[0] += 1

    worker = threading.Thread(target=compute, daemon=True)
    if busy:
        worker.start()
    t0 = time.perf_counter()
    for start in range(0, len(data), PAGE):
        page = data[start : start + PAGE]
        db.execute("BEGIN IMMEDIATE")
        if multi_row:
            for sql, flat in statements(INSERT, page):
                db.execute(sql, flat)
        else:
            db.executemany(INSERT, page)
        db.execute("COMMIT")
    wall = time.perf_counter() - t0
    stop.set()
    if busy:
        worker.join()
    db.close()
    return wall, loops[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data = rows(args.rows, args.seed)
    print(f"bench_sqlite_gil: {args.rows:,} stage-event rows, pages of {PAGE}, one transaction a page", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-gil-") as tmp:
        for n, (multi_row, busy) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
            wall, loops = run(Path(tmp) / f"run-{n}.db", data, multi_row=multi_row, busy=busy)
            how = "multi-row VALUES" if multi_row else "executemany     "
            beside = f"beside a busy thread ({loops:,} loops)" if busy else "alone"
            print(f"{how} | {wall:7.2f}s | {args.rows / wall:>9,.0f} rows/s | {beside}", flush=True)


if __name__ == "__main__":
    main()
