"""``crmsync state list | get | set | clear``: the cursors and backfill windows, per connection and object.

``clear`` always asks for confirmation, and so does ``set`` to an older point (both re-read
records); ``--yes`` answers for scripts. Every change is logged in the run log (kind ``state``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from crmsync.cli_options import (
    ConfigOption,
    ConnectionOption,
    ConnectionRequired,
    ExitCode,
    JsonOption,
    YesOption,
    console,
    err_console,
    print_json,
    require_connection,
    short_time,
    state,
)

state_app = typer.Typer(help="Sync state: cursors and backfill windows (list, get, set, clear).",
                        no_args_is_help=True)

KeyOption = Annotated[str, typer.Option(
    "--object", help="The object's entry as `state list` shows it: deals, or deals@backfill[SINCE,UNTIL].")]


@state_app.command("list")
def list_command(connection: ConnectionOption = None, config: ConfigOption = None,
                 as_json: JsonOption = False) -> None:
    """Every cursor and backfill window: position, complete, last saved."""
    from crmsync.sync.state import list_state

    settings = state.settings(config)
    require_connection(settings, connection)
    store = state.read_store()
    try:
        entries = list_state(store, connection)
    finally:
        store.close()
    if as_json:
        print_json({"entries": [e.to_dict() for e in entries]})
        return
    table = Table(title="sync state")
    for col in ("connection", "object", "kind", "window", "position", "done", "saved"):
        table.add_column(col, overflow="fold")
    for e in entries:
        window = "-" if e.window is None else f"{e.window[0] or '…'} → {e.window[1] or '…'}"
        table.add_row(e.connection, e.object_name, e.kind, window,
                      short_time(e.position), "yes" if e.complete else "no", short_time(e.updated_at))
    console.print(table)
    if not entries:
        console.print("no sync state yet")


def _missing(connection: str, key: str) -> typer.Exit:
    err_console.print(f"no state for {connection}/{key} (see `crmsync state list`)", markup=False, highlight=False)
    return typer.Exit(ExitCode.FAILED)


@state_app.command("get")
def get_command(connection: ConnectionRequired, key: KeyOption, config: ConfigOption = None) -> None:
    """One entry as JSON (the document `state set --value` takes back)."""
    from crmsync.sync.state import get_state

    settings = state.settings(config)
    require_connection(settings, connection)
    store = state.read_store()
    try:
        found = get_state(store, connection, key)
    finally:
        store.close()
    if found is None:
        raise _missing(connection, key)
    print_json(found.value)


def _read_value(value: str | None, value_file: Path | None) -> dict[str, Any]:
    if (value is None) == (value_file is None):
        raise typer.BadParameter("give --value JSON or --value-file PATH (one of them)")
    text = value if value is not None else value_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    where = "--value" if value is not None else str(value_file)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{where}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("connector", {}), dict):
        raise typer.BadParameter(f"{where}: expected an object like `state get` prints "
                                 '({"connector": {...}, "complete": false, ...})')
    return parsed


@state_app.command("set")
def set_command(
    connection: ConnectionRequired,
    key: KeyOption,
    value: Annotated[str | None, typer.Option("--value", help="The entry as JSON (as `state get` prints it).")] = None,
    value_file: Annotated[Path | None, typer.Option("--value-file", help="Read the JSON from this file.")] = None,
    yes: YesOption = False,
    config: ConfigOption = None,
) -> None:
    """Replace one entry; asks first when it moves the entry to an older point."""
    from crmsync.sync.state import get_state, moves_back, position_of, set_state

    settings = state.settings(config)
    require_connection(settings, connection)
    new = _read_value(value, value_file)
    store = state.write_store()
    try:
        before = get_state(store, connection, key)
        if moves_back(before, new) and not yes:
            assert before is not None and before.position is not None
            new_at = position_of(new)
            typer.confirm(f"{connection}/{key} moves back from {before.position.isoformat()} to "
                          f"{new_at.isoformat() if new_at else 'the beginning'}; records since then are read "
                          "again. Continue?", abort=True, err=True)
        run_id = set_state(store, connection, key, new)
    finally:
        store.close()
    console.print(f"{connection}/{key} set (run log #{run_id})", highlight=False)


@state_app.command("clear")
def clear_command(
    connection: ConnectionRequired,
    key: Annotated[str | None, typer.Option("--object", help="One entry (as `state list` shows it).")] = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Every entry of the connection.")] = False,
    yes: YesOption = False,
    config: ConfigOption = None,
) -> None:
    """Delete entries: the next sync of a cleared cursor reads everything again. Asks first."""
    from crmsync.sync.state import clear_state, list_state

    if (key is None) == (not all_entries):
        raise typer.BadParameter("give --object NAME or --all (one of them)")
    settings = state.settings(config)
    require_connection(settings, connection)
    store = state.write_store()
    try:
        keys = [e.key for e in list_state(store, connection) if all_entries or e.key == key]
        if not keys:
            raise _missing(connection, key or "*")
        if not yes:
            typer.confirm(f"clear {len(keys)} entr{'y' if len(keys) == 1 else 'ies'} of {connection} "
                          f"({', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})? The next sync reads "
                          "them from the beginning.", abort=True, err=True)
        ids = clear_state(store, connection, keys)
    finally:
        store.close()
    console.print(f"cleared {len(ids)} entr{'y' if len(ids) == 1 else 'ies'} of {connection} "
                  f"(run log {', '.join(f'#{i}' for i in ids)})", highlight=False)


