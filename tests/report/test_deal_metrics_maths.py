"""Deal performance maths on a hand-computed small world (table-driven)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crmsync.model import Deal, Stage
from crmsync.report.deal_metrics import (
    breakdown,
    cohorts,
    deal_facts,
    loss_reasons,
    percentile,
    summarise,
)
from crmsync.report.funnel import FunnelInput
from crmsync.store.stage_events import StageEvent

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
STAGES = [("q", "Qualify", 0, False, False), ("d", "Demo", 1, False, False), ("p", "Proposal", 2, False, False),
          ("w", "Won", 3, True, True), ("l", "Lost", 4, True, False)]


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def stage_rows() -> list[Stage]:
    return [Stage(connection="c", source_object="stages", source_id=sid, modified_at=T0, name=name, pipeline_id="p1",
                  display_order=order, is_closed=closed, is_won=won) for sid, name, order, closed, won in STAGES]


def deal(did: str, stage: str, *, owner: str, created: float = 0, amount: str | None = None,
         currency: str | None = "EUR", extra: dict[str, str] | None = None) -> Deal:
    closed, won = stage in ("w", "l"), stage == "w"
    return Deal(connection="c", source_object="deals", source_id=did, modified_at=day(100), created_at=day(created),
                pipeline_id="p1", stage_id=stage, is_closed=closed, is_won=won, owner_id=owner,
                amount=Decimal(amount) if amount else None, currency=currency if amount else None,
                account_id="a1" if did in ("1", "2") else "a2", lead_source="Web" if int(did) % 2 else "Event",
                extra=extra or {})


def moves(did: str, *path: tuple[str, float]) -> list[StageEvent]:
    out, before = [], None
    for stage, at in path:
        out.append(StageEvent("c", did, "p1", before, stage, day(at)))
        before = stage
    return out


DEALS = [
    deal("1", "w", owner="o1", amount="1000"),
    deal("2", "d", owner="o1", amount="500"),
    deal("3", "l", owner="o2", amount="800", extra={"loss_reason": "Price", "competitor": "Rival"}),
    deal("4", "l", owner="o2", amount="300", currency="USD", extra={"lost_reason": "No budget"}),
    deal("5", "p", owner="o2", created=40, amount="200"),
    deal("6", "q", owner="o2", created=3),  # no history at all, no amount
]
EVENTS = [*moves("1", ("q", 0), ("d", 4), ("p", 10), ("w", 16)),
          *moves("2", ("q", 0), ("d", 2), ("q", 3), ("d", 5)),  # a backwards move
          *moves("3", ("q", 0), ("d", 6), ("p", 8), ("l", 20)),
          *moves("4", ("l", 1)),  # lost with no open stage on record: lost at the first stage
          *moves("5", ("q", 40), ("p", 45))]  # skipped Demo
OWNERS = {("c", "o1"): ("Olga", "A"), ("c", "o2"): ("Omar", "B")}
DATA = FunnelInput(stage_rows(), DEALS, EVENTS, segments={("c", "a1"): "SMB", ("c", "a2"): "Enterprise"},
                   pipeline_names={("c", "p1"): "Sales"})


def facts() -> list:  # type: ignore[type-arg]
    return deal_facts(DATA, OWNERS)


def test_totals_velocity_and_quality() -> None:
    s = summarise(facts())
    assert (s.deals, s.open, s.won, s.lost) == (6, 3, 1, 2)
    assert s.win_rate == pytest.approx(1 / 3)
    assert s.cycle_days == pytest.approx(16.0)  # deal 1: created day 0, won day 16
    assert (s.currency, s.avg_won_amount) == ("EUR", Decimal("1000.00"))
    assert s.velocity_per_day == Decimal("62.50")  # 3 open x 1/3 x 1000 / 16 days
    assert s.quality == {"no_history": 1, "backwards_moves": 1, "skipped_stages": 1, "other_currency": 1,
                         "no_currency": 1}


@pytest.mark.parametrize(("stage_id", "reached", "conversion", "median", "p75", "stays"), [
    ("q", 6, 4 / 6, 4.0, 5.0, 5),    # stays 4, 2, 2, 6, 5 days
    ("d", 4, 3 / 4, 2.0, 4.0, 3),    # stays 6, 1, 2 days
    ("p", 3, 1 / 3, 9.0, 10.5, 2),   # stays 6, 12 days
])
def test_stage_rows(stage_id: str, reached: int, conversion: float, median: float, p75: float, stays: int) -> None:
    row = next(r for r in summarise(facts()).stages if r.stage_id == stage_id)
    assert (row.reached, row.stays) == (reached, stays)
    assert row.conversion == pytest.approx(conversion)
    assert row.drop_off == pytest.approx(1 - conversion)
    assert (row.median_days, row.p75_days) == (pytest.approx(median), pytest.approx(p75))


@pytest.mark.parametrize(("dimension", "expected"), [
    ("team", {"A": (2, 1, 0, 1.0), "B": (4, 0, 2, 0.0)}),
    ("owner", {"Olga": (2, 1, 0, 1.0), "Omar": (4, 0, 2, 0.0)}),
    ("segment", {"SMB": (2, 1, 0, 1.0), "Enterprise": (4, 0, 2, 0.0)}),
    ("lead_source", {"Web": (3, 1, 1, 0.5), "Event": (3, 0, 1, 0.0)}),
    ("pipeline", {"Sales": (6, 1, 2, 1 / 3)}),
    ("quarter", {"2026-Q1": (5, 1, 2, 1 / 3), "2026-Q2": (1, 0, 0, None)}),
])
def test_breakdowns(dimension: str, expected: dict[str, tuple[int, int, int, float | None]]) -> None:
    got = {k: (s.deals, s.won, s.lost, s.win_rate) for k, s in breakdown(facts(), dimension)}
    assert got == {k: (n, w, lo, pytest.approx(r) if r is not None else None) for k, (n, w, lo, r) in expected.items()}


def test_cohorts_keep_the_last_quarters_oldest_first() -> None:
    assert [k for k, _ in cohorts(facts(), quarters=8)] == ["2026-Q1", "2026-Q2"]
    assert [k for k, _ in cohorts(facts(), quarters=1)] == ["2026-Q2"]


def test_loss_reasons_by_stage_lost_from_and_competitor() -> None:
    by_stage = [(r.key, r.lost, dict(r.reasons)) for r in loss_reasons(facts(), "stage")]
    assert by_stage == [("Qualify", 1, {"No budget": 1}), ("Proposal", 1, {"Price": 1})]
    by_competitor = {r.key: r.lost for r in loss_reasons(facts(), "competitor")}
    assert by_competitor == {"Rival": 1, "(none)": 1}
    assert {r.key: r.share for r in loss_reasons(facts(), "team")} == {"B": 1.0}


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 0.75, None), ([3.0], 0.75, 3.0), ([1.0, 2.0, 6.0], 0.75, 4.0), ([2.0, 2.0, 4.0, 5.0, 6.0], 0.75, 5.0),
    ([6.0, 12.0], 0.5, 9.0),
])
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected
