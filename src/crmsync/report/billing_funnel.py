"""Full funnel to billing (pure): won deals joined with their Meteroid subscriptions.

* **Join**: a subscription crmsync created for a won deal carries ``purchase_order =
  crmsync:<connection>:<deal id>`` (``#n`` appended when a deal needed several); subscriptions
  without such a marker are counted as unmatched, not guessed.
* **Funnel**: won deals -> with a subscription -> billing started (``billing_start_date`` on or
  before today) -> still billing today (active: started, not ended, not cancelled).
* **Won to first invoice**: days from the deal's close to its first subscription's
  ``billing_start_date`` (Meteroid bills the first period from that date; invoices themselves are
  not read), median and 75th percentile.
* **Retention** per customer (the subscription's ``customer_alias``) in a cohort (quarter of the
  customer's first billing start) and segment: starting MRR = the MRR of the subscriptions that
  started in the cohort quarter; current MRR = the MRR of its subscriptions billing today.
  Churned = starting MRR of customers billing nothing now; contraction / expansion = the fall /
  rise of the others. GRR = (start - churn - contraction) / start; NRR = current / start.
Money is Decimal (MRR from ``mrr_cents``); ratios are floats.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from crmsync.billing_keys import subscription_marker
from crmsync.report.deal_metrics import UNKNOWN, percentile, quarter_of

ENDED = frozenset({"CANCELED", "CANCELLED", "COMPLETED", "ENDED", "SUSPENDED"})


@dataclass(frozen=True, slots=True)
class WonDeal:
    connection: str
    deal_id: str
    won_at: dt.datetime | None
    segment: str


@dataclass(frozen=True)
class Retention:
    key: str
    customers: int
    start_mrr: Decimal
    current_mrr: Decimal
    churned_mrr: Decimal
    contraction_mrr: Decimal
    expansion_mrr: Decimal

    @property
    def grr(self) -> float | None:
        if not self.start_mrr:
            return None
        return float((self.start_mrr - self.churned_mrr - self.contraction_mrr) / self.start_mrr)

    @property
    def nrr(self) -> float | None:
        return float(self.current_mrr / self.start_mrr) if self.start_mrr else None


@dataclass(frozen=True)
class BillingFunnel:
    won: int
    with_subscription: int
    billing_started: int
    billing_now: int
    unmatched_subscriptions: int
    days_to_invoice_median: float | None
    days_to_invoice_p75: float | None
    negative_lead_times: int  # billing started before the deal was won (data to check)
    by_cohort: tuple[Retention, ...]
    by_segment: tuple[Retention, ...]
    total: Retention


def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _mrr(sub: Mapping[str, Any]) -> Decimal:
    return Decimal(int(sub.get("mrr_cents") or 0)) / 100


def billing_now(sub: Mapping[str, Any], today: dt.date) -> bool:
    start, end = _date(sub.get("billing_start_date") or sub.get("start_date")), _date(sub.get("end_date"))
    status = str(sub.get("status") or "").upper()
    return start is not None and start <= today and (end is None or end >= today) and status not in ENDED


def billing_funnel(won: Sequence[WonDeal], subscriptions: Iterable[Mapping[str, Any]], today: dt.date
                   ) -> BillingFunnel:
    by_marker = {subscription_marker(d.connection, d.deal_id): d for d in won}
    subs_of: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    unmatched = 0
    for sub in subscriptions:
        marker = str(sub.get("purchase_order") or "").split("#", 1)[0]
        deal = by_marker.get(marker)
        if deal is None:
            unmatched += 1
            continue
        subs_of[(deal.connection, deal.deal_id)].append(sub)
    lead_days: list[float] = []
    started = now = 0
    customers: dict[str, dict[str, Any]] = {}
    for deal in won:
        subs = subs_of.get((deal.connection, deal.deal_id), [])
        if not subs:
            continue
        starts = sorted(d for s in subs if (d := _date(s.get("billing_start_date") or s.get("start_date"))))
        if starts and starts[0] <= today:
            started += 1
        if any(billing_now(s, today) for s in subs):
            now += 1
        if starts and deal.won_at is not None:
            lead_days.append(float((starts[0] - deal.won_at.date()).days))
        for sub in subs:
            alias = str(sub.get("customer_alias") or sub.get("customer_id") or UNKNOWN)
            entry = customers.setdefault(alias, {"segment": deal.segment, "subs": []})
            entry["subs"].append(sub)
    rows: list[tuple[str, str, Decimal, Decimal]] = []  # (cohort, segment, start, current) per customer
    for entry in customers.values():
        subs = entry["subs"]
        dated = [(d, s) for s in subs if (d := _date(s.get("billing_start_date") or s.get("start_date")))]
        if not dated:
            continue
        first = min(d for d, _ in dated)
        if first > today:
            continue  # not billing yet: no starting MRR
        cohort = quarter_of(dt.datetime(first.year, first.month, 1, tzinfo=dt.UTC))
        start_mrr = sum((_mrr(s) for d, s in dated if quarter_of(dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC))
                         == cohort), Decimal(0))
        current = sum((_mrr(s) for s in subs if billing_now(s, today)), Decimal(0))
        rows.append((cohort, entry["segment"], start_mrr, current))
    return BillingFunnel(
        won=len(won), with_subscription=sum(1 for d in won if subs_of.get((d.connection, d.deal_id))),
        billing_started=started, billing_now=now, unmatched_subscriptions=unmatched,
        days_to_invoice_median=statistics.median(lead_days) if lead_days else None,
        days_to_invoice_p75=percentile(lead_days, 0.75), negative_lead_times=sum(1 for d in lead_days if d < 0),
        by_cohort=tuple(_retention(rows, 0)), by_segment=tuple(_retention(rows, 1)),
        total=_retention([("all", "all", s, c) for _, _, s, c in rows], 0)[0] if rows else
        Retention("all", 0, Decimal(0), Decimal(0), Decimal(0), Decimal(0), Decimal(0)))


def _retention(rows: Sequence[tuple[str, str, Decimal, Decimal]], index: int) -> list[Retention]:
    groups: dict[str, list[tuple[Decimal, Decimal]]] = defaultdict(list)
    for row in rows:
        groups[str(row[index])].append((row[2], row[3]))
    out = []
    for key in sorted(groups):
        pairs = groups[key]
        churn = sum((s for s, c in pairs if not c), Decimal(0))
        contraction = sum((s - c for s, c in pairs if c and c < s), Decimal(0))
        expansion = sum((c - s for s, c in pairs if c > s), Decimal(0))
        out.append(Retention(key, len(pairs), sum((s for s, _ in pairs), Decimal(0)),
                             sum((c for _, c in pairs), Decimal(0)), churn, contraction, expansion))
    return out
