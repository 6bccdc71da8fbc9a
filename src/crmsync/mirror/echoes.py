"""Loop prevention: is a pulled record just crmsync's own write coming back?

After a successful write the drain (``crmsync.sync.outbox``) remembers what the record should look
like (``crmsync.store.outbox.remember_writes``: the stored record's content hash with the written
fields applied, or, for records not stored yet, the written values). ``is_echo`` and
``filter_echoes`` compare pulled records with that memory, so the rules and the mirrors do not
decide again on crmsync's own changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from crmsync.mirror.canonical import BOOKKEEPING_FIELDS, field_kinds, record_value, same_value
from crmsync.model import Record
from crmsync.store import Store, content_hash
from crmsync.store import outbox as store_outbox

R = TypeVar("R", bound=Record)


def is_echo(store: Store, record: Record) -> bool:
    """True when ``record`` is exactly what crmsync's own last write to it should look like."""
    key = store_outbox.write_key(record.connection, record.object_type, record.source_id)
    with store.engine.connect() as db:
        entry = store_outbox.remembered_writes(db, [key]).get(key)
    return matches(entry, record)


def filter_echoes(store: Store, records: Sequence[R]) -> list[R]:
    """``records`` without crmsync's own writes coming back (what the rules should look at)."""
    if not records:
        return []
    keys = [store_outbox.write_key(r.connection, r.object_type, r.source_id) for r in records]
    with store.engine.connect() as db:
        entries = store_outbox.remembered_writes(db, keys)
    return [r for r, k in zip(records, keys, strict=True) if not matches(entries.get(k), r)]


def matches(entry: Any, record: Record) -> bool:
    """Does ``record`` look like the remembered write ``entry`` (None: nothing remembered)?"""
    if not isinstance(entry, dict):
        return False
    if entry.get("hash"):
        return bool(content_hash(record) == entry["hash"])
    kinds = field_kinds(record.object_type)
    fields = entry.get("fields") or {}
    if not fields:
        return False
    for name, value in fields.items():
        if name in BOOKKEEPING_FIELDS:
            continue
        if not same_value(kinds.get(name, "str"), value, record_value(record, name)):
            return False
    return True
