"""Jobs besides the connection cycle: delete sweeps, the daily hygiene digest, billing sync.

The digest and the billing sync belong to the rules and billing parts; these are the scheduled shells.
"""

from __future__ import annotations

import threading
from typing import Any

from crmsync.connectors.base import ConnectorError
from crmsync.logging import get_logger
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.sync.engine import SweepRefused
from crmsync.sync.runner import open_engine

log = get_logger("crmsync.runtime.jobs")



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
            except SweepRefused as exc:
                out[object_name] = f"refused: {exc}"  # the worker goes on; an operator confirms by hand
            except (NotImplementedError, ConnectorError, ValueError) as exc:
                out[object_name] = f"skipped: {type(exc).__name__}"
    log.info("runtime.sweep", connection=connection, result=out)
    return out


def hygiene_digest(settings: Settings, store: Store) -> Any:
    from crmsync.decide.digest import run_digest

    return run_digest(settings, store)


def billing_sync(settings: Settings, store: Store) -> Any:
    from crmsync.billing.sync import run_billing_sync

    if not settings.billing.connection:
        return None
    return run_billing_sync(settings, store)
