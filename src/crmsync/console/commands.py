"""``crmsync console``: serve the admin console; ``crmsync console add-user``: create an account."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console_app = typer.Typer(help="The admin console (web app): rules, decisions and operations.",
                          invoke_without_command=True, add_completion=False)
out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Path to crmsync.yaml.")]
StateDir = Annotated[Path, typer.Option("--state-dir", help="Where the console keeps the rules draft.")]
DEFAULT_STATE = Path(".crmsync/console")


def _store(config: Path | None):  # type: ignore[no-untyped-def]
    from crmsync.cli_options import state

    store = state.store(config)
    store.upgrade()
    return store


@console_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    config: ConfigOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0 = any free port).")] = 8470,
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """Serve the console until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    from crmsync.cli_options import state
    from crmsync.console.server import ConsoleServer

    settings = state.settings(config)
    store = _store(config)
    server = ConsoleServer(settings, store, host=host, port=port, state_dir=state_dir).start()
    out.print(f"crmsync console on {server.url}  (store {store.dialect}; Ctrl-C to stop)")
    if not _has_users(store):
        out.print("no console user yet: create one with `crmsync console add-user NAME --role admin`")
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        store.close()


def _has_users(store) -> bool:  # type: ignore[no-untyped-def]
    from crmsync.console.accounts import list_users

    return bool(list_users(store))


@console_app.command("add-user")
def add_user_command(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="admin (edit, publish) or viewer (read).")] = "viewer",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")]
        = False,
    generate: Annotated[bool, typer.Option("--generate", help="Generate a password and print it once.")] = False,
    config: ConfigOption = None,
) -> None:
    """Create a console account (the password is stored as an argon2 hash)."""
    from crmsync.console import audit
    from crmsync.console.accounts import AccountError, add_user

    if generate:
        password = secrets.token_urlsafe(12)
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    store = _store(config)
    try:
        user = add_user(store, username, password, role)
    except AccountError as exc:
        err.print(f"add-user: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    audit.record(store, "cli", "user.add", user.username, role=user.role)
    out.print(f"user {user.username} ({user.role}) created", markup=False)
    if generate:
        out.print(f"password (shown once): {password}", markup=False, highlight=False)
