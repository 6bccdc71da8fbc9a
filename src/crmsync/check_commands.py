"""``crmsync check [--connection NAME] [--json]``: the store and each connection, pass or fail.

Exit code 0 when every check passes, 1 when one fails. Read-only: it never migrates the store.
"""

from __future__ import annotations

from rich.table import Table

from crmsync.cli_options import (
    ConfigOption,
    ConnectionOption,
    ExitCode,
    JsonOption,
    console,
    print_json,
    require_connection,
    state,
)


def check_command(connection: ConnectionOption = None, config: ConfigOption = None,
                  as_json: JsonOption = False) -> None:
    """Is this installation ready? Store reachable and migrated; each connection logs in, answers
    one cheap call, its quota left and clock skew."""
    import typer

    from crmsync.check import run_checks

    settings = state.settings(config)
    require_connection(settings, connection)
    store = state.store()
    try:
        results = run_checks(settings, store, [connection] if connection else None)
    finally:
        store.close()
    ok = all(r.ok for r in results)
    if as_json:
        print_json({"ok": ok, "checks": [r.to_dict() for r in results]})
    else:
        table = Table(title="check")
        for col in ("target", "result", "quota left", "skew"):
            table.add_column(col, no_wrap=True)
        table.add_column("detail", overflow="fold", ratio=1)
        for r in results:
            quota = "-" if r.quota_remaining is None else f"{r.quota_remaining:,} {r.quota_unit}"
            skew = "-" if r.clock_skew_s is None else f"{r.clock_skew_s:+.0f}s"
            target = f"store ({r.target})" if r.check == "store" else r.target
            table.add_row(target, "[green]ok[/green]" if r.ok else "[red]FAIL[/red]", quota, skew,
                          r.detail)
        console.print(table)
    if not ok:
        raise typer.Exit(ExitCode.FAILED)
