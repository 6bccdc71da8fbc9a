"""The full-funnel-to-billing page: won deals -> subscriptions -> billing, lead time to the first
invoice, and gross/net revenue retention by cohort and segment (``crmsync.report.billing_funnel``)."""

from __future__ import annotations

import datetime as dt

from crmsync.report import charts
from crmsync.report.billing_funnel import BillingFunnel, Retention
from crmsync.report.page import Chart, ReportPage, Table
from crmsync.report.revenue import days, money, pct


def _retention_rows(rows: tuple[Retention, ...], currency: str) -> tuple[tuple[str, ...], ...]:
    return tuple((r.key, str(r.customers), money(r.start_mrr, currency), money(r.current_mrr, currency),
                  money(r.churned_mrr, currency), money(r.contraction_mrr, currency),
                  money(r.expansion_mrr, currency), pct(r.grr), pct(r.nrr)) for r in rows)


RETENTION_COLUMNS = ("group", "customers", "starting MRR", "current MRR", "churned", "contraction", "expansion",
                     "GRR", "NRR")


def billing_page(f: BillingFunnel, *, now: dt.datetime, currency: str = "EUR", scope: str = "all deals"
                 ) -> ReportPage:
    page = ReportPage("Full funnel to billing", f"{scope}: {f.won} won deals, as of {now:%Y-%m-%d %H:%M} UTC")
    page.findings.append(f"Of {f.won} won deals, {f.with_subscription} ({pct(f.with_subscription / f.won if f.won else None)}) "
                         f"have a Meteroid subscription and {f.billing_now} are billing today.")
    if f.days_to_invoice_median is not None:
        page.findings.append(f"From won to first invoice takes {days(f.days_to_invoice_median)} days at the median; a "
                             f"quarter of the deals wait more than {days(f.days_to_invoice_p75)} days.")
    t = f.total
    retention_text = (f"Net revenue retention is {pct(t.nrr)} and gross {pct(t.grr)}: of {money(t.start_mrr, currency)} "
                      f"starting MRR, {money(t.churned_mrr, currency)} churned, {money(t.contraction_mrr, currency)} "
                      f"contracted and {money(t.expansion_mrr, currency)} expanded.")
    page.findings.append(retention_text)
    rated = [r for r in f.by_segment if r.nrr is not None]
    if rated:
        low = min(rated, key=lambda r: r.nrr or 0.0)
        page.findings.append(f"The lowest net retention is in {low.key}: {pct(low.nrr)} (GRR {pct(low.grr)}).")
    page.charts.append(Chart("Do cohorts keep and grow their revenue?", retention_text, charts.retention_bars(
        [r.key for r in f.by_cohort], [r.grr for r in f.by_cohort], [r.nrr for r in f.by_cohort])))
    page.tables.append(Table("Funnel to billing", ("step", "deals", "of won"), tuple(
        (step, str(n), pct(n / f.won if f.won else None)) for step, n in (
            ("won", f.won), ("with a subscription", f.with_subscription), ("billing started", f.billing_started),
            ("billing today", f.billing_now)))))
    page.tables.append(Table("Retention by cohort (quarter of first billing)", RETENTION_COLUMNS,
                             _retention_rows(f.by_cohort, currency)))
    page.tables.append(Table("Retention by segment", RETENTION_COLUMNS, _retention_rows(f.by_segment, currency)))
    page.footnotes += [
        "First invoice = the first subscription's billing start date (Meteroid bills the first period from it); "
        "invoices themselves are not read.",
        f"{f.unmatched_subscriptions} subscriptions carry no crmsync deal marker (created outside crmsync) and are "
        "left out rather than matched by guess.",
        f"{f.negative_lead_times} deals started billing before they were marked won (check their close dates).",
        "MRR is Meteroid's mrr_cents of each subscription; a customer is the subscription's customer alias.",
    ]
    return page
