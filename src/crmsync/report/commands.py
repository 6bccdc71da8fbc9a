"""``crmsync report ...``: thin shells over the report library (mounted by ``crmsync.cli``).

Read-only: the store is never migrated here. The chart needs the optional ``crmsync[charts]``
extra (matplotlib); without it ``--chart`` says how to install it and the tables still work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crmsync.cli_options import (
    ConfigOption,
    ConnectionOption,
    ExitCode,
    JsonOption,
    console,
    err_console,
    print_json,
    require_connection,
    state,
)
from crmsync.model import now_utc

report_app = typer.Typer(help="Reports over the store: funnel.", no_args_is_help=True)

CHARTS_EXTRA_MISSING = ("charts need the optional plotting extra: pip install 'crmsync[charts]' "
                        "(make install includes it)")


def charts_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@report_app.command("funnel")
def funnel_command(
    config: ConfigOption = None,
    connection: ConnectionOption = None,
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline id.")] = None,
    segment: Annotated[str | None, typer.Option(help="Only this account segment ('all' = every deal).")] = None,
    since: Annotated[str | None, typer.Option(help="Only deals created since: 90d, 12w, 36h or a date.")] = None,
    chart: Annotated[Path | None, typer.Option(help="Also save the chart here (PNG; needs crmsync[charts]).")]
        = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the rows as CSV here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Stage-to-stage conversion, win rate and median days in stage per pipeline and segment."""
    from crmsync.report.funnel import compute_funnels
    from crmsync.report.funnel_csv import write_funnel_csv
    from crmsync.report.funnel_data import load_funnel_input
    from crmsync.report.funnel_table import funnel_table
    from crmsync.report.periods import parse_since

    settings = state.settings(config)
    require_connection(settings, connection)
    if chart is not None and not charts_available():
        err_console.print(CHARTS_EXTRA_MISSING, markup=False, highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    try:
        since_at = parse_since(since, now_utc()) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    store = state.read_store()
    try:
        data = load_funnel_input(store, connection=connection)
    finally:
        store.close()
    funnels = compute_funnels(data, connection=connection, pipeline=pipeline, segment=segment, since=since_at)
    written = {}
    if chart is not None:
        from crmsync.report.funnel_chart import render_funnel_chart

        written["chart"] = str(render_funnel_chart(funnels, chart))
    if csv is not None:
        written["csv"] = str(write_funnel_csv(funnels, csv))
    if as_json:
        print_json({"funnels": funnels, **written})
        return
    if not funnels:
        console.print("no deals with known stages match (sync deals and stages first, or widen the filters)")
    for funnel in funnels:
        console.print(funnel_table(funnel))
    for what, path in written.items():
        console.print(f"{what + ':':<6} {path}")
