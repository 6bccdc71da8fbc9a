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
import itertools
import statistics
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    path_of,
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


def extra_text(extra: Mapping[str, object] | None, keys: Iterable[str]) -> str | None:
    for key in keys:
        value = (extra or {}).get(key)
        if value not in (None, ""):
            return str(value)
    return None


@dataclass(frozen=True)
class PipelineInfo:
    """What a deal's fact needs of its pipeline (shared by all its deals)."""

    pipeline: _Pipeline
    name: str
    stage_names: Mapping[str, str]
    open_stages: tuple[str, ...]


def pipeline_info(pipe: _Pipeline, name: str) -> PipelineInfo:
    return PipelineInfo(pipe, name, {s.stage_id: s.name for s in pipe.stages}, tuple(s.stage_id for s in pipe.open))


def make_fact(info: PipelineInfo, *, connection: str, deal_id: str, stage_id: str | None, is_closed: bool,
              is_won: bool, moves: Sequence[tuple[str, dt.datetime]], created_at: dt.datetime | None,
              stage_changed_at: dt.datetime | None, amount: Decimal | None, currency: str | None, owner: str,
              team: str | None, segment: str | None, lead_source: str | None,
              loss_reason: str | None, competitor: str | None) -> DealFact | None:
    """One deal's fact from plain values (``moves``: its (stage, at) events, oldest first); None when
    its stage is not one of its pipeline's."""
    pipe = info.pipeline
    path = path_of(stage_id, is_closed, is_won, moves, pipe)
    if path is None:
        return None
    order = [pipe.open_index[s] for s, _ in moves if s in pipe.open_index]
    backwards = sum(1 for a, b in itertools.pairwise(order) if b < a)
    skipped = sum(1 for a, b in itertools.pairwise(order) if b > a + 1)
    closed_at = None
    if path.outcome != "open":
        closed_at = moves[-1][1] if moves else stage_changed_at
    open_ids = info.open_stages
    lost_from = open_ids[path.reached] if path.outcome == "lost" and 0 <= path.reached < len(open_ids) else None
    return DealFact(deal_id, connection, path, info.stage_names, open_ids, created_at, closed_at, amount, currency,
                    {"pipeline": info.name, "owner": owner or UNKNOWN, "team": team or UNKNOWN,
                     "segment": segment or UNKNOWN, "lead_source": lead_source or UNKNOWN},
                    loss_reason, competitor, lost_from, bool(moves), backwards, skipped)


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
        info = pipeline_info(_Pipeline(conn, pid, definitions), data.pipeline_names.get((conn, pid), pid or UNKNOWN))
        for deal in deals:
            events = sorted(events_by_deal.get((conn, deal.source_id), []), key=lambda e: e.at)
            owner_name, team = owners.get((conn, deal.owner_id or ""), (deal.owner_id or UNKNOWN, None))
            fact = make_fact(
                info, connection=conn, deal_id=deal.source_id, stage_id=deal.stage_id, is_closed=deal.is_closed,
                is_won=deal.is_won, moves=[(e.to_stage_id, e.at) for e in events], created_at=deal.created_at,
                stage_changed_at=deal.stage_changed_at, amount=deal.amount, currency=deal.currency, owner=owner_name,
                team=team, segment=data.segments.get((conn, deal.account_id)) if deal.account_id else None,
                lead_source=deal.lead_source, loss_reason=extra_text(deal.extra, LOSS_REASON_KEYS),
                competitor=extra_text(deal.extra, COMPETITOR_KEYS))
            if fact is not None:
                facts.append(fact)
    return facts


def _days(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / SECONDS_PER_DAY


class _Acc:
    """Running totals of one group of deals (what a Summary needs), fed one deal at a time."""

    __slots__ = ("amounts", "backwards", "currencies", "cycles", "deals", "lost", "no_history", "open", "reached",
                 "skipped", "stays", "won")

    def __init__(self, *, with_stays: bool) -> None:
        self.deals = self.open = self.won = self.lost = 0
        self.no_history = self.backwards = self.skipped = 0
        self.reached: list[int] = []
        self.cycles = array("d")
        self.currencies: Counter[str | None] = Counter()
        self.amounts: dict[str, list[Decimal]] = {}  # currency -> won amounts
        self.stays: dict[str, array[float]] | None = {} if with_stays else None

    def add(self, f: DealFact) -> None:
        self.deals += 1
        outcome = f.path.outcome
        if outcome == "won":
            self.won += 1
            if f.created_at is not None and f.closed_at is not None:
                self.cycles.append(_days(f.created_at, f.closed_at))
            if f.amount is not None and f.currency:
                self.amounts.setdefault(f.currency, []).append(f.amount)
        elif outcome == "lost":
            self.lost += 1
        else:
            self.open += 1
        self.currencies[f.currency] += 1
        self.no_history += not f.has_history
        self.backwards += f.backwards
        self.skipped += f.skipped
        if len(self.reached) < len(f.open_stages):
            self.reached.extend([0] * (len(f.open_stages) - len(self.reached)))
        for i in range(f.path.reached + 1):
            self.reached[i] += 1
        if self.stays is not None:
            for stage_id, value in f.path.stays:
                self.stays.setdefault(stage_id, array("d")).append(value)

    def merge(self, other: _Acc) -> None:
        self.deals += other.deals
        self.open += other.open
        self.won += other.won
        self.lost += other.lost
        self.no_history += other.no_history
        self.backwards += other.backwards
        self.skipped += other.skipped
        if len(self.reached) < len(other.reached):
            self.reached.extend([0] * (len(other.reached) - len(self.reached)))
        for i, n in enumerate(other.reached):
            self.reached[i] += n
        self.cycles.extend(other.cycles)
        self.currencies.update(other.currencies)
        for currency, amounts in other.amounts.items():
            self.amounts.setdefault(currency, []).extend(amounts)

    def summary(self, open_stages: Sequence[str], names: Mapping[str, str]) -> Summary:
        closed = self.won + self.lost
        win_rate = self.won / closed if closed else None
        cycle = statistics.median(self.cycles) if self.cycles else None
        known = Counter({c: n for c, n in self.currencies.items() if c})
        currency = max(sorted(known), key=lambda c: known[c]) if known else None
        amounts = self.amounts.get(currency or "", [])
        average = (sum(amounts, Decimal(0)) / len(amounts)).quantize(Decimal("0.01")) if amounts else None
        velocity = None
        if average is not None and win_rate is not None and cycle:
            velocity = (Decimal(self.open) * Decimal(str(round(win_rate, 6))) * average
                        / Decimal(str(round(cycle, 6)))).quantize(Decimal("0.01"))
        quality = {"no_history": self.no_history, "backwards_moves": self.backwards, "skipped_stages": self.skipped,
                   "other_currency": sum(n for c, n in known.items() if c != currency),
                   "no_currency": self.currencies.get(None, 0)}
        stages: list[StageTime] = []
        if self.stays is not None:
            for i, stage_id in enumerate(open_stages):
                reached = self.reached[i] if i < len(self.reached) else 0
                following = (self.reached[i + 1] if i + 1 < len(self.reached) else 0) if i + 1 < len(open_stages) \
                    else self.won
                conversion = following / reached if reached else None
                values = sorted(self.stays.get(stage_id, ()))
                stages.append(StageTime(stage_id, names.get(stage_id, stage_id), reached, conversion,
                                        None if conversion is None else 1 - conversion,
                                        statistics.median(values) if values else None, percentile(values, 0.75),
                                        len(values)))
        return Summary(self.deals, self.open, self.won, self.lost, win_rate, cycle, average, currency, velocity,
                       tuple(stages), quality)

    def step_conversion(self, step: int, steps: int) -> float | None:
        """Conversion of open stage ``step`` into the next one (the last into won)."""
        if step >= len(self.reached) or not self.reached[step]:
            return None
        following = (self.reached[step + 1] if step + 1 < len(self.reached) else 0) if step + 1 < steps else self.won
        return following / self.reached[step]


CELL_FIELDS = (*DIMENSIONS, "quarter")  # a cell: one value of each; every group is a union of cells
LOSS_FIELDS = ("stage", "competitor", "closed_quarter", "reason")


class Rollup:
    """Every figure the reports show, accumulated in one pass over the deals.

    Each deal is added to the all-deals totals (with its stays, for the stage-time table) and to
    one cell (its pipeline, owner, team, segment, lead source and created quarter); every group a
    report shows is the union of some cells, merged when asked. Memory grows with the cells and
    the won deals' cycle times, not with the deals' histories."""

    def __init__(self) -> None:
        self.total = _Acc(with_stays=True)
        self.cells: dict[tuple[str, ...], _Acc] = {}
        self.losses: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}  # (cell, loss key) -> deals
        self.open_stages: tuple[str, ...] = ()
        self.names: dict[str, str] = {}
        self.stage_order: dict[str, int] = {}
        self._merged: dict[tuple[int, ...], dict[tuple[str, ...], _Acc]] = {}

    def add(self, f: DealFact) -> None:
        if len(f.open_stages) > len(self.open_stages):
            self.open_stages = f.open_stages
        if f.open_stages and f.open_stages[0] not in self.names:
            for stage_id in f.open_stages:
                self.names.setdefault(stage_id, f.stage_names.get(stage_id, stage_id))
                self.stage_order.setdefault(self.names[stage_id], len(self.stage_order))
        self.total.add(f)
        dims = f.dims
        cell = (dims["pipeline"], dims["owner"], dims["team"], dims["segment"], dims["lead_source"],
                f.quarter if f.created_at is not None else "")
        acc = self.cells.get(cell)
        if acc is None:
            acc = self.cells[cell] = _Acc(with_stays=False)
        acc.add(f)
        if f.path.outcome == "lost":
            key = (cell, (f.stage_names.get(f.lost_from or "", UNKNOWN), f.competitor or UNKNOWN,
                          quarter_of(f.closed_at) if f.closed_at else UNKNOWN, f.loss_reason or UNKNOWN))
            self.losses[key] = self.losses.get(key, 0) + 1
        self._merged.clear()

    # --- merging cells ------------------------------------------------------------------------
    def _by(self, *fields: str) -> dict[tuple[str, ...], _Acc]:
        positions = tuple(CELL_FIELDS.index(name) for name in fields)
        merged = self._merged.get(positions)
        if merged is None:
            merged = {}
            for cell, acc in self.cells.items():
                key = tuple(cell[i] for i in positions)
                if "" in key:  # no created date: in no quarter group
                    continue
                target = merged.get(key)
                if target is None:
                    target = merged[key] = _Acc(with_stays=False)
                target.merge(acc)
            self._merged[positions] = merged
        return merged

    # --- queries ------------------------------------------------------------------------------
    def summary(self) -> Summary:
        return self.total.summary(self.open_stages, self.names)

    def _summary(self, acc: _Acc | None) -> Summary | None:
        return acc.summary(self.open_stages, self.names) if acc is not None else None

    def group(self, *key: str) -> Summary | None:
        """``("segment", "SMB")``, ``("quarter", q)``, ``("sq", segment, q)`` or ``("tqs", q, team, segment)``."""
        return self._summary(self._acc(key))

    def _acc(self, key: tuple[str, ...]) -> _Acc | None:
        kind, rest = key[0], key[1:]
        if kind == "sq":
            return self._by("segment", "quarter").get(rest)
        if kind == "tqs":
            return self._by("quarter", "team", "segment").get(rest)
        return self._by(kind).get(rest)

    def breakdown(self, dimension: str) -> list[tuple[str, Summary]]:
        out = [(key[0], acc.summary(self.open_stages, self.names)) for key, acc in self._by(dimension).items()]
        return sorted(out, key=lambda kv: (-kv[1].deals, kv[0]))

    def cohorts(self, quarters: int = 8) -> list[tuple[str, Summary]]:
        merged = self._by("quarter")
        keys = sorted(k[0] for k in merged)[-quarters:]
        return [(k, merged[(k,)].summary(self.open_stages, self.names)) for k in keys]

    def step_conversion(self, step: int, *key: str) -> float | None:
        acc = self.total if not key else self._acc(key)
        return acc.step_conversion(step, len(self.open_stages)) if acc is not None else None

    def group_size(self, *key: str) -> int:
        acc = self._acc(key)
        return acc.deals if acc is not None else 0

    def team_segments(self, quarter: str) -> list[tuple[str, str]]:
        return sorted((k[1], k[2]) for k in self._by("quarter", "team", "segment") if k[0] == quarter)

    def loss_reasons(self, by: str) -> list[LossRow]:
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        for (cell, loss), n in self.losses.items():
            if by == "stage":
                key = loss[0]
            elif by == "competitor":
                key = loss[1]
            elif by == "quarter":
                key = loss[2]
            else:
                key = cell[CELL_FIELDS.index(by)]
            groups[key][loss[3]] += n
        total = self.total.lost
        rows = [LossRow(k, sum(c.values()), sum(c.values()) / total if total else 0.0, dict(c.most_common()))
                for k, c in groups.items()]
        if by == "stage":
            return sorted(rows, key=lambda r: self.stage_order.get(r.key, 10**6))
        if by == "quarter":
            return sorted(rows, key=lambda r: r.key)
        return sorted(rows, key=lambda r: (-r.lost, r.key))


def rollup(facts: Iterable[DealFact]) -> Rollup:
    out = Rollup()
    for f in facts:
        out.add(f)
    return out


def summarise(facts: Sequence[DealFact], *, with_stages: bool = True) -> Summary:
    summary = rollup(facts).summary()
    return summary if with_stages else replace(summary, stages=())


def breakdown(facts: Sequence[DealFact], dimension: str) -> list[tuple[str, Summary]]:
    """One summary per value of ``dimension`` (a DIMENSIONS name or ``"quarter"``), biggest first."""
    return rollup(facts).breakdown(dimension)


def cohorts(facts: Sequence[DealFact], *, quarters: int = 8) -> list[tuple[str, Summary]]:
    """Summaries of the last ``quarters`` created quarters (oldest first)."""
    return rollup(facts).cohorts(quarters)


def loss_reasons(facts: Sequence[DealFact], by: str) -> list[LossRow]:
    """Lost deals by ``by`` (``stage`` lost from, a dimension, ``competitor`` or ``quarter`` closed)
    with their reasons; deals without a reason count as ``(none)``."""
    return rollup(facts).loss_reasons(by)


@dataclass(frozen=True)
class LossRow:
    key: str
    lost: int
    share: float
    reasons: Mapping[str, int]
