"""Lead lifecycle funnel (pure): lead -> MQL -> SQL -> opportunity -> customer.

The steps and the transitions between the first ones are the scoring rules' own (the lead scoring
model's ``lifecycle`` in ``config/rules/scoring.yaml``): a lead reached a step when

* its lifecycle field holds that step or a later one (what the rules wrote and the CRM keeps), or
* a lifecycle decision in crmsync's decision log moved it there (its time is the decision's), or
* the model's transitions, evaluated on the lead now, move it there (time unknown);
* the step after the transitions (``opportunity``) when the lead was converted (its time: the
  opportunity's creation, else the CRM's conversion date), and the last (``customer``) when that
  opportunity was won (its time: the deal's last stage change).

Reaching a step implies the ones before it. Conversion of a step = leads reaching the next / leads
reaching it; days between steps over the leads whose both times are known. Per source and
segment (the converted account's segment, else the company size band). A step conversion that
fell by ``DROP_POINTS`` or more between the last two created quarters is flagged with the area it
points at.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from crmsync.model import Deal, Lead
from crmsync.report.deal_metrics import UNKNOWN, percentile, quarter_of

DROP_POINTS = 5.0
MIN_LEADS = 10  # leads a quarter needs at a step before a drop is flagged
AREAS = {1: "marketing: lead sources and nurturing", 2: "targeting: lead quality and fit",
         3: "discovery: qualifying need, budget and authority", 4: "proposal/negotiation"}


@dataclass(frozen=True, slots=True)
class LeadFact:
    lead_id: str
    source: str
    segment: str
    created_at: dt.datetime | None
    reached: int  # index of the furthest step
    times: tuple[dt.datetime | None, ...]  # per step (index 0: the lead's creation)


@dataclass(frozen=True)
class StepRow:
    step: str
    reached: int
    conversion: float | None  # into the next step
    median_days_to_next: float | None
    p75_days_to_next: float | None
    timed: int  # leads behind the days figures


@dataclass(frozen=True)
class Drop:
    step: str
    following: str
    before: float
    after: float
    quarter_before: str
    quarter_after: str
    area: str


@dataclass(frozen=True)
class LifecycleFunnel:
    stages: tuple[str, ...]
    leads: int
    rows: tuple[StepRow, ...]
    by_source: tuple[tuple[str, tuple[StepRow, ...]], ...]
    by_segment: tuple[tuple[str, tuple[StepRow, ...]], ...]
    drops: tuple[Drop, ...]
    untimed_steps: int  # steps reached with no known time (implied, or from the rules evaluated now)


def size_band(employees: int | None) -> str:
    if employees is None:
        return UNKNOWN
    return "SMB" if employees < 200 else "MidMarket" if employees < 2000 else "Enterprise"


def lead_facts(leads: Iterable[Lead], stages: Sequence[str], *, field_name: str,
               decisions: Mapping[tuple[str, str], Sequence[tuple[dt.datetime, str]]],
               rule_stage: Mapping[tuple[str, str], str | None],
               deals: Mapping[tuple[str, str], Deal], segments: Mapping[tuple[str, str], str | None]
               ) -> list[LeadFact]:
    """``decisions``: (connection, lead id) -> (time, stage) lifecycle decisions; ``rule_stage``: the
    stage the model's transitions give each lead now; ``deals``: by (connection, id)."""
    rank = {name: i for i, name in enumerate(stages)}
    n = len(stages)
    facts = []
    for lead in leads:
        if lead.deleted:
            continue
        key = (lead.connection, lead.source_id)
        times: list[dt.datetime | None] = [None] * n
        times[0] = lead.created_at
        reached = 0
        recorded = getattr(lead, field_name, None) if not field_name.startswith("extra.") else \
            (lead.extra or {}).get(field_name[6:])
        if recorded in rank:
            reached = max(reached, rank[str(recorded)])
        for at, stage in sorted(decisions.get(key, ())):
            if stage in rank:
                reached = max(reached, rank[stage])
                if times[rank[stage]] is None:
                    times[rank[stage]] = at
        evaluated = rule_stage.get(key)
        if evaluated in rank:
            reached = max(reached, rank[str(evaluated)])
        opportunity_id = (lead.extra or {}).get("converted_opportunity_id")
        deal = deals.get((lead.connection, str(opportunity_id))) if opportunity_id else None
        if n >= 2 and (lead.is_converted or deal is not None):
            reached = max(reached, n - 2)
            times[n - 2] = deal.created_at if deal is not None else _day((lead.extra or {}).get("converted_date"))
            if deal is not None and deal.is_won:
                reached = n - 1
                times[n - 1] = deal.stage_changed_at
        segment = segments.get((lead.connection, lead.converted_account_id)) if lead.converted_account_id else None
        facts.append(LeadFact(lead.source_id, lead.source or UNKNOWN, segment or size_band(lead.employees),
                              lead.created_at, reached, tuple(times)))
    return facts


def _day(value: object) -> dt.datetime | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def step_rows(facts: Sequence[LeadFact], stages: Sequence[str]) -> tuple[StepRow, ...]:
    rows = []
    for i, stage in enumerate(stages):
        here = [f for f in facts if f.reached >= i]
        following = sum(1 for f in facts if f.reached >= i + 1) if i + 1 < len(stages) else None
        gaps = []
        if i + 1 < len(stages):
            for f in here:
                start, end = f.times[i], f.times[i + 1]
                if f.reached >= i + 1 and start is not None and end is not None:
                    gaps.append((end - start).total_seconds() / 86_400)
        rows.append(StepRow(stage, len(here), following / len(here) if here and following is not None else None,
                            statistics.median(gaps) if gaps else None, percentile(gaps, 0.75), len(gaps)))
    return tuple(rows)


def _grouped(facts: Sequence[LeadFact], stages: Sequence[str], key: str) -> tuple[tuple[str, tuple[StepRow, ...]], ...]:
    groups: dict[str, list[LeadFact]] = defaultdict(list)
    for f in facts:
        groups[getattr(f, key)].append(f)
    return tuple((k, step_rows(v, stages)) for k, v in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def lifecycle_funnel(facts: Sequence[LeadFact], stages: Sequence[str]) -> LifecycleFunnel:
    by_quarter: dict[str, list[LeadFact]] = defaultdict(list)
    for f in facts:
        if f.created_at is not None:
            by_quarter[quarter_of(f.created_at)].append(f)
    drops: list[Drop] = []
    quarters = sorted(by_quarter)
    if len(quarters) >= 2:
        q_prev, q_last = quarters[-2], quarters[-1]
        prev, last = step_rows(by_quarter[q_prev], stages), step_rows(by_quarter[q_last], stages)
        for i in range(1, len(stages) - 1):
            a, b = prev[i], last[i]
            if a.conversion is None or b.conversion is None or a.reached < MIN_LEADS or b.reached < MIN_LEADS:
                continue
            if (a.conversion - b.conversion) * 100 >= DROP_POINTS:
                drops.append(Drop(stages[i], stages[i + 1], a.conversion, b.conversion, q_prev, q_last,
                                  AREAS.get(i + 1, "the step's owner")))
    untimed = sum(1 for f in facts for i in range(1, f.reached + 1) if f.times[i] is None)
    return LifecycleFunnel(tuple(stages), len(facts), step_rows(facts, stages), _grouped(facts, stages, "source"),
                           _grouped(facts, stages, "segment"), tuple(drops), untimed)
