"""crmsync.store: persistence for canonical records and the worker's operational state.

SQLite (embedded default: file, WAL, ``synchronous=NORMAL``, busy timeout, ``BEGIN IMMEDIATE`` for
write transactions) or PostgreSQL (``postgresql+psycopg://``, sessions in UTC).

Contracts worth knowing (details in the modules named):

* **Upsert policy** (``upsert``): key ``(connection, source_id)`` per kind table; the last write by
  ``modified_at`` wins, equal timestamps still update (a re-pull is idempotent), older rows are
  ignored; duplicates inside one call collapse to the newest. ``tx.upsert`` returns rows written.
* **content_hash** (``upsert``): hash of a kind's own (mapped) fields, leaving out ``modified_at``,
  ``created_at``, ``deleted`` and ``extra``, so echoes of our own writes can be recognised.
* **Types** (``types``): timestamps must be timezone-aware and come back UTC (naive ones raise
  ``ModelError``); decimals are exact (PostgreSQL ``NUMERIC`` unconstrained, SQLite decimal text);
  JSON columns (``extra``, cursors, outbox fields, decisions, state) store Decimal as a string and
  datetime/date as ISO 8601 strings, so those come back as strings.
* **Outbox** (``outbox``): every SQL statement of the push path (rows, claim, the drain lease and
  pause, echo memory, re-run markers, mirror links); the drain's policy is ``crmsync.sync.outbox``.
* **Visibility**: ``Store`` read methods use their own connection; inside a ``transaction()`` read
  your own uncommitted writes through the ``Transaction`` (``tx.get``, ``tx.load_cursor``,
  ``tx.get_state``, ``tx.content_hashes``).
"""

from __future__ import annotations

from crmsync.store.engine import StoreError, create_store_engine
from crmsync.store.outbox import Link, OutboxItem, OutboxOperation, OutboxStatus
from crmsync.store.repository import (
    CursorInfo,
    Decision,
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
