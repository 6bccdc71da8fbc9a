"""Reading a page's stage histories from the CRM for the sync engine (see
``crmsync.connectors.stage_history``).

On by default for connectors that offer ``stage_histories``; ``options.stage_history: false``
turns it off (the stage events then come only from comparing pulls). A failed history read never
blocks the page: it is logged and the page is written with what the pull itself shows.
"""

from __future__ import annotations

from collections.abc import Sequence

from crmsync.connectors.base import BudgetExhausted, Connector, ConnectorError
from crmsync.connectors.stage_history import HistoryBatch, StageHistorySource, attach_extra
from crmsync.logging import get_logger
from crmsync.model import Deal, Record
from crmsync.settings import ConnectionSettings

log = get_logger(__name__)


def read_stage_histories(connector: Connector, conn: ConnectionSettings,
                         records: Sequence[Record]) -> HistoryBatch | None:
    """The CRM's history of the page's live deals (None: the connector reads none, or it is off)."""
    if not isinstance(connector, StageHistorySource) or not bool(conn.options.get("stage_history", True)):
        return None
    deals = [r for r in records if isinstance(r, Deal) and not r.deleted]
    if not deals:
        return None
    try:
        batch = connector.stage_histories(deals)
    except (BudgetExhausted, ConnectorError) as exc:
        log.warning("sync.stage_history_unread", deals=len(deals), error=f"{type(exc).__name__}: {exc}")
        return None
    attach_extra(deals, batch)
    return batch
