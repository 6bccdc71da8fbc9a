"""The sync state an operator may inspect and reset: per connection and object, the incremental
cursor and each backfill window's checkpoint (rows of ``sync_cursors``).

A stored entry is the engine's envelope ``{"connector": <the connector's own cursor>, "complete":
bool, "saved_at": iso}``; the connector cursor's format belongs to each connector. To tell whether
a new value moves an entry back in time, ``position_of`` takes the newest timestamp it finds
under the keys connectors use for their high-water marks (``ts``, ``updated_since``, ...), at any
depth. Every change is written to the run log (kind ``state``) with the value before and after.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from crmsync.model import ModelError, parse_timestamp
from crmsync.store import Store

_WINDOW = re.compile(r"^(?P<object>[^@]+)@backfill\[(?P<since>[^,\]]*),(?P<until>[^\]]*)\]$")
POSITION_KEYS = ("ts", "updated_since", "since", "watermark", "high_water", "modified_since")


@dataclass(frozen=True, slots=True)
class StateEntry:
    connection: str
    key: str  # as stored: ``deals`` or ``deals@backfill[<since>,<until>]``
    object_name: str
    kind: str  # "cursor" | "backfill"
    window: tuple[str | None, str | None] | None
    complete: bool
    position: dt.datetime | None
    updated_at: dt.datetime | None
    value: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"connection": self.connection, "key": self.key, "object": self.object_name, "kind": self.kind,
                "window": None if self.window is None else {"since": self.window[0], "until": self.window[1]},
                "complete": self.complete,
                "position": self.position.isoformat() if self.position else None,
                "updated_at": self.updated_at.isoformat(timespec="seconds") if self.updated_at else None}


def split_key(key: str) -> tuple[str, str, tuple[str | None, str | None] | None]:
    """``deals`` -> (deals, cursor, None); ``deals@backfill[a,b]`` -> (deals, backfill, (a, b)); ``-`` = open."""
    m = _WINDOW.match(key)
    if m is None:
        return key, "cursor", None
    since, until = m.group("since"), m.group("until")
    return m.group("object"), "backfill", (None if since == "-" else since, None if until == "-" else until)


def _as_moment(value: Any) -> dt.datetime | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):  # epoch seconds or milliseconds
        seconds = value / 1000 if value > 10_000_000_000 else value
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    if isinstance(value, str):
        try:
            return parse_timestamp(value)
        except ModelError:
            return None
    return None


def position_of(value: Any) -> dt.datetime | None:
    """The newest high-water timestamp anywhere in a cursor (None: it names no point in time)."""
    found: list[dt.datetime] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in POSITION_KEYS:
                    moment = _as_moment(v)
                    if moment is not None:
                        found.append(moment)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(value.get("connector", value) if isinstance(value, dict) else value)
    return max(found) if found else None


def entry(connection: str, key: str, value: dict[str, Any], updated_at: dt.datetime | None) -> StateEntry:
    object_name, kind, window = split_key(key)
    return StateEntry(connection, key, object_name, kind, window, bool(value.get("complete")),
                      position_of(value), updated_at, value)


def list_state(store: Store, connection: str | None = None) -> list[StateEntry]:
    return [entry(c.connection, c.object_name, c.cursor if isinstance(c.cursor, dict) else {}, c.updated_at)
            for c in store.cursors(connection)]


def get_state(store: Store, connection: str, key: str) -> StateEntry | None:
    return next((e for e in list_state(store, connection) if e.key == key), None)


def moves_back(before: StateEntry | None, value: dict[str, Any]) -> bool:
    """Would ``value`` put this entry at an older point (records would be read again)?"""
    if before is None:
        return False
    old, new = before.position, position_of(value)
    if old is None:
        return False
    return new is None or new < old


def _log(store: Store, connection: str, key: str, action: str, before: Any, after: Any) -> int:
    run_id = store.start_run("state", connection, key)
    store.finish_run(run_id, "ok", {"action": action, "before": before, "after": after})
    return run_id


def set_state(store: Store, connection: str, key: str, value: dict[str, Any]) -> int:
    """Write an entry (the full envelope, as ``get`` shows it); returns the run-log id."""
    before = get_state(store, connection, key)
    with store.transaction() as tx:
        tx.save_cursor(connection, key, value)
    return _log(store, connection, key, "set", before.value if before else None, value)


def clear_state(store: Store, connection: str, keys: list[str]) -> list[int]:
    """Delete entries (the next sync of a cleared cursor starts from the beginning)."""
    ids = []
    for key in keys:
        before = get_state(store, connection, key)
        if before is None:
            continue
        with store.transaction() as tx:
            tx.delete_cursor(connection, key)
        ids.append(_log(store, connection, key, "clear", before.value, None))
    return ids
