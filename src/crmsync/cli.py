"""The ``crmsync`` command line: thin shells over library calls (typer + rich)."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crmsync.logging import LogFormat, configure_logging
from crmsync.model import UTC
from crmsync.settings import Settings, SettingsError, load_settings

app = typer.Typer(help="CRM sync and sales-automation worker.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
sandbox_app = typer.Typer(help="Local simulators of Salesforce, HubSpot, Pipedrive and Meteroid.",
                          no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Path to crmsync.yaml.")]


class AppState:
    def __init__(self) -> None:
        self.config_path: Path | None = None
        self.log_format: LogFormat = "auto"
        self.debug = False
        self._settings: Settings | None = None

    def settings(self, config: Path | None = None) -> Settings:
        if config is not None:
            self.config_path, self._settings = config, None
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path)
            except SettingsError as exc:
                err_console.print(f"config error: {exc}", markup=False, highlight=False)
                raise typer.Exit(2) from None
            configure_logging(self.log_format, secrets=self._settings.secret_values())
        return self._settings

    def store(self, config: Path | None = None) -> Any:
        from crmsync.store import Store

        return Store.open(self.settings(config).store.url)


state = AppState()


@app.callback()
def main_options(
    config: ConfigOption = None,
    log_format: Annotated[str, typer.Option("--log-format", help="auto | console | json")] = "auto",
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
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
def status(config: ConfigOption = None) -> None:
    """Connections, cursors, last runs, outbox and quarantine counts."""
    from crmsync.status import render_status

    settings = state.settings(config)
    store = state.store()
    store.upgrade()
    store.mark_interrupted_runs()
    render_status(console, settings, store)


# --- sync / backfill ----------------------------------------------------------------------------
def _parse_date(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO timestamp)", param_hint=name) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _install_stop_handler() -> threading.Event:
    """SIGTERM/SIGINT: finish the current page, checkpoint, exit."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err_console.print("stopping after the current page (checkpoint is kept)...")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    return stop


@app.command("sync")
def sync_command(
    connection: Annotated[str | None, typer.Option(help="Only this connection.")] = None,
    config: ConfigOption = None,
) -> None:
    """One incremental sync cycle (all connections, or one)."""
    from crmsync.sync.runner import run_sync_cycles

    settings = state.settings(config)
    if connection:
        settings.connection(connection)  # an unknown name is a config error, before any work
    store = state.store()
    store.upgrade()
    store.mark_interrupted_runs()
    stop = _install_stop_handler()
    names = [connection] if connection else [c.name for c in settings.connections
                                             if c.enabled and c.kind != "meteroid"]
    table = Table(title="sync")
    for col in ("connection", "object", "status", "records", "deleted", "quarantined", "api calls"):
        table.add_column(col)
    results = run_sync_cycles(settings, store, names, stop_event=stop)
    for result in results:
        table.add_row(result.connection, result.object_name, result.status, str(result.records),
                      str(result.deleted), str(result.quarantined), str(result.api_calls))
    console.print(table)
    failures = [r for r in results if r.status == "failed"]
    for result in failures:
        err_console.print(f"{result.connection}/{result.object_name}: {result.error}", markup=False,
                          highlight=False)
    if failures:
        raise typer.Exit(1)


@app.command("backfill")
def backfill_command(
    connection: Annotated[str, typer.Option(help="The connection to backfill.")],
    object_name: Annotated[str, typer.Option("--object", help="Object to backfill.")] = "deals",
    since: Annotated[str | None, typer.Option(help="Only records modified on or after (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Only records modified before (YYYY-MM-DD).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Pull and count, write nothing.")] = False,
    config: ConfigOption = None,
) -> None:
    """Backfill one object; resumes automatically after a crash or kill."""
    from crmsync.sync.runner import run_backfill

    settings = state.settings(config)
    store = state.store()
    store.upgrade()
    store.mark_interrupted_runs()
    stop = _install_stop_handler()
    result = run_backfill(settings, store, connection, object_name, since=_parse_date(since, "--since"),
                          until=_parse_date(until, "--until"), dry_run=dry_run, stop_event=stop,
                          console=console)
    unaccounted = result.unaccounted
    if result.complete is None:
        verdict = "not checked"
    elif result.complete:
        verdict = "[green]complete[/green]"
    elif not unaccounted:
        verdict = f"[yellow]complete with {result.quarantined_open} quarantined[/yellow] (crmsync status lists them)"
    else:
        verdict = (f"[red]INCOMPLETE[/red]: {unaccounted} unaccounted for"
                   f" ({result.quarantined_open or 0} quarantined)")
    console.print(f"{result.connection}/{result.object_name}: {result.status}, {result.records} records, "
                  f"{result.api_calls} API calls; source {result.source_count} vs stored {result.stored_count}: "
                  f"{verdict}")
    if result.status == "failed":
        err_console.print(result.error or "failed", markup=False, highlight=False, style="red")
        raise typer.Exit(1)
    if unaccounted:
        raise typer.Exit(1)


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
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    handle.stop()


@app.command("demo")
def demo_command(
    deals: Annotated[int, typer.Option(help="Deals per CRM in the sandbox world.")] = 2000,
    seed: Annotated[int, typer.Option(help="World seed.")] = 7,
    store_url: Annotated[str, typer.Option(help="Store URL for the demo.")] = "sqlite:///crmsync-demo.db",
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its CA and config.")] = Path(".crmsync/demo"),
) -> None:
    """Start the sandbox in-process, sync every CRM into a local store, run the rules, show it."""
    from crmsync.demo import run_demo

    code = run_demo(console, deals=deals, seed=seed, store_url=store_url, workdir=workdir)
    raise typer.Exit(code)


@app.command("sweep")
def sweep_command(
    connection: Annotated[str, typer.Option(help="The connection to reconcile.")],
    object_name: Annotated[str | None, typer.Option("--object", help="Only this object.")] = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="Mark them deleted even above "
                                          "schedule.delete_sweep_max_share.")] = False,
    config: ConfigOption = None,
) -> None:
    """Hard-delete reconciliation: records the CRM no longer lists are marked deleted in the store."""
    from crmsync.connectors.base import ConnectorError
    from crmsync.sync.engine import SweepRefused
    from crmsync.sync.runner import open_engine

    settings = state.settings(config)
    store = state.store()
    store.upgrade()
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


_mount_optional("crmsync.rules.commands", "rules_app", "rules")
_mount_optional("crmsync.billing.commands", "billing_app", "billing")
_mount_optional("crmsync.sync.outbox_commands", "outbox_app", "outbox")
_mount_optional("crmsync.runtime.commands", "worker_app", "worker")
_mount_optional("crmsync.report", "report_app", "report")
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
