"""Deal performance maths (pure): win rate, cycle length, sales velocity, time in stage, loss
reasons, data quality, by dimension and by created-quarter cohort.

Built on the funnel's per-deal path (``crmsync.report.funnel.deal_path``), so a lost deal counts
at the open stage it was lost from, and stays are completed stays (running ones are censored).

* **Win rate**: won / (won + lost) among the deals in the group.
* **Cycle length**: days from creation to close of **won** deals (median); the close is the deal's
  last stage event, else its ``stage_changed_at``.
* **Sales velocity** (money per day): open deals x win rate x average won amount / median cycle.
  Amounts are summed only in the group's main currency (the most common); deals in other
  currencies are counted in ``currency_mixed`` and left out of money figures.
* **Time in stage**: median and 75th percentile (inclusive method: linear between order
  statistics) of completed stays per open stage.
* **Data quality**: deals with no stage history (no event at all), backwards moves (an event into
  an earlier open stage), skipped stages (an event more than one open stage ahead) and currency
  mixes are counted, never dropped.

Ratios are floats (not money); money is Decimal.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from crmsync.model import Deal
from crmsync.report.funnel import (
    SECONDS_PER_DAY,
    FunnelInput,
    _definitions,
    _Path,
    _Pipeline,
    _pipeline_of,
    _stage_groups,
    deal_path,
)
from crmsync.store.stage_events import StageEvent

UNKNOWN = "(none)"
DIMENSIONS = ("pipeline", "owner", "team", "segment", "lead_source")
LOSS_REASON_KEYS = ("loss_reason", "lost_reason", "closed_lost_reason", "Loss_Reason__c")
COMPETITOR_KEYS = ("competitor", "Competitor__c")


@dataclass(frozen=True, slots=True)
class DealFact:
    """One deal as the reports see it."""

    deal_id: str
    connection: str
    path: _Path
    stage_names: Mapping[str, str]  # stage id -> name (its pipeline's)
    open_stages: tuple[str, ...]  # the pipeline's open stage ids in order
    created_at: dt.datetime | None
    closed_at: dt.datetime | None
    amount: Decimal | None
    currency: str | None
    dims: Mapping[str, str]
    loss_reason: str | None
    competitor: str | None
    lost_from: str | None  # open stage id a lost deal was lost from
    has_history: bool
    backwards: int
    skipped: int

    @property
    def outcome(self) -> str:
        return self.path.outcome

    @property
    def quarter(self) -> str:
        return quarter_of(self.created_at) if self.created_at else UNKNOWN


@dataclass(frozen=True, slots=True)
class StageTime:
    stage_id: str
    name: str
    reached: int
    conversion: float | None
    drop_off: float | None
    median_days: float | None
    p75_days: float | None
    stays: int


@dataclass(frozen=True)
class Summary:
    deals: int
    open: int
    won: int
    lost: int
    win_rate: float | None
    cycle_days: float | None
    avg_won_amount: Decimal | None
    currency: str | None
    velocity_per_day: Decimal | None
    stages: tuple[StageTime, ...] = ()
    quality: Mapping[str, int] = field(default_factory=dict)


def quarter_of(moment: dt.datetime) -> str:
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Inclusive-method percentile (``q`` in 0..1): linear interpolation between order statistics."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _extra_text(deal: Deal, keys: Iterable[str]) -> str | None:
    for key in keys:
        value = (deal.extra or {}).get(key)
        if value not in (None, ""):
            return str(value)
    return None


def deal_facts(data: FunnelInput, owners: Mapping[tuple[str, str], tuple[str, str | None]] | None = None
               ) -> list[DealFact]:
    """Every live deal whose stage its pipeline knows, with its path and dimensions."""
    owners = owners or {}
    events_by_deal: dict[tuple[str, str], list[StageEvent]] = defaultdict(list)
    for event in data.events:
        events_by_deal[(event.connection, event.deal_id)].append(event)
    groups = _stage_groups(data.stages)
    by_pipeline: dict[tuple[str, str], list[Deal]] = defaultdict(list)
    for deal in data.deals:
        if not deal.deleted:
            by_pipeline[(deal.connection, deal.pipeline_id or "")].append(deal)
    facts: list[DealFact] = []
    for (conn, pid), deals in sorted(by_pipeline.items()):
        _, stage_list = _pipeline_of(groups, deals[0])
        if not stage_list:
            continue
        definitions, _ = _definitions(stage_list, deals)
        pipe = _Pipeline(conn, pid, definitions)
        names = {s.stage_id: s.name for s in definitions}
        open_ids = tuple(s.stage_id for s in pipe.open)
        pipeline_name = data.pipeline_names.get((conn, pid), pid or UNKNOWN)
        for deal in deals:
            events = sorted(events_by_deal.get((conn, deal.source_id), []), key=lambda e: e.at)
            path = deal_path(deal, events, pipe)
            if path is None:
                continue
            owner_name, team = owners.get((conn, deal.owner_id or ""), (deal.owner_id or UNKNOWN, None))
            segment = (data.segments.get((conn, deal.account_id)) if deal.account_id else None) or UNKNOWN
            order = [pipe.open_index[e.to_stage_id] for e in events if e.to_stage_id in pipe.open_index]
            backwards = sum(1 for a, b in zip(order, order[1:], strict=False) if b < a)
            skipped = sum(1 for a, b in zip(order, order[1:], strict=False) if b > a + 1)
            closed_at = None
            if path.outcome != "open":
                closed_at = events[-1].at if events else deal.stage_changed_at
            lost_from = open_ids[path.reached] if path.outcome == "lost" and 0 <= path.reached < len(open_ids) \
                else None
            facts.append(DealFact(
                deal.source_id, conn, path, names, open_ids, deal.created_at, closed_at, deal.amount, deal.currency,
                {"pipeline": pipeline_name, "owner": owner_name or UNKNOWN, "team": team or UNKNOWN,
                 "segment": segment, "lead_source": deal.lead_source or UNKNOWN},
                _extra_text(deal, LOSS_REASON_KEYS), _extra_text(deal, COMPETITOR_KEYS), lost_from,
                bool(events), backwards, skipped))
    return facts


def _days(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / SECONDS_PER_DAY


def _stage_times(facts: Sequence[DealFact]) -> tuple[StageTime, ...]:
    if not facts:
        return ()
    open_ids = max((f.open_stages for f in facts), key=len)
    names = facts[0].stage_names
    won = sum(1 for f in facts if f.outcome == "won")
    reached = [sum(1 for f in facts if f.path.reached >= i) for i in range(len(open_ids))]
    stays: dict[str, list[float]] = defaultdict(list)
    for f in facts:
        for stage_id, days in f.path.stays:
            stays[stage_id].append(days)
    out = []
    for i, stage_id in enumerate(open_ids):
        following = reached[i + 1] if i + 1 < len(open_ids) else won
        conversion = following / reached[i] if reached[i] else None
        values = stays.get(stage_id, [])
        out.append(StageTime(stage_id, names.get(stage_id, stage_id), reached[i], conversion,
                             None if conversion is None else 1 - conversion,
                             statistics.median(values) if values else None, percentile(values, 0.75), len(values)))
    return tuple(out)


def summarise(facts: Sequence[DealFact], *, with_stages: bool = True) -> Summary:
    won = [f for f in facts if f.outcome == "won"]
    lost = [f for f in facts if f.outcome == "lost"]
    open_ = [f for f in facts if f.outcome == "open"]
    closed = len(won) + len(lost)
    win_rate = len(won) / closed if closed else None
    cycles = [_days(f.created_at, f.closed_at) for f in won if f.created_at and f.closed_at]
    cycle = statistics.median(cycles) if cycles else None
    currencies = Counter(f.currency for f in facts if f.currency)
    currency = currencies.most_common(1)[0][0] if currencies else None
    amounts = [f.amount for f in won if f.amount is not None and f.currency == currency]
    average = (sum(amounts, Decimal(0)) / len(amounts)).quantize(Decimal("0.01")) if amounts else None
    velocity = None
    if average is not None and win_rate is not None and cycle:
        velocity = (Decimal(len(open_)) * Decimal(str(round(win_rate, 6))) * average
                    / Decimal(str(round(cycle, 6)))).quantize(Decimal("0.01"))
    quality = {
        "no_history": sum(1 for f in facts if not f.has_history),
        "backwards_moves": sum(f.backwards for f in facts),
        "skipped_stages": sum(f.skipped for f in facts),
        "other_currency": sum(n for c, n in currencies.items() if c != currency),
        "no_currency": sum(1 for f in facts if not f.currency),
    }
    return Summary(len(facts), len(open_), len(won), len(lost), win_rate, cycle, average, currency, velocity,
                   _stage_times(facts) if with_stages else (), quality)


def breakdown(facts: Sequence[DealFact], dimension: str | Callable[[DealFact], str]) -> list[tuple[str, Summary]]:
    """One summary per value of ``dimension`` (a DIMENSIONS name, ``"quarter"``, or a function),
    biggest group first."""
    key = dimension if callable(dimension) else (
        (lambda f: f.quarter) if dimension == "quarter" else (lambda f: f.dims.get(dimension, UNKNOWN)))
    groups: dict[str, list[DealFact]] = defaultdict(list)
    for f in facts:
        groups[key(f)].append(f)
    return sorted(((k, summarise(v)) for k, v in groups.items()), key=lambda kv: (-kv[1].deals, kv[0]))


def cohorts(facts: Sequence[DealFact], *, quarters: int = 8) -> list[tuple[str, Summary]]:
    """Summaries of the last ``quarters`` created quarters (oldest first)."""
    groups: dict[str, list[DealFact]] = defaultdict(list)
    for f in facts:
        if f.created_at is not None:
            groups[f.quarter].append(f)
    keys = sorted(groups)[-quarters:]
    return [(k, summarise(groups[k])) for k in keys]


@dataclass(frozen=True)
class LossRow:
    key: str
    lost: int
    share: float
    reasons: Mapping[str, int]


def loss_reasons(facts: Sequence[DealFact], by: str) -> list[LossRow]:
    """Lost deals by ``by`` (``stage`` lost from, a dimension, ``competitor`` or ``quarter`` closed)
    with their reasons; deals without a reason count as ``(none)``."""
    lost = [f for f in facts if f.outcome == "lost"]

    def key(f: DealFact) -> str:
        if by == "stage":
            return f.stage_names.get(f.lost_from or "", UNKNOWN)
        if by == "competitor":
            return f.competitor or UNKNOWN
        if by == "quarter":
            return quarter_of(f.closed_at) if f.closed_at else UNKNOWN
        return f.dims.get(by, UNKNOWN)

    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for f in lost:
        groups[key(f)][f.loss_reason or UNKNOWN] += 1
    total = len(lost)
    rows = [LossRow(k, sum(c.values()), sum(c.values()) / total if total else 0.0, dict(c.most_common()))
            for k, c in groups.items()]
    if by == "stage":
        order = {s: n for f in facts for n, s in enumerate(f.stage_names.get(i, i) for i in f.open_stages)}
        return sorted(rows, key=lambda r: order.get(r.key, 10**6))
    if by == "quarter":
        return sorted(rows, key=lambda r: r.key)
    return sorted(rows, key=lambda r: (-r.lost, r.key))
