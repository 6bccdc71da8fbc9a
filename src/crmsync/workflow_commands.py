"""CLI of the workflow trials: ``crmsync rules shadow start|stop|list`` and ``crmsync report
shadow|experiments|feedback`` (mounted from ``rules.commands`` and ``report.commands``)."""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table as RichTable

from crmsync.cli_options import (
    ConfigOption,
    ConnectionOption,
    ExitCode,
    JsonOption,
    console,
    err_console,
    iso,
    print_json,
    require_connection,
    short_time,
    state,
)
from crmsync.model import now_utc, parse_timestamp

if TYPE_CHECKING:
    from crmsync.report.page import ReportPage

shadow_app = typer.Typer(help="Shadow mode: run a rule-set version beside the live one, never pushed.",
                         no_args_is_help=True)
CsvOption = Annotated[Path | None, typer.Option("--csv", help="Also write every table as CSV here.")]
HtmlOption = Annotated[Path | None, typer.Option("--html", help="Also write the report as an HTML page here.")]


def _when(value: str | None, name: str, default: dt.datetime) -> dt.datetime:
    if value is None:
        return default
    try:
        moment = parse_timestamp(value)
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise typer.BadParameter(f"expected an ISO 8601 time with a zone (2026-12-03T09:00Z), got {value!r}",
                                 param_hint=name)
    return moment


@shadow_app.command("start")
def shadow_start(
    config: ConfigOption = None,
    version: Annotated[int | None, typer.Option(help="A recorded rule-set version (console: Versions).")] = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="A rule directory to record as a version and "
                                                    "shadow (a candidate; never published).")] = None,
    start: Annotated[str | None, typer.Option(help="Start, ISO 8601 UTC (default: now).")] = None,
    end: Annotated[str | None, typer.Option(help="End, ISO 8601 UTC (default: start + 7 days).")] = None,
    note: Annotated[str | None, typer.Option(help="Why (shown in the report).")] = None,
) -> None:
    """Start a shadow period: the worker evaluates the version beside the live rules while it is open."""
    from crmsync.rules.loader import RuleFileError
    from crmsync.trials.shadow import ShadowError, record_version, start_period

    if (version is None) == (directory is None):
        raise typer.BadParameter("give exactly one of --version and --dir", param_hint="--version")
    starts = _when(start, "--start", now_utc())
    ends = _when(end, "--end", starts + dt.timedelta(days=7))
    store = state.write_store(config)
    try:
        author = getpass.getuser()
        if directory is not None:
            try:
                version = record_version(store, directory, author=author, note=note)
            except RuleFileError as exc:
                err_console.print(str(exc), markup=False, highlight=False)
                raise typer.Exit(ExitCode.USAGE) from None
        assert version is not None
        try:
            period_id = start_period(store, version, starts, ends, created_by=author, note=note)
        except ShadowError as exc:
            raise typer.BadParameter(str(exc), param_hint="--version") from None
    finally:
        store.close()
    console.print(f"shadow period {period_id}: version {version}, {short_time(starts)} to {short_time(ends)}",
                  markup=False, highlight=False)


@shadow_app.command("stop")
def shadow_stop(period_id: Annotated[int, typer.Argument(help="The period's id.")], config: ConfigOption = None) -> None:
    """End a shadow period now (its decisions stay for the report)."""
    from crmsync.trials.shadow import stop_period

    store = state.write_store(config)
    try:
        stopped = stop_period(store, period_id)
    finally:
        store.close()
    if not stopped:
        err_console.print(f"no open shadow period {period_id}", markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED)
    console.print(f"shadow period {period_id} stopped", markup=False, highlight=False)


@shadow_app.command("list")
def shadow_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Shadow periods, newest first."""
    from crmsync.trials.shadow import periods

    store = state.read_store(config)
    try:
        found = periods(store)
    finally:
        store.close()
    now = now_utc()
    if as_json:
        print_json([{"id": p.id, "version_id": p.version_id, "rule_set_hash": p.rule_set_hash,
                     "starts_at": iso(p.starts_at), "ends_at": iso(p.ends_at), "state": p.state(now),
                     "created_by": p.created_by, "note": p.note} for p in found])
        return
    table = RichTable("id", "version", "hash", "start", "end", "state", "by", "note")
    for p in found:
        table.add_row(str(p.id), str(p.version_id), p.rule_set_hash[:12], short_time(p.starts_at),
                      short_time(p.ends_at), p.state(now), p.created_by, p.note or "")
    console.print(table)


def print_page(page: ReportPage, html: Path | None = None, csv: Path | None = None, *, rows: int = 50) -> None:
    """A report page on the console: findings, then each table (first ``rows`` rows)."""
    from crmsync.report.page import write_csv, write_html

    console.print(f"[bold]{page.title}[/bold]  {page.subtitle}", highlight=False)
    for finding in page.findings:
        console.print(f"- {finding}", markup=False, highlight=False)
    for table in page.tables:
        out = RichTable(*table.columns, title=table.title, title_justify="left")
        for row in table.rows[:rows]:
            out.add_row(*row)
        console.print(out)
        if len(table.rows) > rows:
            console.print(f"  ... {len(table.rows) - rows:,} more rows (--csv writes them all)", highlight=False)
        if table.note:
            console.print(f"  {table.note}", markup=False, highlight=False)
    for note in page.footnotes:
        console.print(f"  {note}", markup=False, highlight=False)
    if html is not None:
        console.print(f"html: {write_html(page, html)}", markup=False, highlight=False)
    if csv is not None:
        console.print(f"csv:  {write_csv(page.tables, csv)}", markup=False, highlight=False)


def _page_json(page: ReportPage, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"title": page.title, "subtitle": page.subtitle, "findings": page.findings, **(extra or {}),
            "tables": [{"title": t.title, "columns": list(t.columns), "rows": [list(r) for r in t.rows]}
                       for t in page.tables]}


def register_reports(report_app: typer.Typer) -> None:
    @report_app.command("shadow")
    def shadow_command(
        config: ConfigOption = None,
        period: Annotated[int | None, typer.Option(help="The shadow period (default: the newest).")] = None,
        html: HtmlOption = None, csv: CsvOption = None, as_json: JsonOption = False,
    ) -> None:
        """What a shadow rule-set version would have changed (owners, scores, tasks) against what live did."""
        from crmsync.report.shadow import shadow_page, shadow_report
        from crmsync.trials.shadow import periods

        store = state.read_store(config)
        try:
            if period is None:
                found = periods(store)
                if not found:
                    err_console.print("no shadow period yet: crmsync rules shadow start", markup=False)
                    raise typer.Exit(ExitCode.FAILED)
                period = found[0].id
            try:
                report = shadow_report(store, period)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--period") from None
        finally:
            store.close()
        page = shadow_page(report, limit=None if (csv or as_json) else 200)
        if as_json:
            print_json(_page_json(page, {"counts": report.counts, "decisions": report.decisions}))
            return
        print_page(page, html, csv)

    @report_app.command("experiments")
    def experiments_command(config: ConfigOption = None, html: HtmlOption = None, csv: CsvOption = None,
                            as_json: JsonOption = False) -> None:
        """Experiments: groups, outcomes with 95% intervals, tests against control, and each one's status."""
        from crmsync.report.experiments import experiment_results, experiments_page
        from crmsync.rules.loader import RuleFileError, load_rules

        settings = state.settings(config)
        try:
            rule_set = load_rules(settings.rules_dir)
        except RuleFileError as exc:
            err_console.print(str(exc), markup=False, highlight=False)
            raise typer.Exit(ExitCode.USAGE) from None
        now = now_utc()
        store = state.read_store(config)
        try:
            results = experiment_results(store, rule_set.experiments, now.date())
        finally:
            store.close()
        page = experiments_page(results, now=now)
        if as_json:
            print_json(_page_json(page, {"status": {r.name: r.status for r in results}}))
            return
        print_page(page, html, csv)

    @report_app.command("feedback")
    def feedback_command(config: ConfigOption = None, connection: ConnectionOption = None, html: HtmlOption = None,
                         csv: CsvOption = None, as_json: JsonOption = False) -> None:
        """Rep feedback: the share of each rule's findings that reps marked [wrong] in the CRM."""
        from crmsync.report.feedback import feedback, feedback_page

        settings = state.settings(config)
        require_connection(settings, connection)
        store = state.read_store(config)
        try:
            rows, wrong = feedback(store, connection)
        finally:
            store.close()
        page = feedback_page(rows, wrong, scope=connection or "all connections")
        if as_json:
            print_json(_page_json(page, {"rules": [{"rule_kind": r.rule_kind, "rule": r.rule_name,
                                                    "delivered": r.delivered, "rejected": r.rejected,
                                                    "rate": round(r.rate, 4)} for r in rows]}))
            return
        print_page(page, html, csv)
