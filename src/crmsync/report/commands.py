"""``crmsync report ...``: thin shells over the report library (mounted by ``crmsync.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from crmsync.model import now_utc

report_app = typer.Typer(help="Reports over the store: funnel.", no_args_is_help=True)
console = Console()

DEFAULT_CHART = Path(".crmsync/reports/funnel.png")


@report_app.command("funnel")
def funnel_command(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Path to crmsync.yaml.")] = None,
    connection: Annotated[str | None, typer.Option(help="Only this connection.")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline id.")] = None,
    segment: Annotated[str | None, typer.Option(help="Only this account segment ('all' = every deal).")] = None,
    since: Annotated[str | None, typer.Option(help="Only deals created since: 90d, 12w, 36h or a date.")] = None,
    chart: Annotated[Path, typer.Option(help="Where to save the chart (PNG).")] = DEFAULT_CHART,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the rows as CSV here.")] = None,
) -> None:
    """Stage-to-stage conversion, win rate and median days in stage per pipeline and segment."""
    from crmsync.cli import state
    from crmsync.report.funnel import compute_funnels
    from crmsync.report.funnel_chart import render_funnel_chart
    from crmsync.report.funnel_csv import write_funnel_csv
    from crmsync.report.funnel_data import load_funnel_input
    from crmsync.report.funnel_table import funnel_table
    from crmsync.report.periods import parse_since

    settings = state.settings(config)
    if connection is not None and connection not in {c.name for c in settings.connections}:
        raise typer.BadParameter(f"no connection named {connection!r} in the configuration", param_hint="--connection")
    try:
        since_at = parse_since(since, now_utc()) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    store = state.store()
    try:
        store.upgrade()
        data = load_funnel_input(store, connection=connection)
    finally:
        store.close()
    funnels = compute_funnels(data, connection=connection, pipeline=pipeline, segment=segment, since=since_at)
    if not funnels:
        console.print("no deals with known stages match (sync deals and stages first, or widen the filters)")
    for funnel in funnels:
        console.print(funnel_table(funnel))
    written = render_funnel_chart(funnels, chart)
    console.print(f"chart: {written}")
    if csv is not None:
        console.print(f"csv:   {write_funnel_csv(funnels, csv)}")
