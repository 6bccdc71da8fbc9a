"""Precision and recall of every hygiene rule and billing check against the world's planted truth.

    python bench/bench_findings.py [--deals 2000] [--seed 7] [--rules-dir config/rules] [--crm]

Generates a seeded world (which records the deals and leads it planted each problem in), runs the
rule directory's hygiene rules and the billing checks with their shipped thresholds, and prints a
table per check: planted, flagged, found, precision, recall. ``--crm`` also measures through each
CRM's sandbox: backfill Salesforce, HubSpot and Pipedrive into a SQLite store and run the same
checks on what crmsync pulled. Prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console

from crmsync.accuracy import crm_scores, measure, scores_table, world_catalog
from crmsync.rules.loader import load_rules
from crmsync.sandbox import generate_world


def _through_crms(console: Console, deals: int, seed: int, rules_dir: str) -> None:
    from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, start_sandbox
    from crmsync.settings import load_settings
    from crmsync.store import Store
    from crmsync.sync.runner import open_engine

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        handle = start_sandbox(deals=deals, seed=seed, systems=("salesforce", "hubspot", "pipedrive"),
                               state_dir=workdir)
        try:
            url = f"sqlite:///{workdir / 'store.db'}"
            settings = load_settings(handle.write_config(workdir / "crmsync.yaml", store_url=url, rules_dir=rules_dir))
            store = Store.open(url)
            store.upgrade()
            rules = load_rules(rules_dir)
            catalog = world_catalog(handle.world)
            for system in ("salesforce", "hubspot", "pipedrive"):
                name = CONNECTION_NAMES[system]
                with open_engine(settings, store, name) as engine:
                    for object_name in CRM_OBJECTS[system]:
                        engine.backfill(object_name)
                scores = crm_scores(store, name, handle.world, rules, catalog)
                console.print(scores_table([s for s in scores if s.measured], title=f"through {name}"))
            store.close()
        finally:
            handle.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rules-dir", default="config/rules")
    parser.add_argument("--crm", action="store_true", help="also measure through each CRM's sandbox")
    args = parser.parse_args()
    console = Console(width=120)
    t0 = time.perf_counter()
    world = generate_world(args.seed, args.deals)
    generated = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores = measure(world, args.rules_dir)
    measured = time.perf_counter() - t1
    planted = {p: len(ids) for p, ids in world.planted.items()}
    problem_deals = set().union(*(ids for p, ids in world.planted.items() if p != "lead_untouched"))
    console.print(f"world: {len(world.deals):,} deals, {len(world.leads):,} leads (seed {args.seed}); "
                  f"{len(problem_deals):,} deals ({len(problem_deals) / max(1, len(world.deals)):.1%}) with a "
                  f"planted problem; generated in {generated:.2f}s, measured in {measured:.2f}s")
    console.print("planted: " + ", ".join(f"{p} {n}" for p, n in planted.items()))
    console.print(scores_table(scores, title="findings vs planted truth (world records)"))
    if args.crm:
        _through_crms(console, args.deals, args.seed, args.rules_dir)


if __name__ == "__main__":
    main()
