"""The problems the world plants on purpose, and where: the ground truth the checks are measured against.

``plant_problems`` runs once per world, after the deals and leads exist and before the amounts are
summed. It picks, with its own seeded random stream, a few percent of the eligible records for each
problem, makes that problem true in them, and makes it false everywhere else (a clean deal has its
stage exit criteria, recent activity, a future close date, a contract its line terms agree with).
``World.planted`` maps each problem to the ids it was planted in; ``set_amounts`` then sums the line
items and plants the amount mismatches.

Margins are wide on purpose: a clean deal is well inside every shipped threshold (at most 25 days in
its stage, activity within 14 days), a planted one well outside (50+ days in stage, 30+ days without
activity), so a check with sensible thresholds finds exactly the planted records.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmsync.sandbox.world import WDeal, World

# problem -> share of the eligible records it is planted in
PLANT_RATES: dict[str, float] = {
    "price_book_drift": 0.03,  # won/open deals with a drifted product quoted at the CRM's stale list price
    "unapproved_discount": 0.03,  # a line discounted over 20% without discount_approved
    "amount_off": 0.015,  # deal amount 7% above the sum of its lines
    "zero_amount": 0.01,  # deal amount 0 although it has priced lines
    "term_mismatch": 0.03,  # won deals whose line term disagrees with the contract by 12 months
    "backdated_contract": 0.02,  # won deals whose contract starts before the close date
    "missing_contract_dates": 0.01,  # won deals without contract start/end
    "stale_stage": 0.03,  # open deals 50-110 days in their stage
    "close_date_past": 0.03,  # open deals with a close date in the past
    "no_activity": 0.03,  # open deals with no activity for 30+ days
    "missing_exit_criteria": 0.04,  # open deals past discovery missing a field their stage requires
    "missing_handoff_fields": 0.04,  # won deals missing a field CS needs (use case, success criteria, tech)
    "big_deal_unapproved": 0.10,  # of the open 100k+ negotiation deals: no discount approval
    "lead_untouched": 0.04,  # New/Working leads with no touch for 20+ days
}
PROBLEMS = tuple(PLANT_RATES)

# custom field positions (see world.DEAL_CUSTOM_FIELDS)
METRICS, ECONOMIC_BUYER, CRITERIA, PROCESS, PAIN, CHAMPION = range(6)
USE_CASE, SUCCESS, TECHNICAL, APPROVED = 6, 7, 8, 10
HANDOFF = {USE_CASE: "Revenue analytics", SUCCESS: "Dashboards live in 30 days", TECHNICAL: "SSO, EU data residency"}
FILLED = {METRICS: "Reduce churn 10%", ECONOMIC_BUYER: "CFO", CRITERIA: "Security, price",
          PROCESS: "Legal then procurement", PAIN: "Manual reporting", CHAMPION: "Head of Ops"}
# what a deal's stage requires before it may sit there (stage index -> custom positions)
EXIT_CRITERIA = {2: (PAIN, ECONOMIC_BUYER), 3: tuple(FILLED), 4: tuple(FILLED)}
NEGOTIATION = 4
BIG_DEAL = Decimal(100_000)
CLEAN_MAX_STAGE_DAYS = 25
CLEAN_MAX_IDLE_DAYS = 14
CLEAN_MAX_LEAD_IDLE_DAYS = 10


def plant_problems(world: World, rng: random.Random) -> None:
    """Decide and apply every planted problem except the amounts (``set_amounts``)."""
    from crmsync.sandbox.world import CRM_LIST_PRICE_DRIFT, PRODUCTS, STAGES

    planted: dict[str, set[int]] = {p: set() for p in PROBLEMS}
    world.planted = planted  # type: ignore[assignment]  # frozen below, once decided
    now, today = world.now, world.now.date()
    open_deals = [d for d in world.deals if not STAGES[d.stage].is_closed]
    won = [d for d in world.deals if STAGES[d.stage].is_won]

    def pick(problem: str, eligible: list[WDeal]) -> set[int]:
        chosen = {d.id for d in eligible if rng.random() < PLANT_RATES[problem]}
        planted[problem] = chosen
        return chosen

    # Line-level problems first: the amounts are summed from the lines afterwards.
    drift_codes = set(CRM_LIST_PRICE_DRIFT)
    has_drifted = [d for d in world.deals
                   if any(PRODUCTS[(d.id + pos * 5) % len(PRODUCTS)].code in drift_codes for pos in range(1 + d.id % 3))]
    pick("price_book_drift", has_drifted)
    for deal_id in pick("unapproved_discount", world.deals):
        world.deals[deal_id - 1].custom = _with(world.deals[deal_id - 1].custom, APPROVED, "false")

    # Won deals: contract dates that agree with the close date, except where planted.
    term = pick("term_mismatch", [d for d in won if d.contract_start and d.contract_end])
    backdated = pick("backdated_contract", [d for d in won if d.id not in term and d.contract_start])
    undated = pick("missing_contract_dates",
                   [d for d in won if d.id not in term | backdated and d.contract_end
                    and not 60 <= (d.contract_end - today).days <= 90])
    for deal in won:
        if deal.id in undated:
            deal.contract_start = deal.contract_end = None
        elif deal.contract_start is None:
            continue
        elif deal.id in backdated:
            deal.contract_start = deal.close_date - dt.timedelta(days=rng.randint(5, 20))
        elif deal.contract_start < deal.close_date:  # closed before the contract starts
            _close_on(deal, deal.contract_start - dt.timedelta(days=rng.randint(0, 14)))

    handoff_gaps = pick("missing_handoff_fields", won)
    for deal in won:
        custom = list(deal.custom)
        for pos, value in HANDOFF.items():
            custom[pos] = custom[pos] or value
        if deal.id in handoff_gaps:
            custom[rng.choice(tuple(HANDOFF))] = None
        deal.custom = tuple(custom)

    # Open deals: clean unless planted.
    # a deal still in its first stage entered it when it was created (its history has one entry):
    # it is kept clean and young, so that creation and stage change stay one instant
    stale = pick("stale_stage", [d for d in open_deals if d.stage != 0 and (now - d.created_at).days >= 120])
    past = pick("close_date_past", open_deals)
    idle = pick("no_activity", [d for d in open_deals if d.stage != 0 and (now - d.created_at).days >= 40])
    missing = pick("missing_exit_criteria", [d for d in open_deals if d.stage in EXIT_CRITERIA])
    for deal in open_deals:
        if deal.id in stale:
            deal.stage_changed_at = now - dt.timedelta(days=rng.randint(50, 110), seconds=rng.randint(0, 3_600))
        elif (now - deal.stage_changed_at).days >= CLEAN_MAX_STAGE_DAYS:
            deal.stage_changed_at = max(deal.created_at, now - _ago(rng, CLEAN_MAX_STAGE_DAYS - 1))
        if deal.stage == 0:
            deal.created_at = deal.stage_changed_at
        deal.modified_at = max(deal.modified_at, deal.stage_changed_at)
        if deal.id in past:
            deal.close_date = today - dt.timedelta(days=rng.randint(1, 60))
        elif deal.close_date < today:
            deal.close_date = today + dt.timedelta(days=rng.randint(1, 180))
        if deal.id in idle:
            age = (now - deal.created_at).days
            deal.last_activity_at = now - dt.timedelta(days=rng.randint(30, min(age - 1, 90)), seconds=rng.randint(60, 3_600))
        elif deal.last_activity_at is None or (now - deal.last_activity_at).days >= CLEAN_MAX_IDLE_DAYS:
            deal.last_activity_at = max(deal.created_at, now - _ago(rng, CLEAN_MAX_IDLE_DAYS - 1))
        required = EXIT_CRITERIA.get(deal.stage, ())
        custom = list(deal.custom)
        for pos in required:
            custom[pos] = custom[pos] or FILLED[pos]
        if deal.id in missing:
            custom[ECONOMIC_BUYER if deal.stage == 2 else rng.choice(required)] = None
        deal.custom = tuple(custom)

    # Leads: a New/Working lead is touched within days unless planted.
    untouched = planted["lead_untouched"]
    for lead in world.leads:
        if lead.status not in ("New", "Working"):
            continue
        age = (now - lead.created_at).days
        if age >= 30 and rng.random() < PLANT_RATES["lead_untouched"]:
            untouched.add(lead.id)
            lead.last_activity_at = None if rng.random() < 0.5 else now - dt.timedelta(days=rng.randint(20, age - 1))
        elif lead.last_activity_at is None or (now - lead.last_activity_at).days >= CLEAN_MAX_LEAD_IDLE_DAYS:
            lead.last_activity_at = max(lead.created_at, now - _ago(rng, CLEAN_MAX_LEAD_IDLE_DAYS - 1))
        lead.modified_at = max(lead.modified_at, lead.last_activity_at or lead.modified_at)
    world.planted = {problem: frozenset(ids) for problem, ids in planted.items()}


def set_amounts(world: World, rng: random.Random) -> None:
    """Deal amounts are the sum of their lines, except the planted mismatches; then 100k+ deals in
    negotiation get their discount approval unless planted without it."""
    from crmsync.sandbox.world import CENT, STAGES

    planted = {problem: set(ids) for problem, ids in world.planted.items()}
    zero, off = planted["zero_amount"], planted["amount_off"]
    big_unapproved = planted["big_deal_unapproved"]
    for deal in world.deals:
        total = sum((item.total for item in world.line_items(deal)), Decimal(0))
        deal.amount = total
        if total <= 0:
            continue
        roll = rng.random()
        if roll < PLANT_RATES["zero_amount"]:
            zero.add(deal.id)
            deal.amount = Decimal(0)
        elif roll < PLANT_RATES["zero_amount"] + PLANT_RATES["amount_off"]:
            off.add(deal.id)
            deal.amount = (total * Decimal("1.07")).quantize(CENT)
    unapproved = planted["unapproved_discount"]
    for deal in world.deals:
        if deal.stage != NEGOTIATION or STAGES[deal.stage].is_closed or deal.amount < BIG_DEAL:
            continue
        if deal.id in unapproved or rng.random() < PLANT_RATES["big_deal_unapproved"]:
            big_unapproved.add(deal.id)  # an unapproved-discount plant is an unapproved big deal too
            deal.custom = _with(deal.custom, APPROVED, "false")
        else:
            deal.custom = _with(deal.custom, APPROVED, "true")
    world.planted = {p: frozenset(ids) for p, ids in planted.items()}


def _ago(rng: random.Random, max_days: int) -> dt.timedelta:
    """Up to ``max_days`` back, and at least a minute: nothing planted lands on the generation instant
    (a stamp at ``now`` is still unsettled for a sync that starts right away)."""
    return dt.timedelta(days=rng.randint(0, max_days), seconds=rng.randint(60, 3_600))


def _with(values: tuple[str | None, ...], pos: int, value: str | None) -> tuple[str | None, ...]:
    return (*values[:pos], value, *values[pos + 1:])


def _close_on(deal: WDeal, day: dt.date) -> None:
    """Move a closed deal's close (and its stage change, and its creation when needed) to ``day``."""
    at = dt.datetime.combine(day, deal.stage_changed_at.timetz())
    deal.close_date = day
    deal.stage_changed_at = at
    if deal.created_at > at:
        deal.created_at = at - dt.timedelta(days=30)
