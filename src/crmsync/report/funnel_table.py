"""The funnel as rich tables, one per (connection, pipeline, segment)."""

from __future__ import annotations

from rich.table import Table

from crmsync.report.funnel import Funnel


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def funnel_title(funnel: Funnel) -> str:
    pipeline = funnel.pipeline_name if funnel.pipeline_name == funnel.pipeline_id else (
        f"{funnel.pipeline_name} ({funnel.pipeline_id})")
    return f"{funnel.connection} / pipeline {pipeline} / segment {funnel.segment}"


def funnel_caption(funnel: Funnel) -> str:
    parts = [f"{funnel.deals} deals: {funnel.open} open, {funnel.won} won, {funnel.lost} lost; "
             f"win rate {pct(funnel.win_rate)}.",
             f"Median days in stage counts completed stays only; {funnel.censored} stays still running "
             "(deals still in an open stage, time in stage known only up to now) are censored and left out."]
    if funnel.lost_unplaced:
        parts.append(f"{funnel.lost_unplaced} lost deals have no open stage on record (no stage history yet): "
                     "counted as lost at the first stage.")
    if funnel.unknown_stage:
        parts.append(f"{funnel.unknown_stage} deals in a stage the store does not list are left out.")
    if funnel.inferred_flags:
        parts.append("The CRM has no closed/won stage flags: stages whose deals are all closed count as closed.")
    return "\n".join(parts)


def funnel_table(funnel: Funnel) -> Table:
    table = Table(title=funnel_title(funnel), caption=funnel_caption(funnel), caption_justify="left")
    for name, justify in (("stage", "left"), ("reached", "right"), ("conv. to next", "right"),
                          ("win rate", "right"), ("lost here", "right"), ("open now", "right"),
                          ("median days", "right"), ("stays", "right"), ("censored", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in funnel.rows:
        table.add_row(
            row.name if row.kind == "open" else f"[green]{row.name}[/green]",
            str(row.reached), pct(row.conversion), pct(row.win_rate),
            str(row.lost_here) if row.kind == "open" else "", str(row.current) if row.kind == "open" else "",
            days(row.median_days), str(row.stays) if row.kind == "open" else "",
            str(row.censored) if row.kind == "open" else "",
        )
    return table
