"""The lead lifecycle page: conversion and time between steps, by source and segment, drops flagged
with the area they point at, and the transition definitions the rule files hold."""

from __future__ import annotations

import datetime as dt
import itertools

from crmsync.report import charts
from crmsync.report.lifecycle import LifecycleFunnel, StepRow
from crmsync.report.page import Chart, ReportPage, Table
from crmsync.report.revenue import days, pct
from crmsync.rules.scoring import CompiledScoringModel

ARROW = " \u2192 "
LABELS = {"lead": "Lead", "mql": "MQL", "sql": "SQL", "opportunity": "Opportunity", "customer": "Customer"}


def label(stage: str) -> str:
    return LABELS.get(stage, stage)


def _share(rows: tuple[StepRow, ...]) -> str:
    return pct(rows[-1].reached / rows[0].reached) if rows and rows[0].reached else "-"


def lifecycle_page(f: LifecycleFunnel, model: CompiledScoringModel, *, now: dt.datetime, scope: str = "all leads"
                   ) -> ReportPage:
    page = ReportPage("Lead lifecycle funnel", f"{scope}: {f.leads} leads, as of {now:%Y-%m-%d %H:%M} UTC")
    if not f.leads:
        page.findings.append("No leads: sync leads first.")
        return page
    names = [label(s) for s in f.stages]
    page.findings.append(f"Of {f.leads} leads, " + ", ".join(
        f"{pct(r.reached / f.leads)} reached {label(r.step)}" for r in f.rows[1:]) + ".")
    steps = [(i, r) for i, r in enumerate(f.rows[:-1]) if r.conversion is not None]
    weakest = min(steps, key=lambda ir: ir[1].conversion or 0.0)[0] if steps else None
    step_labels = [f"{a} \u2192 {b}" for a, b in itertools.pairwise(names)]
    weak_text = (f"{step_labels[weakest]} converts {pct(f.rows[weakest].conversion)}, the weakest step."
                 if weakest is not None else "No step has leads yet.")
    page.findings.append(weak_text)
    if f.drops:
        for d in f.drops:
            page.findings.append(f"{label(d.step)} \u2192 {label(d.following)} fell from {pct(d.before)} to "
                                 f"{pct(d.after)} for leads created in {d.quarter_after} against {d.quarter_before}: "
                                 f"look at {d.area}.")
    else:
        page.findings.append("No step fell by 5 points or more between the last two created quarters.")
    sources = [(k, rows) for k, rows in f.by_source if rows and rows[0].reached >= 10]
    if sources:
        best = max(sources, key=lambda kv: kv[1][-1].reached / kv[1][0].reached)
        page.findings.append(f"{best[0]} leads turn into customers most often: {_share(best[1])} of "
                             f"{best[1][0].reached}.")
    page.charts.append(Chart("Where do leads stall?", weak_text, charts.conversion_bars(
        step_labels, [r.conversion for r in f.rows[:-1]], weakest)))
    page.tables.append(Table("Steps", ("step", "leads", "conversion to next", "median days to next",
                                       "p75 days to next", "timed"),
                             tuple((label(r.step), str(r.reached), pct(r.conversion), days(r.median_days_to_next),
                                    days(r.p75_days_to_next), str(r.timed)) for r in f.rows)))
    for title, groups in (("By lead source", f.by_source), ("By segment", f.by_segment)):
        page.tables.append(Table(title, ("group", *names, "lead \u2192 customer"), tuple(
            (key, *(str(r.reached) for r in rows), _share(rows)) for key, rows in groups)))
    page.tables.append(Table("Transition definitions (config/rules/scoring.yaml)", ("transition", "from", "to",
                                                                                   "min score", "also when"),
                             tuple((t.name, ", ".join(sorted(str(x or "(none)") for x in t.from_)), t.to,
                                    "-" if t.min_score is None else f"{t.min_score:g}",
                                    "yes" if t.pred is not None else "-") for t in model.transitions),
                             note=f"Steps: {ARROW.join(names)}. Opportunity = the lead was converted; "
                                  "customer = its opportunity was won."))
    page.footnotes += [
        f"{f.untimed_steps} steps were reached with no known time (implied by a later step, or given by the "
        "transitions evaluated on the lead now): they count as reached but in no days figure.",
        "MQL and SQL times are those of crmsync's lifecycle decisions; opportunity time is the converted "
        "opportunity's creation (else the CRM's conversion date); customer time is the won deal's last stage change.",
        "Recent quarters are still maturing: their leads have had less time to move on.",
    ]
    return page
