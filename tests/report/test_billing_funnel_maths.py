"""Full funnel to billing on hand-built won deals and subscriptions (table-driven)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crmsync.billing_keys import subscription_marker
from crmsync.report.billing_funnel import WonDeal, billing_funnel

TODAY = dt.date(2026, 6, 15)


def won(deal_id: str, day: str, segment: str = "SMB") -> WonDeal:
    return WonDeal("crm", deal_id, dt.datetime.fromisoformat(day + "T10:00:00+00:00"), segment)


def sub(deal_id: str | None, customer: str, start: str, mrr: int, *, end: str | None = None,
        status: str = "ACTIVE", suffix: str = "") -> dict[str, object]:
    marker = subscription_marker("crm", deal_id) + suffix if deal_id else "PO-someone-else"
    return {"purchase_order": marker, "customer_alias": customer, "billing_start_date": start, "start_date": start,
            "end_date": end, "status": status, "mrr_cents": mrr * 100}


WON = [won("1", "2026-01-10"), won("2", "2026-01-20", "Enterprise"), won("3", "2026-02-01"),
       won("4", "2026-05-01", "Enterprise"), won("5", "2026-06-01")]
SUBS = [
    sub("1", "a", "2026-01-20", 100),                                                 # 10 days to bill; kept
    sub("2", "b", "2026-02-19", 300),                                                 # 30 days
    sub("4", "b", "2026-05-11", 200),                                                 # b expands by 200
    sub("3", "c", "2026-02-05", 50, end="2026-05-31", status="COMPLETED"),            # 4 days; c churned
    sub("5", "d", "2026-07-01", 80, status="PENDING_ACTIVATION"),                     # not billing yet
    sub(None, "z", "2026-01-01", 999),                                                # not crmsync's
]


def test_funnel_steps_and_lead_time() -> None:
    f = billing_funnel(WON, SUBS, TODAY)
    assert (f.won, f.with_subscription, f.billing_started, f.billing_now) == (5, 5, 4, 3)
    assert f.unmatched_subscriptions == 1
    # won -> first billing: 10, 30, 4, 10 (deal 4: May 1 -> May 11), 30 (deal 5: June 1 -> July 1)
    assert f.days_to_invoice_median == 10.0 and f.days_to_invoice_p75 == 30.0 and f.negative_lead_times == 0


@pytest.mark.parametrize(("key", "customers", "start", "current", "churn", "expansion", "grr", "nrr"), [
    # customers a (Q1: 100 -> 100), b (Q1: 300 -> 500), c (Q1: 50 -> 0); d not billing yet
    ("2026-Q1", 3, 450, 600, 50, 200, 400 / 450, 600 / 450),
])
def test_retention_by_cohort(key: str, customers: int, start: int, current: int, churn: int, expansion: int,
                             grr: float, nrr: float) -> None:
    f = billing_funnel(WON, SUBS, TODAY)
    row = next(r for r in f.by_cohort if r.key == key)
    assert (row.customers, row.start_mrr, row.current_mrr) == (customers, Decimal(start), Decimal(current))
    assert (row.churned_mrr, row.expansion_mrr, row.contraction_mrr) == (Decimal(churn), Decimal(expansion),
                                                                          Decimal(0))
    assert row.grr == pytest.approx(grr) and row.nrr == pytest.approx(nrr)
    assert [r.key for r in f.by_cohort] == ["2026-Q1"]


def test_retention_by_segment_and_contraction() -> None:
    f = billing_funnel(WON, SUBS, TODAY)
    assert {r.key: (r.start_mrr, r.current_mrr) for r in f.by_segment} == {
        "SMB": (Decimal(150), Decimal(100)), "Enterprise": (Decimal(300), Decimal(500))}
    shrunk = billing_funnel([won("1", "2026-01-10")], [sub("1", "a", "2026-01-20", 100, end="2026-03-31"),
                                                      sub("1", "a", "2026-04-01", 60, suffix="#2")], TODAY)
    assert (shrunk.total.contraction_mrr, shrunk.total.churned_mrr) == (Decimal(40), Decimal(0))
    assert shrunk.total.grr == pytest.approx(0.6) and shrunk.total.nrr == pytest.approx(0.6)
