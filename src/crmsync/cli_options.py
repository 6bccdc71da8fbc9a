"""What every ``crmsync`` command shares: option definitions and help texts, the consoles, the
settings/store access, JSON output and exit codes. Command modules import this (never ``cli.py``),
so the same thing has the same option name and help everywhere.

Exit codes (also in the README): 0 success; 1 a run, check or push failed; 2 usage or
configuration error; 3 the store is not ready (unreachable, or its schema needs
``crmsync db upgrade``); 128+N stopped by signal N (143 for SIGTERM, 130 for Ctrl-C).
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
from rich.console import Console

from crmsync.logging import LogFormat, configure_logging
from crmsync.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from crmsync.store import Store


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    STORE_NOT_READY = 3


console = Console()
err_console = Console(stderr=True)

# --- the shared options (one name, one help text) ------------------------------------------------
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Path to crmsync.yaml (default: $CRMSYNC_CONFIG or config/crmsync.yaml).")]
ConnectionOption = Annotated[str | None, typer.Option(
    "--connection", help="Only this connection (a name from the configuration).")]
ConnectionRequired = Annotated[str, typer.Option(
    "--connection", help="The connection (a name from the configuration).")]
ObjectOption = Annotated[str | None, typer.Option("--object", help="Only this object (deals, leads, ...).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts instead of tables.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; write nothing.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


class AppState:
    """The global options and the settings/store they lead to (one per process)."""

    def __init__(self) -> None:
        self.config_path: Path | None = None
        self.log_format: LogFormat = "auto"
        self.debug = False  # --debug: errors show their traceback
        self._settings: Settings | None = None

    def settings(self, config: Path | None = None) -> Settings:
        if config is not None:
            self.config_path, self._settings = config, None
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path)
            except SettingsError as exc:
                err_console.print(f"config error: {exc}", markup=False, highlight=False)
                raise typer.Exit(ExitCode.USAGE) from None
            configure_logging(self.log_format, secrets=self._settings.secret_values())
        return self._settings

    def store(self, config: Path | None = None) -> Store:
        from crmsync.store import Store

        return Store.open(self.settings(config).store.url)

    def read_store(self, config: Path | None = None) -> Store:
        """The store for a read-only command: never migrated here. A schema behind this crmsync
        (or an unreachable database) exits 3 saying what to do."""
        store = self.store(config)
        store.current_revision()  # unreachable or refused: one clear line from cli_errors, exit 3
        problem = store.schema_problem()
        if problem is not None:
            store.close()
            err_console.print(problem, markup=False, highlight=False)
            raise typer.Exit(ExitCode.STORE_NOT_READY)
        store.mark_interrupted_runs()  # runs a killed process left behind show as interrupted
        return store

    def write_store(self, config: Path | None = None) -> Store:
        """The store for a command that writes (sync, backfill, drain, ...): migrated first."""
        store = self.store(config)
        store.upgrade()
        store.mark_interrupted_runs()  # runs a killed process left behind show as interrupted
        return store


state = AppState()


def require_connection(settings: Settings, name: str | None) -> None:
    """A ``--connection`` value must name a configured connection."""
    if name is not None and name not in {c.name for c in settings.connections}:
        known = ", ".join(c.name for c in settings.connections) or "none"
        raise typer.BadParameter(f"no connection named {name!r} (configured: {known})", param_hint="--connection")


# --- JSON for scripts ------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise NotImplementedError(type(value).__name__)


# Decimals as strings: a script's JSON parser (jq, JavaScript) would turn a long number into a float
_JSON = msgspec.json.Encoder(decimal_format="string", enc_hook=_json_default)


def to_json(data: Any) -> str:
    return _JSON.encode(data).decode()


def print_json(data: Any) -> None:
    """One JSON document on stdout (no colour, no wrapping)."""
    typer.echo(to_json(data))


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def short_time(moment: dt.datetime | None) -> str:
    """A table cell: ``2026-12-03 08:13Z`` (UTC, to the minute; --json has the full timestamp)."""
    if moment is None:
        return "-"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%MZ")

