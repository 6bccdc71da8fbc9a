"""What ``crmsync demo`` leaves for the console: a demo admin account and how to open it."""

from __future__ import annotations

import secrets
from pathlib import Path

from rich.console import Console

from crmsync.console import audit
from crmsync.console.accounts import AccountError, add_user, set_password
from crmsync.store import Store

DEMO_ADMIN = "demo-admin"
DEFAULT_PORT = 8470


def announce(console: Console, store: Store, config_path: Path, *, port: int = DEFAULT_PORT) -> str:
    """Create (or reset) the demo admin with a fresh random password and print it, once."""
    password = secrets.token_urlsafe(12)
    try:
        add_user(store, DEMO_ADMIN, password, "admin")
    except AccountError:
        set_password(store, DEMO_ADMIN, password)
    audit.record(store, "demo", "user.add", DEMO_ADMIN, role="admin")
    url = f"http://127.0.0.1:{port}"
    console.rule("admin console")
    console.print(f"start it with:  crmsync console --config {config_path} --port {port}", markup=False)
    console.print(f"then open {url} and sign in as {DEMO_ADMIN} with password {password}", markup=False,
                  highlight=False)
    console.print("(the password is shown only now; `crmsync console add-user` makes more accounts)")
    return url
