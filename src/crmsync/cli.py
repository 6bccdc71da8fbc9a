"""The ``crmsync`` command line: thin shells over library calls (typer + rich)."""

from __future__ import annotations

import datetime as dt
import sys
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from crmsync.cli_options import (
    ConfigOption,
    ConnectionOption,
    ConnectionRequired,
    JsonOption,
    ObjectOption,
    console,
    err_console,
    print_json,
    require_connection,
    state,
)
from crmsync.logging import configure_logging
from crmsync.model import UTC
from crmsync.settings import CALL_KINDS

app = typer.Typer(help="CRM sync and sales-automation worker.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
sandbox_app = typer.Typer(help="Local simulators of Salesforce, HubSpot, Pipedrive and Meteroid.",
                          no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"crmsync {version('crmsync')}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: ConfigOption = None,
    log_format: Annotated[str, typer.Option("--log-format", help="auto | console | json")] = "auto",
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
    _version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                           help="Print the version and exit.")] = False,
) -> None:
    if log_format not in ("auto", "console", "json"):
        raise typer.BadParameter("expected auto, console or json", param_hint="--log-format")
    state.debug = debug
    state.config_path = config
    state.log_format = log_format  # type: ignore[assignment]
    configure_logging(state.log_format)


# --- db / config / status ---------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or upgrade the store's schema (SQLite or PostgreSQL)."""
    store = state.store(config)
    before = store.current_revision()
    store.upgrade()
    after = store.current_revision()
    console.print(f"store {store.dialect}: schema {before or 'empty'} -> {after}")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration and print what it declares (secrets masked)."""
    settings = state.settings(config)
    table = Table(title=f"connections ({settings.source_path or 'defaults'})")
    for col in ("name", "kind", "base url", "objects", "schedule", "credentials"):
        table.add_column(col)
    for conn in settings.connections:
        schedule = conn.schedule.cron or f"every {conn.schedule.interval_seconds}s"
        table.add_row(conn.name, conn.kind, conn.base_url or "(default)", ", ".join(conn.objects), schedule,
                      ", ".join(f"{k}=**********" for k in conn.credentials))
    console.print(table)
    console.print(f"store: {_masked_url(settings.store.url)}")
    console.print("[green]configuration is valid[/green]")


def _masked_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command("status")
def status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Connections, cursors, last runs, outbox and quarantine counts (read-only: never migrates)."""
    from crmsync.status import render_status, status_data

    settings = state.settings(config)
    store = state.read_store()
    try:
        if as_json:
            print_json(status_data(settings, store))
        else:
            render_status(console, settings, store)
    finally:
        store.close()


# --- sync / backfill ----------------------------------------------------------------------------
def _parse_date(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO timestamp)", param_hint=name) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _install_stop_handler() -> Any:
    """SIGTERM/SIGINT: finish the current page, checkpoint, exit with 128+signal (crmsync.signals)."""
    from crmsync.signals import install_stop_signals

    return install_stop_signals(on_stop=lambda: err_console.print(
        "stopping after the current page (checkpoint is kept)..."))


@app.command("sync")
def sync_command(
    connection: ConnectionOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Pull and count, write nothing (cursors stay).")] = False,
) -> None:
    """One incremental sync cycle (all connections, or one)."""
    from crmsync.sync.runner import run_sync_cycles

    settings = state.settings(config)
    require_connection(settings, connection)
    store = state.write_store()
    stopper = _install_stop_handler()
    stop = stopper.event
    names = [connection] if connection else [c.name for c in settings.connections
                                             if c.enabled and (c.is_crm or c.kind in CALL_KINDS)]  # CRMs and call systems
    table = Table(title="sync (dry run: nothing written)" if dry_run else "sync")
    for col in ("connection", "object", "status", "records", "deleted", "bad", "calls"):
        table.add_column(col, justify="right" if col in ("records", "deleted", "bad", "calls") else "left")
    rows: list[dict[str, Any]] = []
    # every connection runs: one that fails is reported and never stops the others
    results = run_sync_cycles(settings, store, names, stop_event=stop, dry_run=dry_run)
    for result in results:
        rows.append({"connection": result.connection, "object": result.object_name, "status": result.status,
                     "dry_run": dry_run, **result.counts(), "error": result.error})
        table.add_row(result.connection, result.object_name, result.status, str(result.records),
                      str(result.deleted), str(result.quarantined), str(result.api_calls))
    store.close()
    failures = [r for r in results if r.status == "failed"]
    if as_json:
        print_json({"dry_run": dry_run, "results": rows})
    else:
        console.print(table)
        for result in failures:
            err_console.print(f"{result.connection}/{result.object_name}: {result.error}", markup=False,
                              highlight=False)
    if failures:
        raise typer.Exit(1)
    if stopper.exit_code is not None:
        raise typer.Exit(stopper.exit_code)


@app.command("backfill")
def backfill_command(
    connection: ConnectionRequired,
    object_name: Annotated[str, typer.Option("--object", help="Object(s) to backfill: a name, a comma list, "
                                                              "or all (every configured object).")] = "deals",
    since: Annotated[str | None, typer.Option(help="Only records modified on or after (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Only records modified before (YYYY-MM-DD).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan (strategy, calls, expected wall time "
                                                            "under the CRM's limits, quota share); pull nothing.")]
    = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Backfill objects of one or more connections (comma list); several run side by side within each
    CRM's shared limit. Resumes automatically after a crash or kill."""
    from crmsync.backfill_commands import run_many, show_plans, split
    from crmsync.sync.runner import backfill_jobs, run_backfill

    settings = state.settings(config)
    names = split(connection)
    for name in names:
        require_connection(settings, name)
    objects = None if object_name == "all" else split(object_name)
    jobs = backfill_jobs(settings, names, objects)
    window = (_parse_date(since, "--since"), _parse_date(until, "--until"))
    if dry_run:
        raise typer.Exit(show_plans(settings, jobs, since=window[0], until=window[1], as_json=as_json))
    store = state.write_store()
    stopper = _install_stop_handler()
    stop = stopper.event
    if len(jobs) != 1:
        many = run_many(settings, store, jobs, since=window[0], until=window[1], stop=stop, as_json=as_json)
        store.close()
        if any(r.status == "failed" or r.unaccounted for r in many):
            raise typer.Exit(1)
        if stopper.exit_code is not None:
            raise typer.Exit(stopper.exit_code)
        return
    connection, object_name = jobs[0]
    result = run_backfill(settings, store, connection, object_name, since=_parse_date(since, "--since"),
                          until=_parse_date(until, "--until"), dry_run=dry_run, stop_event=stop,
                          console=err_console if as_json else console)
    store.close()
    unaccounted = result.unaccounted
    if as_json:
        print_json({"connection": result.connection, "object": result.object_name, "status": result.status,
                    "dry_run": dry_run, **result.counts(), "complete": result.complete,
                    "quarantined_open": result.quarantined_open, "unaccounted": unaccounted,
                    "error": result.error})
    if result.complete is None:
        verdict = "not checked"
    elif result.complete:
        verdict = "[green]complete[/green]"
    elif not unaccounted:
        verdict = f"[yellow]complete with {result.quarantined_open} quarantined[/yellow] (crmsync status lists them)"
    else:
        verdict = (f"[red]INCOMPLETE[/red]: {unaccounted} unaccounted for"
                   f" ({result.quarantined_open or 0} quarantined)")
    if not as_json:
        console.print(f"{result.connection}/{result.object_name}: {result.status}, {result.records} records, "
                      f"{result.api_calls} API calls; source {result.source_count} vs stored "
                      f"{result.stored_count}: {verdict}")
    if result.status == "failed":
        err_console.print(result.error or "failed", markup=False, highlight=False, style="red")
        raise typer.Exit(1)
    if unaccounted:
        raise typer.Exit(1)
    if stopper.exit_code is not None:
        raise typer.Exit(stopper.exit_code)


# --- sandbox and demo -----------------------------------------------------------------------------
@sandbox_app.command("serve")
def sandbox_serve(
    deals: Annotated[int, typer.Option(help="Deals in the generated world.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the world generator.")] = 7,
    systems: Annotated[str, typer.Option(help="Comma list of systems to serve.")] =
        "salesforce,hubspot,pipedrive,meteroid",
    port: Annotated[int, typer.Option(help="First port; systems take consecutive ports (0 = any free).")] = 0,
    state_dir: Annotated[Path, typer.Option(help="Where the CA and connection file are written.")] =
        Path(".crmsync/sandbox"),
) -> None:
    """Serve the simulators on loopback until interrupted; writes a ready-made connection config."""
    from crmsync.sandbox.runner import start_sandbox

    handle = start_sandbox(deals=deals, seed=seed, systems=systems.split(","), first_port=port,
                           state_dir=state_dir)
    config_path = handle.write_config(state_dir / "crmsync.yaml", store_url="sqlite:///crmsync-sandbox.db")
    for name, server in handle.servers.items():
        console.print(f"{name:<11} {server.url}")
    console.print(f"CA bundle: {handle.ca.ca_path}\nconfig:    {config_path}\nCtrl-C to stop.")
    from crmsync.signals import install_stop_signals

    stop = install_stop_signals().event
    try:
        while not stop.wait(1):
            pass
    finally:
        handle.stop()


@app.command("demo")
def demo_command(
    deals: Annotated[int, typer.Option(help="Deals per CRM in the sandbox world.")] = 2000,
    seed: Annotated[int, typer.Option(help="World seed.")] = 7,
    store_url: Annotated[str, typer.Option(help="Store URL for the demo.")] = "sqlite:///crmsync-demo.db",
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its CA and config.")] = Path(".crmsync/demo"),
    details: Annotated[bool, typer.Option("--details", help="Every table: per object, example decisions, "
                                          "the full status.")] = False,
) -> None:
    """Start the sandbox in-process, sync every CRM into a local store, run the rules; a short summary."""
    from crmsync.demo import run_demo

    code = run_demo(console, deals=deals, seed=seed, store_url=store_url, workdir=workdir, details=details)
    raise typer.Exit(code)


@app.command("sweep")
def sweep_command(
    connection: ConnectionRequired,
    object_name: ObjectOption = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="Mark them deleted even above "
                                          "schedule.delete_sweep_max_share.")] = False,
    config: ConfigOption = None,
) -> None:
    """Hard-delete reconciliation: records the CRM no longer lists are marked deleted in the store."""
    from crmsync.connectors.base import ConnectorError
    from crmsync.sync.engine import SweepRefused
    from crmsync.sync.runner import open_engine

    settings = state.settings(config)
    require_connection(settings, connection)
    store = state.write_store()
    with open_engine(settings, store, connection) as engine:
        objects = [object_name] if object_name else list(engine.conn.objects)
        for name in objects:
            try:
                marked = engine.sweep_deletes(name, confirm=confirm)
            except SweepRefused as exc:
                err_console.print(str(exc), markup=False, highlight=False)
                raise typer.Exit(1) from None
            except (NotImplementedError, ConnectorError, ValueError) as exc:
                console.print(f"{connection}/{name}: skipped ({type(exc).__name__}: {str(exc)[:200]})",
                              markup=False, highlight=False)
                continue
            console.print(f"{connection}/{name}: {marked} marked deleted")


def _mount_optional(module: str, attr: str, name: str) -> None:
    """Sub-apps of other parts (rules, billing, outbox, worker) mount when present."""
    try:
        sub = getattr(import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            return  # that part is not installed in this build
        raise
    app.add_typer(sub, name=name)


def _command(module: str, attr: str, name: str) -> None:
    """Top-level commands that live in their own module."""
    app.command(name)(getattr(import_module(module), attr))


_command("crmsync.check_commands", "check_command", "check")
_mount_optional("crmsync.state_commands", "state_app", "state")
_mount_optional("crmsync.rules.commands", "rules_app", "rules")
_mount_optional("crmsync.billing.commands", "billing_app", "billing")
_mount_optional("crmsync.sync.outbox_commands", "outbox_app", "outbox")
_mount_optional("crmsync.runtime.commands", "worker_app", "worker")
_mount_optional("crmsync.report.commands", "report_app", "report")
_mount_optional("crmsync.console.commands", "console_app", "console")


def main() -> None:
    """The console script: a user's mistake is one clear line and a non-zero exit, never a
    traceback (``--debug`` shows it)."""
    from crmsync.cli_errors import explain

    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False, highlight=False)
        sys.exit(130)
    except Exception as exc:
        if state.debug or "--debug" in sys.argv[1:]:
            raise
        message, code = explain(exc, state)
        err_console.print(message, markup=False, highlight=False)
        sys.exit(code)


if __name__ == "__main__":
    main()
