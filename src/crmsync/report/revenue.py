"""The deal and loss report pages: which findings, charts and tables a sales review shows.

``deals_page``: where deals drop off (stage conversion), whether win rate is improving (created
quarter cohorts, with the step and the team/segment that moved most), how long deals sit in each
stage, sales velocity, and breakdowns by team, segment, lead source and owner.
``losses_page``: loss reasons by the stage lost from, segment, competitor, owner and quarter.
Both footnote the data that could not be used as is (no history, backwards moves, skipped
stages, currency mixes).
"""

from __future__ import annotations

import datetime as dt
import itertools

from crmsync.report import charts
from crmsync.report.deal_metrics import UNKNOWN, LossRow, Rollup, Summary
from crmsync.report.page import Chart, ReportPage, Table

MIN_GROUP = 5  # deals a group needs before a finding names it


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def money(value: object, currency: str | None) -> str:
    return "-" if value is None else f"{currency or ''} {value:,.2f}".strip()


def _step_labels(summary: Summary) -> list[str]:
    names = [s.name for s in summary.stages] + ["Won"]
    return [f"{a} \u2192 {b}" for a, b in itertools.pairwise(names)]


def quality_notes(summary: Summary) -> list[str]:
    q = summary.quality
    notes = [f"{q.get('no_history', 0)} deals have no stage history at all (only their current stage is known): "
             "they count in the stage they are in now and in no time-in-stage figure.",
             f"{q.get('backwards_moves', 0)} backwards moves (a deal sent back to an earlier stage) and "
             f"{q.get('skipped_stages', 0)} skipped stages are in the histories; a deal counts as having reached "
             "every stage up to the furthest one it entered.",
             f"Money is in {summary.currency or 'no currency'}: {q.get('other_currency', 0)} deals in another "
             f"currency and {q.get('no_currency', 0)} without an amount are counted but left out of amounts "
             "and velocity.",
             "Time in stage uses completed stays only; a deal still in an open stage has a stay known to last at "
             "least until now and is left out (censored).",
             "Recent cohorts are still maturing: their open deals count as not (yet) converted in stage "
             "conversion, while win rate counts closed deals only."]
    return notes


def _trend_finding(r: Rollup, recent: list[tuple[str, Summary]], labels: list[str]) -> tuple[str, str]:
    """(sentence about the step that moved most between the last two cohorts, sentence on win rate)."""
    if len(recent) < 2:
        return "", "Fewer than two created quarters: no trend yet."
    (q_prev, s_prev), (q_last, s_last) = recent[-2], recent[-1]
    win = (f"Win rate of deals created in {q_last} is {pct(s_last.win_rate)} against {pct(s_prev.win_rate)} in "
           f"{q_prev} ({s_last.open} of {s_last.deals} {q_last} deals are still open).")
    best: tuple[float, int] | None = None
    for step in range(len(labels)):
        before, after = r.step_conversion(step, "quarter", q_prev), r.step_conversion(step, "quarter", q_last)
        if before is not None and after is not None and (best is None or after - before < best[0]):
            best = (after - before, step)
    if best is None:
        return "", win
    change, step = best
    before, after = r.step_conversion(step, "quarter", q_prev), r.step_conversion(step, "quarter", q_last)
    worst: tuple[float, str] | None = None
    for team, segment in r.team_segments(q_last):
        prev_key, last_key = ("tqs", q_prev, team, segment), ("tqs", q_last, team, segment)
        if r.group_size(*prev_key) < MIN_GROUP or r.group_size(*last_key) < MIN_GROUP:
            continue
        a, b = r.step_conversion(step, *prev_key), r.step_conversion(step, *last_key)
        if a is not None and b is not None and (worst is None or b - a < worst[0]):
            worst = (b - a, f"{team} {segment}")
    where = f", mostly in {worst[1]} ({worst[0] * 100:+.0f} pts)" if worst is not None and worst[0] < 0 else ""
    verb = "dropped" if change < 0 else "rose"
    return (f"{labels[step]} {verb} from {pct(before)} to {pct(after)} for deals created in {q_last} against "
            f"{q_prev}{where}."), win


def _summary_rows(groups: list[tuple[str, Summary]], limit: int = 12) -> tuple[tuple[str, ...], ...]:
    return tuple((k, str(s.deals), str(s.won), str(s.lost), str(s.open), pct(s.win_rate), days(s.cycle_days),
                  money(s.avg_won_amount, s.currency), money(s.velocity_per_day, s.currency))
                 for k, s in groups[:limit])


SUMMARY_COLUMNS = ("group", "deals", "won", "lost", "open", "win rate", "cycle (d, median)", "avg won",
                   "velocity / day")


def deals_page(r: Rollup, *, now: dt.datetime, quarters: int = 8, scope: str = "all deals") -> ReportPage:
    total = r.summary()
    page = ReportPage("Deal funnel and performance", f"{scope}: {total.deals} deals, as of {now:%Y-%m-%d %H:%M} UTC")
    if not total.deals:
        page.findings.append("No deals with known stages: sync deals and stages first, or widen the filters.")
        return page
    labels = _step_labels(total)
    rates = [s.conversion for s in total.stages]
    known = [i for i, r in enumerate(rates) if r is not None]
    weakest = min(known, key=lambda i: float(rates[i] or 0.0)) if known else None
    weak_text = (f"{labels[weakest]} converts {pct(rates[weakest])} of deals, the weakest step; overall win rate is "
                 f"{pct(total.win_rate)} ({total.won} won, {total.lost} lost, {total.open} open)."
                 if weakest is not None else "No open stages.")
    page.findings.append(weak_text)
    recent = r.cohorts(quarters)
    step_text, win_text = _trend_finding(r, recent, labels)
    if step_text:
        page.findings.append(step_text)
    page.findings.append(win_text)
    timed = [s for s in total.stages if s.median_days is not None]
    slow_text = ""
    if timed:
        slow = max(timed, key=lambda s: s.median_days or 0.0)
        slow_text = (f"Deals sit longest in {slow.name}: median {days(slow.median_days)} days, a quarter of them "
                     f"more than {days(slow.p75_days)} days.")
        page.findings.append(slow_text)
    page.findings.append(
        f"Sales velocity is {money(total.velocity_per_day, total.currency)} per day: {total.open} open deals x "
        f"{pct(total.win_rate)} win rate x {money(total.avg_won_amount, total.currency)} average won / "
        f"{days(total.cycle_days)} days median cycle.")

    page.charts.append(Chart("Where do deals drop off?", weak_text, charts.conversion_bars(labels, rates, weakest)))
    segments = [k for k, s in r.breakdown("segment") if s.deals >= MIN_GROUP][:4]
    series = {"all deals": [s.win_rate for _, s in recent]}
    for seg in segments:
        series[seg] = [(g.win_rate if (g := r.group("sq", seg, q)) is not None else None) for q, _ in recent]
    page.charts.append(Chart("Is win rate improving? (by created quarter)", win_text,
                             charts.trend_lines([q for q, _ in recent], series)))
    if timed:
        page.charts.append(Chart("How long do deals sit in each stage?", slow_text, charts.stage_days(
            [s.name for s in total.stages], [s.median_days for s in total.stages], [s.p75_days for s in total.stages])))

    page.tables.append(Table("Stages", ("stage", "reached", "conversion to next", "drop-off", "median days",
                                        "p75 days", "completed stays"),
                             tuple((s.name, str(s.reached), pct(s.conversion), pct(s.drop_off), days(s.median_days),
                                    days(s.p75_days), str(s.stays)) for s in total.stages),
                             note="Lost deals count at the stage they were lost from."))
    page.tables.append(Table("Created-quarter cohorts", ("quarter", *SUMMARY_COLUMNS[1:]),
                             _summary_rows(recent, limit=quarters)))
    for dimension, title in (("team", "By team"), ("segment", "By segment"), ("lead_source", "By lead source"),
                             ("pipeline", "By pipeline"), ("owner", "By owner (largest 12)")):
        page.tables.append(Table(title, SUMMARY_COLUMNS, _summary_rows(r.breakdown(dimension))))
    page.footnotes.extend(quality_notes(total))
    return page


def _loss_table(title: str, rows: list[LossRow], reasons: list[str]) -> Table:
    return Table(title, ("group", "lost", "share", *reasons),
                 tuple((r.key, str(r.lost), pct(r.share), *(str(r.reasons.get(x, 0)) for x in reasons)) for r in rows))


def losses_page(r: Rollup, *, now: dt.datetime, scope: str = "all deals") -> ReportPage:
    lost = r.summary().lost
    page = ReportPage("Loss-reason review", f"{scope}: {lost} lost deals, as of {now:%Y-%m-%d %H:%M} UTC")
    if not lost:
        page.findings.append("No lost deals match.")
        return page
    overall = r.loss_reasons("pipeline")
    totals: dict[str, int] = {}
    for row in overall:
        for reason, n in row.reasons.items():
            totals[reason] = totals.get(reason, 0) + n
    reasons = sorted(totals, key=lambda r: (-totals[r], r))
    top = reasons[0]
    page.findings.append(f"{top} is the most common loss reason: {totals[top]} of {lost} lost deals "
                         f"({pct(totals[top] / lost)}).")
    by_stage = r.loss_reasons("stage")
    heaviest = max(by_stage, key=lambda r: r.lost)
    stage_reason = max(heaviest.reasons, key=lambda k: heaviest.reasons[k])
    stage_text = (f"Most deals are lost from {heaviest.key} ({heaviest.lost}, {pct(heaviest.share)}), mainly for "
                  f"{stage_reason}.")
    page.findings.append(stage_text)
    competitors = [r for r in r.loss_reasons("competitor") if r.key != UNKNOWN]
    if competitors:
        page.findings.append(f"{competitors[0].key} wins most of the deals lost to a competitor "
                             f"({competitors[0].lost} of {sum(r.lost for r in competitors)}).")
    by_quarter = [r for r in r.loss_reasons("quarter") if r.key != UNKNOWN]
    if len(by_quarter) >= 2:
        a, b = by_quarter[-2], by_quarter[-1]
        share_a, share_b = a.reasons.get(top, 0) / a.lost, b.reasons.get(top, 0) / b.lost
        page.findings.append(f"{top} was {pct(share_b)} of losses closed in {b.key} against {pct(share_a)} in {a.key}.")
    shown = reasons[:8]
    page.charts.append(Chart("Why are deals lost, and where?", stage_text, charts.stacked_reasons(
        [r.key for r in by_stage], shown, [[r.reasons.get(x, 0) for x in shown] for r in by_stage])))
    page.tables.append(_loss_table("By stage lost from", by_stage, shown))
    page.tables.append(_loss_table("By segment", r.loss_reasons("segment"), shown))
    page.tables.append(_loss_table("By competitor", r.loss_reasons("competitor"), shown))
    page.tables.append(_loss_table("By owner", r.loss_reasons("owner")[:12], shown))
    page.tables.append(_loss_table("By quarter closed", r.loss_reasons("quarter"), shown))
    no_reason = totals.get(UNKNOWN, 0)
    page.footnotes.append(f"{no_reason} lost deals carry no loss reason in the CRM; they show as {UNKNOWN}.")
    page.footnotes.extend(quality_notes(r.summary())[:1])
    return page
