"""``crmsync report ...``: thin shells over the report library (mounted by ``crmsync.cli``).

Read-only: the store is never migrated here. The chart needs the optional ``crmsync[charts]``
extra (matplotlib); without it ``--chart`` says how to install it and the tables still work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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

report_app = typer.Typer(help="Reports over the store: funnel, deals, losses, lifecycle, billing.",
                        no_args_is_help=True)

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


def _show_page(page: Any, html: Path | None, png: Path | None, csv: Path | None) -> None:
    """A report page's findings on the console, and the files asked for (HTML, PNG charts, CSV)."""
    from crmsync.report.page import write_csv, write_html, write_pngs

    console.print(f"[bold]{page.title}[/bold]  {page.subtitle}")
    for finding in page.findings:
        console.print(f"- {finding}")
    if html is not None:
        console.print(f"html: {write_html(page, html)}")
    if png is not None:
        for written in write_pngs(page.charts, png):
            console.print(f"png:  {written}")
    if csv is not None:
        console.print(f"csv:  {write_csv(page.tables, csv)}")


def _page_command(kind: str, config: Path | None, connection: str | None, since: str | None, quarters: int,
                  html: Path | None, png: Path | None, csv: Path | None) -> None:
    from crmsync.report.deal_metrics import rollup
    from crmsync.report.deal_stream import iter_deal_facts
    from crmsync.report.funnel_data import load_owners
    from crmsync.report.periods import parse_since
    from crmsync.report.revenue import deals_page, losses_page

    settings = state.settings(config)
    require_connection(settings, connection)
    now = now_utc()
    try:
        since_at = parse_since(since, now) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    store = state.read_store()  # read-only: never migrated here
    try:
        totals = rollup(iter_deal_facts(store, connection=connection, owners=load_owners(store, connection=connection),
                                        since=since_at))
    finally:
        store.close()
    scope = " / ".join(p for p in (connection or "all connections", f"created since {since_at:%Y-%m-%d}"
                                   if since_at else "") if p)
    page = deals_page(totals, now=now, quarters=quarters, scope=scope) if kind == "deals" else \
        losses_page(totals, now=now, scope=scope)
    _show_page(page, html, png, csv)


SinceOption = Annotated[str | None, typer.Option(help="Only deals created since: 90d, 12w, 36h or a date.")]
HtmlOption = Annotated[Path | None, typer.Option("--html", help="Write one self-contained HTML page here.")]
PngOption = Annotated[Path | None, typer.Option("--png", help="Write the charts as PNG (first here, others beside).")]
CsvOption = Annotated[Path | None, typer.Option("--csv", help="Write the tables as CSV here.")]


@report_app.command("deals")
def deals_command(config: ConfigOption = None, connection: ConnectionOption = None, since: SinceOption = None,
                  quarters: Annotated[int, typer.Option(min=2, max=12, help="Created quarters in the trend.")] = 8,
                  html: HtmlOption = None, png: PngOption = None, csv: CsvOption = None) -> None:
    """Deal funnel and performance: conversion and drop-off, time in stage, win rate, cycle, velocity,
    by team/segment/lead source/owner and created-quarter cohorts."""
    _page_command("deals", config, connection, since, quarters, html, png, csv)


@report_app.command("losses")
def losses_command(config: ConfigOption = None, connection: ConnectionOption = None, since: SinceOption = None,
                   html: HtmlOption = None, png: PngOption = None, csv: CsvOption = None) -> None:
    """Loss-reason review: reasons by stage lost from, segment, competitor, owner and quarter."""
    _page_command("losses", config, connection, since, 8, html, png, csv)


@report_app.command("billing")
def billing_command(config: ConfigOption = None, connection: ConnectionOption = None,
                    html: HtmlOption = None, png: PngOption = None, csv: CsvOption = None) -> None:
    """Full funnel to billing: won deals joined with their Meteroid subscriptions, time to first
    invoice, churned and expanded revenue, GRR/NRR by cohort and segment."""
    from crmsync.connectors.base import ConnectorError
    from crmsync.connectors.meteroid import MeteroidConnector
    from crmsync.report.billing_funnel import WonDeal, billing_funnel
    from crmsync.report.billing_page import billing_page
    from crmsync.report.deal_stream import iter_deal_facts

    settings = state.settings(config)
    if not settings.billing.connection:
        raise typer.BadParameter("billing.connection is not set in the configuration", param_hint="--config")
    require_connection(settings, connection)
    now = now_utc()
    store = state.read_store()  # read-only: never migrated here
    try:
        won = [WonDeal(f.connection, f.deal_id, f.closed_at, f.dims.get("segment", "(none)"))
               for f in iter_deal_facts(store, connection=connection) if f.outcome == "won"]
    finally:
        store.close()
    billing = MeteroidConnector(settings.connection(settings.billing.connection))
    try:
        subscriptions = billing.list_all("subscriptions")
    except ConnectorError as exc:
        err_console.print(f"billing: cannot list subscriptions: {exc}", markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED) from None
    finally:
        billing.close()
    page = billing_page(billing_funnel(won, subscriptions, now.date()), now=now,
                        scope=connection or "all connections")
    _show_page(page, html, png, csv)


@report_app.command("lifecycle")
def lifecycle_command(config: ConfigOption = None, connection: ConnectionOption = None,
                      html: HtmlOption = None, png: PngOption = None, csv: CsvOption = None) -> None:
    """Lead lifecycle funnel (lead -> MQL -> SQL -> opportunity -> customer) with the rule files'
    transition definitions: conversion and time between steps, by source and segment, drops flagged."""
    from crmsync.report.lifecycle import lifecycle_funnel
    from crmsync.report.lifecycle_data import NoLifecycleRules, lifecycle_model, load_lead_facts
    from crmsync.report.lifecycle_page import lifecycle_page
    from crmsync.rules.loader import RuleFileError

    settings = state.settings(config)
    require_connection(settings, connection)
    try:
        model = lifecycle_model(settings.rules_dir)
    except (NoLifecycleRules, RuleFileError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    now = now_utc()
    store = state.read_store()  # read-only: never migrated here
    try:
        facts = load_lead_facts(store, model, now=now, connection=connection)
    finally:
        store.close()
    page = lifecycle_page(lifecycle_funnel(facts, model.lifecycle_stages), model, now=now,
                          scope=connection or "all connections")
    _show_page(page, html, png, csv)


# shadow, experiments and feedback reports (crmsync.workflow_commands)
from crmsync.workflow_commands import register_reports  # noqa: E402

register_reports(report_app)
