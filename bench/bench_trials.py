"""What shadow mode and experiments cost: the shadow pass next to the live rules, the report, and
experiment assignment.

    python bench/bench_trials.py [--deals 2000] [--seed 7]

Backfills a Salesforce sandbox world into a SQLite store, records a candidate rule set (the shipped
rules with enterprise amounts scoring 40 and a daily task cap of 2) and opens a shadow period,
then times: the shadow pass over every lead and deal (both sides evaluated), the live full run on
the same store, the shadow report, and 100,000 experiment assignments. Prints figures; it asserts
nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from crmsync.model import now_utc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from crmsync.decide.runner import current_rule_set, run_full
    from crmsync.report.shadow import shadow_report
    from crmsync.rules.loader import load_rules
    from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, start_sandbox
    from crmsync.settings import load_settings
    from crmsync.store import Store
    from crmsync.sync.runner import open_engine
    from crmsync.trials.shadow import record_version, run_shadow, start_period

    rules = Path(__file__).resolve().parents[1] / "config" / "rules"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        candidate = work / "candidate"
        shutil.copytree(rules, candidate)
        scoring = candidate / "scoring.yaml"
        scoring.write_text(scoring.read_text().replace("{name: enterprise_amount, points: 20,",
                                                       "{name: enterprise_amount, points: 40,"))
        hygiene = candidate / "hygiene.yaml"
        hygiene.write_text(hygiene.read_text().replace("daily_cap_per_owner: 10", "daily_cap_per_owner: 2"))
        handle = start_sandbox(deals=args.deals, seed=args.seed, systems=("salesforce",), state_dir=work)
        try:
            url = f"sqlite:///{work / 'store.db'}"
            settings = load_settings(handle.write_config(work / "crmsync.yaml", store_url=url, rules_dir=str(rules)))
            store = Store.open(url)
            store.upgrade()
            name = CONNECTION_NAMES["salesforce"]
            with open_engine(settings, store, name) as engine:
                for object_name in CRM_OBJECTS["salesforce"]:
                    engine.backfill(object_name)
            now = now_utc()
            version = record_version(store, candidate, author="bench")
            period = start_period(store, version, now - dt.timedelta(hours=1), now + dt.timedelta(days=1),
                                  created_by="bench")
            live, _ = current_rule_set(settings, store)
            started = time.perf_counter()
            (shadow_run,) = run_shadow(store, live, name, [], now=now)
            shadow_s = time.perf_counter() - started
            started = time.perf_counter()
            live_run = run_full(settings, store, name, now=now)
            live_s = time.perf_counter() - started
            started = time.perf_counter()
            report = shadow_report(store, period)
            report_s = time.perf_counter() - started
            store.close()
        finally:
            handle.stop()
    print(f"world: {args.deals:,} deals (seed {args.seed}), Salesforce sandbox")
    print(f"shadow pass (both sides, {shadow_run.evaluated:,} records): {shadow_s:.2f} s; "
          f"decisions live {shadow_run.logged['live']:,}, shadow {shadow_run.logged['shadow']:,}")
    print(f"live full run ({live_run.evaluated:,} records, {live_run.logged:,} logged): {live_s:.2f} s")
    print(f"shadow report: {report_s:.3f} s; counts {report.counts}")

    (experiment,) = load_rules(rules).experiments
    started = time.perf_counter()
    groups = Counter(experiment.group_of("crm", f"00Q{n:012d}") for n in range(100_000))
    assign_s = time.perf_counter() - started
    print(f"experiment assignment: 100,000 records in {assign_s:.3f} s "
          f"({100_000 / assign_s:,.0f}/s); shares {dict((g, round(n / 100_000, 4)) for g, n in groups.items())}")


if __name__ == "__main__":
    main()
