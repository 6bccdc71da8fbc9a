"""The randomized store-equals-truth suite, long profile: many interleavings per CRM.

Draws interleavings with Hypothesis (the strategies of ``tests/e2e/truth_harness.py``: creates,
edits inside one timestamp unit, deletes, restores, account and line-item changes, sync cycles at
random page sizes with faults, kills and edits between pages), runs each against a fresh simulator
and a fresh store, and checks the store equals the CRM field by field once the edits stopped.
Prints, per CRM: interleavings tried, how many failed, the time taken, and the first failures
(each a readable script that ``tests/e2e/test_truth_suite.py`` can replay as a regression test).

    python bench/bench_truth_suite.py --examples 500 --crm pipedrive
    python bench/bench_truth_suite.py --examples 200 --crm salesforce,hubspot,pipedrive --seed 7
    python bench/bench_truth_suite.py --examples 100 --crm hubspot --shrink   # shrink the first failure
    CRMSYNC_TEST_STORE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres python bench/bench_truth_suite.py

With ``CRMSYNC_TEST_STORE_URL`` the stores are on that PostgreSQL server, in a throwaway database
created for the run and dropped after it.

Without ``--shrink`` failures are counted, not shrunk (shrinking one takes minutes).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from sqlalchemy import Engine, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from truth_harness import CRMS, Scenario, describe, run_scenario, scenarios, sqlite_store, truncate_all  # noqa: E402

from crmsync.logging import configure_logging  # noqa: E402
from crmsync.sandbox.core import LocalCA  # noqa: E402
from crmsync.store import Store  # noqa: E402
from crmsync.store.engine import normalize_url  # noqa: E402


@contextmanager
def store_for(directory: Path, server_store: Store | None) -> Iterator[Store]:
    if server_store is not None:
        truncate_all(server_store)
        yield server_store
        return
    with sqlite_store(directory) as store:
        yield store


def run_crm(crm: str, examples: int, rng_seed: int, shrink: bool, ca: LocalCA, directory: Path,
            server_store: Store | None) -> tuple[int, list[str], float, Counter[str]]:
    tried = 0
    failures: list[str] = []
    stats: Counter[str] = Counter()
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]

    @seed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=phases,
              suppress_health_check=list(HealthCheck))
    @given(scenario=scenarios(crm))
    def interleaving(scenario: Scenario) -> None:
        nonlocal tried
        tried += 1
        with store_for(directory, server_store) as store:
            try:
                problems = run_scenario(scenario, store, ca, stats)
            except Exception as exc:  # a harness or sync crash counts as a failure too
                problems = [f"crashed: {type(exc).__name__}: {exc}"]
        if problems:
            failures.append(describe(scenario, problems))
            if shrink:
                raise AssertionError(failures[-1])

    started = time.monotonic()
    try:
        interleaving()
    except AssertionError as exc:  # --shrink: Hypothesis re-raises the shrunk failure
        failures.append("shrunk:\n" + str(exc))
    return tried, failures, time.monotonic() - started, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=50, help="interleavings per CRM")
    parser.add_argument("--crm", default=",".join(CRMS))
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random, printed)")
    parser.add_argument("--shrink", action="store_true", help="stop at the first failure and shrink it")
    parser.add_argument("--show", type=int, default=3, help="failures printed per CRM")
    args = parser.parse_args()
    configure_logging("console", level="CRITICAL")
    rng_seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    url = os.environ.get("CRMSYNC_TEST_STORE_URL")
    server_store: Store | None = None
    admin: Engine | None = None
    db_name = f"crmsync_truth_bench_{secrets.token_hex(4)}"
    if url:
        admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        server_store = Store.open(normalize_url(url).set(database=db_name).render_as_string(hide_password=False))
        server_store.upgrade()
    print(f"seed {rng_seed}, store {'PostgreSQL' if server_store else 'SQLite'}")
    total_failed = 0
    with tempfile.TemporaryDirectory(prefix="truth-bench-") as tmp:
        ca = LocalCA.create(Path(tmp) / "ca")
        for crm in [c.strip() for c in args.crm.split(",") if c.strip()]:
            if crm not in CRMS:
                parser.error(f"unknown CRM {crm!r} (expected {', '.join(CRMS)})")
            tried, failures, took, stats = run_crm(crm, args.examples, rng_seed, args.shrink, ca, Path(tmp), server_store)
            total_failed += len(failures)
            print(f"{crm:<11} interleavings tried: {tried:>5}  failed: {len(failures):>4}  "
                  f"time: {took:7.1f} s  ({took / max(tried, 1):.2f} s each)", flush=True)
            print("  operations applied: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
            for failure in failures[:args.show]:
                print("  " + failure.replace("\n", "\n  "))
    if server_store is not None and admin is not None:
        server_store.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
    print(f"total failed: {total_failed}")


if __name__ == "__main__":
    main()
