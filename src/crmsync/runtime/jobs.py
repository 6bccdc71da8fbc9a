"""Jobs besides the connection cycle: delete sweeps, the daily hygiene digest, billing sync.

The digest and billing sync belong to other parts (rules, billing); they are looked up by entry
point and skipped with a notice when that part is not installed in this build.
"""

from __future__ import annotations

import threading
from typing import Any

from crmsync.connectors.base import ConnectorError
from crmsync.logging import get_logger
from crmsync.runtime.pipeline import StepUnavailable, _notice_missing, resolve
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.sync.runner import open_engine

log = get_logger("crmsync.runtime.jobs")

DIGEST_CANDIDATES = ("crmsync.rules.digest:run_digest", "crmsync.rules.hygiene_digest:run_digest")
BILLING_CANDIDATES = ("crmsync.billing.sync:run_billing_sync", "crmsync.billing.runner:run_billing_sync")


def sweep_connection(settings: Settings, store: Store, connection: str, *,
                     stop_event: threading.Event | None = None) -> dict[str, int | str]:
    """Hard-delete reconciliation for each of the connection's objects the connector can list."""
    out: dict[str, int | str] = {}
    with open_engine(settings, store, connection, stop_event=stop_event) as engine:
        for object_name in engine.conn.objects:
            if stop_event is not None and stop_event.is_set():
                break
            try:
                out[object_name] = engine.sweep_deletes(object_name)
            except (NotImplementedError, ConnectorError, ValueError) as exc:
                out[object_name] = f"skipped: {type(exc).__name__}"
    log.info("runtime.sweep", connection=connection, result=out)
    return out


def _optional(name: str, candidates: tuple[str, ...], settings: Settings, store: Store) -> Any:
    try:
        entry = resolve(candidates)
    except StepUnavailable as exc:
        _notice_missing(name, str(exc))
        return None
    return entry(settings, store)


def hygiene_digest(settings: Settings, store: Store) -> Any:
    return _optional("hygiene_digest", DIGEST_CANDIDATES, settings, store)


def billing_sync(settings: Settings, store: Store) -> Any:
    if not settings.billing.connection:
        return None
    return _optional("billing_sync", BILLING_CANDIDATES, settings, store)
