"""The engine's write side alone: a backfill's pages, pulled once from the sandbox, written again (figures).

The sandbox runs in its own process; its deals are pulled once through the real connector and kept
in memory as the pages the connector yielded. Each round then backfills a fresh SQLite store from a
copy of those pages through ``SyncEngine`` (clean, stage events, upsert, quarantine check, cursor,
budget, commit), with no HTTP in the timed part, and prints wall and CPU seconds and the µs of CPU
per deal. This is the part of a backfill that runs on the engine's thread whatever the network does.

``--pragma`` runs SQLite pragmas on every store connection after crmsync's own, to compare settings:

    python bench/bench_write.py --deals 100000
    python bench/bench_write.py --deals 100000 --pragma wal_autocheckpoint=1000
    python bench/bench_write.py --deals 100000 --option commit_pages=1
"""

from __future__ import annotations

import argparse
import copy
import gc
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pull import start_sandbox  # noqa: E402
from crm_runs import connection_options  # noqa: E402

from crmsync.connectors import build_connector  # noqa: E402
from crmsync.connectors.base import Page  # noqa: E402
from crmsync.settings import ConnectionSettings  # noqa: E402
from crmsync.store import Store  # noqa: E402
from crmsync.sync.engine import SyncEngine  # noqa: E402


class ReplayedPages:
    """The connector, except that a pull of ``object_name`` yields the pages recorded before."""

    def __init__(self, connector: Any, object_name: str, pages: list[Page]) -> None:
        self._connector = connector
        self._object_name = object_name
        self._pages = pages
        self._next: list[Page] = []

    def rewind(self) -> None:
        """A fresh copy of the pages for the next pull (the engine cleans records in place); made
        here, outside the timed pull."""
        self._next = copy.deepcopy(self._pages)

    def pull(self, object_name: str, cursor: Any, **kwargs: Any) -> Iterator[Page]:
        if object_name != self._object_name:
            raise ValueError(f"only {self._object_name} were recorded")
        pages, self._next = self._next, []
        return iter(pages)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=20_000)
    parser.add_argument("--crm", default="pipedrive", choices=["pipedrive", "hubspot", "salesforce"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pragma", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a connection option (YAML value), e.g. commit_pages=1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
        proc, entry = start_sandbox(args.crm, args.deals, args.seed, Path(tmp))
        try:
            entry["objects"] = ["deals"]
            entry["options"] = {**entry.get("options", {}), "stage_history": False, "read_ahead": False,
                                **connection_options(args.option)}
            conn = ConnectionSettings.model_validate(entry)
            connector = build_connector(conn)
            pages = list(connector.pull("deals", None, backfill=True))
            replay: Any = ReplayedPages(connector, "deals", pages)
            print(f"bench_write: {args.crm}, {sum(len(p.records) for p in pages):,} deals in {len(pages)} pages"
                  + (f", pragmas {'; '.join(args.pragma)}" if args.pragma else "")
                  + (f", options {' '.join(args.option)}" if args.option else ""), flush=True)
            for n in range(args.rounds):
                store = Store.open(f"sqlite:///{tmp}/round-{n}.db")
                for pragma in args.pragma:
                    event.listen(store.engine, "connect", lambda dbapi, _rec, p=pragma: dbapi.execute(f"PRAGMA {p}"))
                store.upgrade()
                engine = SyncEngine(store, replay, conn)
                replay.rewind()
                gc.collect()
                t0, cpu0 = time.perf_counter(), time.process_time()
                result = engine.backfill("deals")
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                print(f"round {n + 1}: {result.records:,} deals | wall {wall:.2f}s | CPU {cpu:.2f}s "
                      f"| {cpu / max(result.records, 1) * 1e6:.0f} µs CPU per deal", flush=True)
                store.close()
            connector.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
