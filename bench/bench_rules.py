"""Time a full rules re-evaluation (scoring + routing + hygiene) over 1,000,000 deals, and an
incremental cycle over 1,000 changed deals, with the example rule set in config/rules.

    python bench/bench_rules.py [--deals 1000000] [--changed 1000] [--rules-dir config/rules]
                                [--warm]

``--warm`` also times a second full run that knows the
first run's decision keys (as the runner passes the decision log's keys), which skips them.
The machine's load average is printed first (other work on the cores shows in the figures).

Prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

from crmsync.model import Account, Deal, Owner, Stage
from crmsync.rules.context import RuleContext
from crmsync.rules.engine import evaluate, incremental
from crmsync.rules.loader import load_rules
from crmsync.rules.state import InMemoryRoutingState

NOW = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
CONN = "bench"
REGIONS = {"NA": ("US", "America/New_York"), "EMEA": ("DE", "Europe/Berlin"), "APAC": ("SG", "Asia/Singapore")}
STAGES = (
    ("qualification", "Qualification", 0, "0.10", False, False),
    ("discovery", "Discovery", 1, "0.20", False, False),
    ("demo", "Demo Scheduled", 2, "0.40", False, False),
    ("proposal", "Proposal Sent", 3, "0.60", False, False),
    ("negotiation", "Negotiation", 4, "0.80", False, False),
    ("closedwon", "Closed Won", 5, "1.00", True, True),
    ("closedlost", "Closed Lost", 6, "0.00", True, False),
)
CUSTOM = ("metrics", "economic_buyer", "decision_criteria", "decision_process", "identified_pain", "champion",
          "use_case", "success_criteria", "technical_requirements")


def build_context_parts() -> tuple[dict, dict, dict]:
    owners: dict[tuple[str, str], Owner] = {}
    n = 1
    for region, (_, tz) in REGIONS.items():
        for i in range(12):
            team = f"{region} Customer Success" if i % 6 == 5 else f"{region} Sales"
            owners[(CONN, str(n))] = Owner(
                connection=CONN, source_object="User", source_id=str(n), modified_at=NOW, name=f"rep {n}",
                team=team, region=region, timezone=tz, active=n % 11 != 0, out_of_office=n % 17 == 0,
                capacity_per_day=500,
            )
            n += 1
    stages = {
        (CONN, sid): Stage(connection=CONN, source_object="Stage", source_id=sid, modified_at=NOW, name=name,
                           pipeline_id="default", display_order=order, probability=Decimal(p),
                           is_closed=closed, is_won=won)
        for sid, name, order, p, closed, won in STAGES
    }
    rng = random.Random(11)
    accounts = {}
    for a in range(1, 20_001):
        region = rng.choice(tuple(REGIONS))
        accounts[(CONN, f"a{a}")] = Account(
            connection=CONN, source_object="Account", source_id=f"a{a}", modified_at=NOW, name=f"Company {a}",
            domain=f"company{a}.example", industry=rng.choice(("Software", "Retail", "Finance", "Healthcare", "Media")),
            country=REGIONS[region][0], region=region, segment=rng.choice(("SMB", "MidMarket", "Enterprise")),
            owner_id=str(rng.randint(1, 36)),
        )
    return owners, stages, accounts


def build_deals(n: int, seed: int = 7) -> list[Deal]:
    rng = random.Random(seed)
    rand, randint = rng.random, rng.randint
    today = NOW.date()
    amounts = [Decimal(x) for x in range(0, 200_001, 250)]
    deals = []
    append = deals.append
    for i in range(n):
        stage = STAGES[rng.choices(range(7), (18, 16, 14, 12, 10, 18, 12))[0]]
        age = randint(5, 540)
        created = NOW - dt.timedelta(days=age, seconds=randint(0, 86_399))
        stage_changed = max(created, NOW - dt.timedelta(days=randint(0, min(age, 120))))
        last_activity = None if rand() < 0.1 else max(created, NOW - dt.timedelta(days=randint(0, 40)))
        closed, won = stage[4], stage[5]
        close = stage_changed.date() if closed else today + dt.timedelta(days=randint(-60, -1) if rand() < 0.08 else randint(1, 180))
        extra = {name: "x" for name in CUSTOM if rand() < 0.7}
        extra["discount_approved"] = "true" if rand() < 0.5 else "false"
        contract_end = (today + dt.timedelta(days=randint(30, 400))) if won else None
        append(Deal(
            connection=CONN, source_object="Opportunity", source_id=f"d{i}", modified_at=stage_changed,
            created_at=created, name=f"Deal {i}", amount=amounts[randint(0, len(amounts) - 1)] if rand() > 0.02 else None,
            currency="USD", pipeline_id="default", stage_id=stage[0],
            probability=Decimal(stage[3]) if rand() < 0.9 else Decimal("0.5"), is_closed=closed, is_won=won,
            close_date=close, owner_id=None if rand() < 0.02 else str(randint(1, 36)), account_id=f"a{randint(1, 20_000)}",
            deal_type=("New Business", "Expansion", "Renewal")[i % 3],
            lead_source=("Web", "Referral", "Event", "Outbound", "Partner")[i % 5],
            stage_changed_at=stage_changed, last_activity_at=last_activity,
            contract_start=(contract_end - dt.timedelta(days=365)) if contract_end else None, contract_end=contract_end,
            extra=extra,
        ))
    return deals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=1_000)
    parser.add_argument("--rules-dir", default=str(Path(__file__).resolve().parents[1] / "config" / "rules"))
    parser.add_argument("--warm", action="store_true", help="also time a full run with the first run's keys known")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    rule_set = load_rules(args.rules_dir)
    t_load = time.perf_counter() - t0
    owners, stages, accounts = build_context_parts()
    t0 = time.perf_counter()
    deals = build_deals(args.deals)
    t_build = time.perf_counter() - t0
    print(f"rule set {rule_set.hash[:12]}: {rule_set.rule_count} rules, loaded+compiled in {t_load * 1000:.0f} ms")
    print(f"built {len(deals):,} deals in {t_build:.1f} s")

    kinds = ("scoring", "routing", "hygiene")
    gc.collect()
    ctx = RuleContext(now=NOW, owners=owners, stages=stages, accounts=accounts, routing_state=InMemoryRoutingState())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} cores")
    t0, c0 = time.perf_counter(), time.process_time()
    decisions = evaluate(rule_set, deals, ctx, kinds=kinds)
    t_full, c_full = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    gc.collect()  # the collector's first look at the decisions (it scans them as they age)
    t_gc = time.perf_counter() - t0
    by_kind = Counter(f"{d.rule_kind}/{d.action}" for d in decisions)
    print(f"full evaluation ({', '.join(kinds)}) over {len(deals):,} deals: {t_full:.2f} s "
          f"({t_full / len(deals) * 1e6:.1f} us/deal; {c_full:.2f} s CPU in this process), {len(decisions):,} decisions; "
          f"then a full collection with them alive: {t_gc:.2f} s")
    for key, count in sorted(by_kind.items()):
        print(f"  {key}: {count:,}")

    # incremental: 1,000 changed deals, previous versions known, earlier decisions known
    rng = random.Random(3)
    changed_idx = rng.sample(range(len(deals)), min(args.changed, len(deals)))
    previous = {}
    changed = []
    for i in changed_idx:
        old = deals[i]
        previous[(old.connection, "deal", old.source_id)] = old
        new = Deal(**{**old.as_dict(), "extra": dict(old.extra)})
        new.stage_id = STAGES[min(4, rng.randint(0, 6))][0]
        new.is_closed = new.is_won = False
        new.last_activity_at = NOW - dt.timedelta(hours=rng.randint(1, 48))
        new.modified_at = NOW
        changed.append(new)
    known = {d.idempotency_key for d in decisions}
    del decisions
    gc.collect()
    if args.warm:
        ctx_warm = RuleContext(now=NOW, owners=owners, stages=stages, accounts=accounts,
                               routing_state=InMemoryRoutingState(), known_keys=known)
        t0 = time.perf_counter()
        again = evaluate(rule_set, deals, ctx_warm, kinds=kinds)
        t_warm = time.perf_counter() - t0
        print(f"full evaluation again with the {len(known):,} keys known: {t_warm:.2f} s, {len(again):,} new decisions")
        del again
        gc.collect()
    ctx2 = RuleContext(now=NOW, owners=owners, stages=stages, accounts=accounts, previous=previous,
                       routing_state=ctx.routing_state, known_keys=known)
    t0 = time.perf_counter()
    inc = incremental(rule_set, changed, ctx2, kinds=kinds)
    t_inc = time.perf_counter() - t0
    print(f"incremental cycle over {len(changed):,} changed deals: {t_inc * 1000:.1f} ms, {len(inc):,} new decisions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
