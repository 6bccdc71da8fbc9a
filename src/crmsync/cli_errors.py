"""What the command line says when a command fails: one line a person can act on.

A mistake in the configuration names the file, line and key (``SettingsError``); a store that
cannot be reached names the store setting and the (password-masked) URL; anything else is the
error's kind and a bounded message without customer data, with a pointer to ``--debug``.
"""

from __future__ import annotations

from typing import Any

from crmsync.errors import bound, describe_error
from crmsync.settings import SettingsError

EXIT_CONFIG = 2  # the configuration (or the environment it names) needs fixing
EXIT_FAILED = 1
EXIT_STORE_NOT_READY = 3  # the store is unreachable, refuses us, or needs `crmsync db upgrade`


def _store_url(state: Any) -> str:
    try:
        settings = state._settings  # only what was loaded: never load again here
        url = settings.store.url if settings is not None else None
    except AttributeError:
        url = None
    if not url:
        return "the store"
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL that does not parse was refused at load already
        return "the store"


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return bound(str(orig).strip().split("\n", 1)[0], 300)


def explain(exc: BaseException, state: Any) -> tuple[str, int]:
    from sqlalchemy.exc import OperationalError

    from crmsync.store.engine import StoreError

    if isinstance(exc, SettingsError):
        return f"config error: {exc}", EXIT_CONFIG
    if isinstance(exc, OperationalError):
        reason = _first_line(exc)
        if "password authentication failed" in reason:
            hint = "check the user and password in store.url (or CRMSYNC__STORE__URL)"
        elif "does not exist" in reason:
            hint = "create the database, or fix the name in store.url"
        else:
            hint = "is the database running and store.url (or CRMSYNC__STORE__URL) right?"
        return f"store error: cannot use {_store_url(state)}: {reason} ({hint})", EXIT_STORE_NOT_READY
    if isinstance(exc, StoreError):
        return f"store error: {bound(str(exc), 300)}", EXIT_CONFIG
    return f"error: {describe_error(exc)} (run with --debug for the traceback)", EXIT_FAILED
