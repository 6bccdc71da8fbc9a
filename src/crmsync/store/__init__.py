"""crmsync.store: persistence for canonical records and the worker's operational state.

SQLite (embedded default, WAL) or PostgreSQL (psycopg 3). See ``repository.Store`` for the API,
``upsert`` for the conflict policy and ``types`` for how timestamps, decimals and JSON are stored.
"""

from __future__ import annotations

from crmsync.store.engine import StoreError, create_store_engine
from crmsync.store.repository import (
    CursorInfo,
    Decision,
    Link,
    OutboxItem,
    OutboxOperation,
    OutboxStatus,
    QuarantineEntry,
    RuleSetInfo,
    RunInfo,
    RunKind,
    RunStatus,
    Store,
    Transaction,
)
from crmsync.store.tables import metadata
from crmsync.store.upsert import content_hash

__all__ = [
    "CursorInfo",
    "Decision",
    "Link",
    "OutboxItem",
    "OutboxOperation",
    "OutboxStatus",
    "QuarantineEntry",
    "RuleSetInfo",
    "RunInfo",
    "RunKind",
    "RunStatus",
    "Store",
    "StoreError",
    "Transaction",
    "content_hash",
    "create_store_engine",
    "metadata",
]
