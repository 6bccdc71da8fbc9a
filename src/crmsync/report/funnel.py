"""Funnel maths (pure): stage-to-stage conversion, win rate and median days in stage.

Per (connection, pipeline, segment) -- the segment is the deal's account's ``segment``, plus
``"all"`` -- the funnel's rows are the pipeline's **open** stages in ``display_order``, then its
**won** stage(s). Closed-lost stages are not rows; their deals show up in ``lost_here``.

* **Reached**: a deal reached every open stage up to the furthest one it is known to have been in
  (its stage events plus its current stage), skipped stages included. Won deals reached every open
  stage and the won row. Closed-lost deals reached the stages up to their last open stage; a lost
  deal whose history shows no open stage at all is counted at the first stage (where deals enter).
* **Conversion** of a row: deals that reached the next row / deals that reached this one (the last
  open row converts into "won").
* **Win rate** of a row: won / (won + lost) among the closed deals that reached it.
* **Median days in stage**: over completed stays (from one stage event to the next). A deal still
  in an open stage has a stay that is only known to last *at least* until now (censored): it is
  counted in ``censored`` and left out of the median.

Stage flags come from the store's ``Stage`` records (``is_closed``/``is_won``). A pipeline whose
stages carry no closed flag at all (Pipedrive keeps won/lost as the deal's status) has them
inferred from the deals: a stage whose current deals are all closed is closed, and won if they are
all won. Ratios are floats (they are not money); timestamps are tz-aware UTC.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from crmsync.model import Deal, Stage, utc
from crmsync.store.stage_events import StageEvent

ALL_SEGMENTS = "all"
NO_SEGMENT = "(none)"
WON_BY_STATUS = "(won)"  # the won row of a pipeline that has no won stage
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class StageDef:
    stage_id: str
    name: str
    order: int
    is_closed: bool
    is_won: bool
    inferred: bool = False  # flags inferred from the deals (the CRM has none)


@dataclass(frozen=True, slots=True)
class FunnelRow:
    stage_id: str
    name: str
    kind: str  # open | won
    reached: int
    current: int  # open deals in this stage now
    lost_here: int  # lost deals whose last open stage was this one
    conversion: float | None  # to the next row
    win_rate: float | None  # won / closed among deals that reached this row
    median_days: float | None  # completed stays only
    stays: int  # completed stays behind the median
    censored: int  # stays still running (deal still here), not in the median


@dataclass(frozen=True, slots=True)
class Funnel:
    connection: str
    pipeline_id: str
    pipeline_name: str
    segment: str
    rows: tuple[FunnelRow, ...]
    deals: int
    open: int
    won: int
    lost: int
    unknown_stage: int = 0  # deals whose stage is not one of the pipeline's stages (left out)
    inferred_flags: bool = False
    lost_unplaced: int = 0  # lost deals with no open stage on record, counted as lost at the first stage

    @property
    def win_rate(self) -> float | None:
        closed = self.won + self.lost
        return self.won / closed if closed else None

    @property
    def censored(self) -> int:
        return sum(r.censored for r in self.rows)


@dataclass(frozen=True)
class FunnelInput:
    """What the funnel reads from the store (all of it plain canonical data)."""

    stages: Sequence[Stage]
    deals: Sequence[Deal]
    events: Sequence[StageEvent]
    segments: Mapping[tuple[str, str], str | None] = field(default_factory=dict)  # (conn, account) -> segment
    pipeline_names: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (conn, pipeline) -> name


@dataclass(frozen=True, slots=True)
class _Path:
    """One deal's way through its pipeline."""

    reached: int  # index of the furthest open stage reached (-1: none)
    outcome: str  # open | won | lost
    placed: bool  # the furthest open stage is on record (False: assumed)
    stage_id: str
    stays: tuple[tuple[str, float], ...]  # completed (stage id, days)
    censored: str | None  # open stage the deal is still in


@dataclass
class _Pipeline:
    connection: str
    pipeline_id: str
    stages: list[StageDef]

    def __post_init__(self) -> None:
        self.by_id = {s.stage_id: s for s in self.stages}
        self.open = [s for s in self.stages if not s.is_closed]
        self.open_index = {s.stage_id: i for i, s in enumerate(self.open)}
        self.won = [s for s in self.stages if s.is_won]


def _stage_groups(stages: Iterable[Stage]) -> dict[tuple[str, str | None], list[Stage]]:
    groups: dict[tuple[str, str | None], list[Stage]] = defaultdict(list)
    for stage in stages:
        if not stage.deleted:
            groups[(stage.connection, stage.pipeline_id)].append(stage)
    return groups


def _pipeline_of(groups: Mapping[tuple[str, str | None], list[Stage]], deal: Deal) -> tuple[str | None, list[Stage]]:
    """The stage list a deal's pipeline uses (stages without a pipeline serve every pipeline)."""
    own = groups.get((deal.connection, deal.pipeline_id))
    if own:
        return deal.pipeline_id, own
    shared = groups.get((deal.connection, None))
    if shared:
        return deal.pipeline_id, shared
    return deal.pipeline_id, []


def _definitions(stages: Sequence[Stage], deals: Sequence[Deal]) -> tuple[list[StageDef], bool]:
    """Ordered stage definitions; closed/won inferred from current deals when no stage is flagged."""
    outcomes: dict[str, tuple[bool, bool]] = {}
    for deal in deals:
        if deal.stage_id is not None:
            closed, won = outcomes.get(deal.stage_id, (True, True))
            outcomes[deal.stage_id] = (closed and deal.is_closed, won and deal.is_won)
    return definitions_from(stages, outcomes)


def definitions_from(stages: Sequence[Stage], outcomes: Mapping[str, tuple[bool, bool]]
                     ) -> tuple[list[StageDef], bool]:
    """Ordered stage definitions; ``outcomes`` (stage id -> (all its deals closed, all won)) gives the
    flags when the CRM flags no stage as closed."""
    ordered = sorted(stages, key=lambda s: (s.display_order, s.source_id))
    if any(s.is_closed for s in ordered):
        return [StageDef(s.source_id, s.name, s.display_order, s.is_closed, s.is_won) for s in ordered], False
    out = []
    inferred = False
    for s in ordered:
        closed, all_won = outcomes.get(s.source_id, (False, False))
        won = closed and all_won
        inferred |= closed
        out.append(StageDef(s.source_id, s.name, s.display_order, closed, won, inferred=closed))
    return out, inferred


def _days(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / SECONDS_PER_DAY


def deal_path(deal: Deal, events: Sequence[StageEvent], pipeline: _Pipeline) -> _Path | None:
    """Where a deal went (None: its current stage is not one of the pipeline's stages)."""
    ordered = sorted(events, key=lambda e: e.at)
    return path_of(deal.stage_id, deal.is_closed, deal.is_won, [(e.to_stage_id, e.at) for e in ordered], pipeline)


def path_of(stage_id: str | None, is_closed: bool, is_won: bool, moves: Sequence[tuple[str, dt.datetime]],
            pipeline: _Pipeline) -> _Path | None:
    """``deal_path`` on plain values: the deal's current stage and flags, its (stage, at) events oldest first."""
    if stage_id is None or stage_id not in pipeline.by_id:
        return None
    current = pipeline.by_id[stage_id]
    won = is_won or current.is_won
    lost = not won and (is_closed or current.is_closed)
    outcome = "won" if won else "lost" if lost else "open"
    known: list[tuple[str, dt.datetime]] = []
    for move in moves:
        if move[0] in pipeline.by_id and (not known or known[-1][0] != move[0]):
            known.append(move)  # a repeat of the stage it is already in is the same stay
    open_index = pipeline.open_index
    indexes = [open_index[s] for s, _ in known if s in open_index]
    if stage_id in open_index:
        indexes.append(open_index[stage_id])
    reached = max(indexes) if indexes else -1
    placed = bool(indexes)
    if won:
        reached = len(pipeline.open) - 1
    elif lost and reached < 0 and pipeline.open:
        reached = 0  # lost with no open stage on record: it entered at the first stage
    stays: list[tuple[str, float]] = []
    for here, following in itertools.pairwise(known):
        if here[0] in open_index:
            stays.append((here[0], _days(here[1], following[1])))
    censored = None
    if outcome == "open" and (not known or known[-1][0] == stage_id):
        censored = stage_id
    return _Path(reached, outcome, placed, stage_id, tuple(stays), censored)


def _entered_at(deal: Deal, events: Sequence[StageEvent]) -> dt.datetime | None:
    if deal.created_at is not None:
        return deal.created_at
    return min((e.at for e in events), default=None)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def build_funnel(pipeline: _Pipeline, paths: Sequence[_Path], *, name: str, segment: str, unknown: int,
                 inferred: bool) -> Funnel:
    n_open = len(pipeline.open)
    won_paths = [p for p in paths if p.outcome == "won"]
    lost_paths = [p for p in paths if p.outcome == "lost"]
    open_paths = [p for p in paths if p.outcome == "open"]
    stays: dict[str, list[float]] = defaultdict(list)
    censored: dict[str, int] = defaultdict(int)
    for p in paths:
        for stage_id, days in p.stays:
            stays[stage_id].append(days)
        if p.censored is not None:
            censored[p.censored] += 1
    reached = [sum(1 for p in paths if p.reached >= i) for i in range(n_open)]
    won_total = len(won_paths)
    rows: list[FunnelRow] = []
    for i, stage in enumerate(pipeline.open):
        following = reached[i + 1] if i + 1 < n_open else won_total
        lost_from_here = sum(1 for p in lost_paths if p.reached >= i)
        rows.append(FunnelRow(
            stage_id=stage.stage_id, name=stage.name, kind="open", reached=reached[i],
            current=sum(1 for p in open_paths if p.stage_id == stage.stage_id),
            lost_here=sum(1 for p in lost_paths if p.reached == i),
            conversion=_rate(following, reached[i]), win_rate=_rate(won_total, won_total + lost_from_here),
            median_days=_median(stays[stage.stage_id]), stays=len(stays[stage.stage_id]),
            censored=censored[stage.stage_id],
        ))
    won_stages = pipeline.won or [StageDef(WON_BY_STATUS, "Won", 10**9, True, True)]
    for w, stage in enumerate(won_stages):
        if len(won_stages) == 1:
            count = won_total
        else:  # several won stages: each counts the won deals in it (the first one takes the rest)
            ids = {s.stage_id for s in won_stages}
            count = sum(1 for p in won_paths if p.stage_id == stage.stage_id
                        or (w == 0 and p.stage_id not in ids))
        rows.append(FunnelRow(stage_id=stage.stage_id, name=stage.name, kind="won", reached=count, current=0,
                              lost_here=0, conversion=None, win_rate=None, median_days=None, stays=0, censored=0))
    return Funnel(pipeline.connection, pipeline.pipeline_id, name, segment, tuple(rows), deals=len(paths),
                  open=len(open_paths), won=won_total, lost=len(lost_paths), unknown_stage=unknown,
                  inferred_flags=inferred, lost_unplaced=sum(1 for p in lost_paths if not p.placed))


def compute_funnels(
    data: FunnelInput,
    *,
    connection: str | None = None,
    pipeline: str | None = None,
    segment: str | None = None,
    since: dt.datetime | None = None,
) -> list[Funnel]:
    """Funnels per (connection, pipeline, segment), ``"all"`` first within a pipeline; ``segment``
    keeps only that one (``"all"`` included); ``since`` keeps deals that entered on or after it
    (``created_at``, else their first stage event)."""
    since = utc(since, field_name="since") if since is not None else None
    events_by_deal: dict[tuple[str, str], list[StageEvent]] = defaultdict(list)
    for event in data.events:
        events_by_deal[(event.connection, event.deal_id)].append(event)
    groups = _stage_groups(data.stages)
    deals_by_pipeline: dict[tuple[str, str], list[Deal]] = defaultdict(list)
    for deal in data.deals:
        if deal.deleted or (connection is not None and deal.connection != connection):
            continue
        pid = deal.pipeline_id or ""
        if pipeline is not None and pid != pipeline:
            continue
        deals_by_pipeline[(deal.connection, pid)].append(deal)
    funnels: list[Funnel] = []
    for (conn, pid), deals in sorted(deals_by_pipeline.items()):
        _, stage_list = _pipeline_of(groups, deals[0])
        if not stage_list:
            continue
        definitions, inferred = _definitions(stage_list, deals)
        pipe = _Pipeline(conn, pid, definitions)
        per_segment: dict[str, list[_Path]] = defaultdict(list)
        unknown: dict[str, int] = defaultdict(int)
        for deal in deals:
            events = events_by_deal.get((deal.connection, deal.source_id), [])
            if since is not None:
                entered = _entered_at(deal, events)
                if entered is None or entered < since:
                    continue
            seg = (data.segments.get((deal.connection, deal.account_id)) if deal.account_id else None) or NO_SEGMENT
            path = deal_path(deal, events, pipe)
            for key in (ALL_SEGMENTS, seg):
                if path is None:
                    unknown[key] += 1
                else:
                    per_segment[key].append(path)
        name = data.pipeline_names.get((conn, pid), pid or "(no pipeline)")
        keys = [ALL_SEGMENTS, *sorted(k for k in per_segment if k != ALL_SEGMENTS)]
        for key in keys:
            if segment is not None and key != segment:
                continue
            funnels.append(build_funnel(pipe, per_segment.get(key, []), name=name, segment=key,
                                        unknown=unknown.get(key, 0), inferred=inferred))
    return funnels
