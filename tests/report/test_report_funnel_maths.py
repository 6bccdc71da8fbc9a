"""Funnel maths on hand-built stages, deals and events (table-driven)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crmsync.model import Deal, Stage
from crmsync.report.funnel import ALL_SEGMENTS, NO_SEGMENT, Funnel, FunnelInput, FunnelRow, compute_funnels
from crmsync.store.stage_events import StageEvent

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=100)
FLAGGED = [("q", "Qualify", 0, False, False), ("d", "Demo", 1, False, False), ("p", "Proposal", 2, False, False),
           ("w", "Won", 3, True, True), ("l", "Lost", 4, True, False)]


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def stages(defs: list[tuple[str, str, int, bool, bool]], pipeline: str = "p1") -> list[Stage]:
    return [Stage(connection="c", source_object="stages", source_id=sid, modified_at=T0, name=name,
                  pipeline_id=pipeline, display_order=order, is_closed=closed, is_won=won,
                  probability=Decimal("0.5")) for sid, name, order, closed, won in defs]


def deal(did: str, stage: str, *, closed: bool = False, won: bool = False, account: str | None = None,
         created: float = 0, pipeline: str = "p1") -> Deal:
    return Deal(connection="c", source_object="deals", source_id=did, modified_at=NOW, created_at=day(created),
                pipeline_id=pipeline, stage_id=stage, is_closed=closed, is_won=won, account_id=account)


def path(did: str, *moves: tuple[str, float]) -> list[StageEvent]:
    """Consecutive events of one deal: (stage, day)."""
    out, before = [], None
    for stage, at in moves:
        out.append(StageEvent("c", did, "p1", before, stage, day(at)))
        before = stage
    return out


def row(funnel: Funnel, stage_id: str) -> FunnelRow:
    return next(r for r in funnel.rows if r.stage_id == stage_id)


def only(funnels: list[Funnel], segment: str = ALL_SEGMENTS) -> Funnel:
    return next(f for f in funnels if f.segment == segment)


# A won deal through every stage, an open one in Demo, a lost one that got to Proposal, a lost one
# with no open stage on record, and an open one that skipped Demo.
DEALS = [deal("1", "w", closed=True, won=True), deal("2", "d"), deal("3", "l", closed=True),
         deal("4", "l", closed=True), deal("5", "p")]
EVENTS = [*path("1", ("q", 0), ("d", 4), ("p", 10), ("w", 16)), *path("2", ("q", 0), ("d", 2)),
          *path("3", ("q", 0), ("d", 6), ("p", 8), ("l", 20)), *path("4", ("l", 1)), *path("5", ("q", 0), ("p", 5))]


@pytest.mark.parametrize(("stage_id", "reached", "conversion", "win_rate", "lost_here", "current", "median",
                          "stays", "censored"), [
    ("q", 5, 4 / 5, 1 / 3, 1, 0, 4.5, 4, 0),   # stays 4, 2, 6, 5 days; deal 4 (lost, no history) counted here
    ("d", 4, 3 / 4, 1 / 2, 0, 1, 4.0, 2, 1),   # stays 6 and 2 days; deal 2 still in Demo: censored
    ("p", 3, 1 / 3, 1 / 2, 1, 1, 9.0, 2, 1),   # stays 6 and 12 days; deal 5 still in Proposal: censored
    ("w", 1, None, None, 0, 0, None, 0, 0),
])
def test_rows(stage_id: str, reached: int, conversion: float | None, win_rate: float | None, lost_here: int,
              current: int, median: float | None, stays: int, censored: int) -> None:
    funnel = only(compute_funnels(FunnelInput(stages(FLAGGED), DEALS, EVENTS)))
    r = row(funnel, stage_id)
    assert (r.reached, r.lost_here, r.current, r.stays, r.censored) == (reached, lost_here, current, stays, censored)
    assert r.conversion == (pytest.approx(conversion) if conversion is not None else None)
    assert r.win_rate == (pytest.approx(win_rate) if win_rate is not None else None)
    assert r.median_days == (pytest.approx(median) if median is not None else None)


def test_totals_and_rows_order() -> None:
    funnel = only(compute_funnels(FunnelInput(stages(FLAGGED), DEALS, EVENTS)))
    assert [r.stage_id for r in funnel.rows] == ["q", "d", "p", "w"]  # lost stage is no row
    assert (funnel.deals, funnel.open, funnel.won, funnel.lost) == (5, 2, 1, 2)
    assert funnel.win_rate == pytest.approx(1 / 3)
    assert funnel.censored == 2
    assert funnel.lost_unplaced == 1  # deal 4


@pytest.mark.parametrize(("deal_", "events", "reached_ids"), [
    (deal("a", "p"), [], ["q", "d", "p"]),                                   # current stage only: all before it
    (deal("a", "q"), path("a", ("p", 0), ("q", 3)), ["q", "d", "p"]),        # moved back: furthest counts
    (deal("a", "l", closed=True), path("a", ("d", 0), ("l", 2)), ["q", "d"]),  # lost after Demo
    (deal("a", "l", closed=True), [], ["q"]),                                # lost, nothing known: entered
    (deal("a", "w", closed=True, won=True), [], ["q", "d", "p", "w"]),       # won: every stage
    (deal("a", "d", closed=True), path("a", ("d", 0)), ["q", "d"]),          # lost while in an open stage
    (deal("a", "p", closed=True, won=True), [], ["q", "d", "p", "w"]),       # won by status in an open stage
])
def test_reached(deal_: Deal, events: list[StageEvent], reached_ids: list[str]) -> None:
    funnel = only(compute_funnels(FunnelInput(stages(FLAGGED), [deal_], events)))
    assert [r.stage_id for r in funnel.rows if r.reached] == reached_ids


def test_segments_from_accounts_and_all() -> None:
    deals = [deal("1", "d", account="A"), deal("2", "p", account="B"), deal("3", "q"), deal("4", "q", account="A")]
    data = FunnelInput(stages(FLAGGED), deals, [], segments={("c", "A"): "SMB", ("c", "B"): "Enterprise"})
    funnels = compute_funnels(data)
    assert [f.segment for f in funnels] == [ALL_SEGMENTS, NO_SEGMENT, "Enterprise", "SMB"]
    assert [row(f, "q").reached for f in funnels] == [4, 1, 1, 2]
    assert [f.segment for f in compute_funnels(data, segment="SMB")] == ["SMB"]
    assert compute_funnels(data, segment="nope") == []


def test_since_pipeline_and_connection_filters() -> None:
    deals = [deal("old", "q", created=-30), deal("new", "d", created=20), deal("x", "q", pipeline="p2")]
    data = FunnelInput(stages(FLAGGED) + stages(FLAGGED, "p2"), deals, [])
    assert [(f.pipeline_id, f.deals) for f in compute_funnels(data, since=day(0), segment=ALL_SEGMENTS)] == [
        ("p1", 1), ("p2", 1)]  # inclusive: "x" was created exactly at the bound
    assert {f.pipeline_id for f in compute_funnels(data, pipeline="p2")} == {"p2"}
    assert compute_funnels(data, connection="other") == []


def test_unknown_stage_is_counted_not_reported() -> None:
    funnel = only(compute_funnels(FunnelInput(stages(FLAGGED), [deal("1", "zzz"), deal("2", "q")], [])))
    assert (funnel.deals, funnel.unknown_stage) == (1, 1)


def test_unflagged_stages_are_inferred_from_deal_status() -> None:
    """Pipedrive-like: no closed flags on stages; won/lost are the deals' status."""
    defs = [("1", "Qualify", 0, False, False), ("2", "Demo", 1, False, False), ("6", "Closed Won", 5, False, False),
            ("7", "Closed Lost", 6, False, False)]
    deals = [deal("a", "6", closed=True, won=True), deal("b", "7", closed=True), deal("c", "2")]
    events = path("b", ("1", 0), ("7", 3))
    funnel = only(compute_funnels(FunnelInput(stages(defs), deals, events)))
    assert funnel.inferred_flags
    assert [(r.stage_id, r.kind, r.reached) for r in funnel.rows] == [("1", "open", 3), ("2", "open", 2),
                                                                      ("6", "won", 1)]
    assert (funnel.won, funnel.lost) == (1, 1)


def test_no_won_stage_gives_a_won_row_by_status() -> None:
    defs = [("1", "Qualify", 0, False, False), ("2", "Demo", 1, False, False)]
    deals = [deal("a", "2", closed=True, won=True), deal("b", "1"), deal("c", "2")]
    funnel = only(compute_funnels(FunnelInput(stages(defs), deals, [])))
    assert [(r.name, r.reached) for r in funnel.rows] == [("Qualify", 3), ("Demo", 2), ("Won", 1)]
    assert row(funnel, "2").conversion == 0.5


def test_repeated_stage_events_are_one_stay() -> None:
    events = [StageEvent("c", "1", "p1", None, "q", day(0), "history"), StageEvent("c", "1", "p1", None, "q", day(2)),
              StageEvent("c", "1", "p1", "q", "d", day(10))]
    funnel = only(compute_funnels(FunnelInput(stages(FLAGGED), [deal("1", "d")], events)))
    assert (row(funnel, "q").median_days, row(funnel, "q").stays) == (10.0, 1)
