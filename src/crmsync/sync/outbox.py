"""The outbox drain: every write crmsync decided, pushed once, in the CRM's batch size.

``drain(store, connector, conn)`` works one connection's queue:

1. It takes the connection's drain lease (``kv_state``), so one process drains a connection at a
   time; a lease whose holder died (same host, pid gone) or expired is taken over. Holding the
   lease means every ``in_flight`` row of the connection was left by a killed drain: those rows
   are claimed again first (re-pushing is safe: creates are upserts by crmsync key, updates are
   conditional on the record not having changed).
2. It claims a batch (one object and operation, oldest first, at most one item per target record)
   and commits ``in_flight`` with ``attempts + 1`` BEFORE calling the CRM, so a kill anywhere is
   recoverable.
3. ``connector.push`` answers per item and the answers are booked in one transaction: ``done``
   (with the created id, the mirror link and the echo memory), ``parked`` on a conflict (a human
   changed the record since the decision; a re-run marker asks the rules to decide again on the
   new data), back to ``pending`` with exponential backoff when retriable (``failed`` after
   ``max_attempts``), ``failed`` with the error kept when refused. A failed row stays until someone
   acts (``crmsync outbox retry|drop``).

Field ownership: when ``conn.writable_fields[object]`` is configured, a write touching any other
field is refused (``failed``, the error names the field) without calling the CRM.

Loop prevention: after a successful write the expected content of the record (the stored record
with the written fields applied) is remembered. ``is_echo``/``filter_echoes`` tell the rules and
mirror layers that a pulled record is just crmsync's own write coming back (``crmsync.mirror.echoes``).

Every SQL statement of all this (rows, claim, lease, pause, echo memory, re-run markers, mirror
links) is in ``crmsync.store.outbox``; this module holds the policy.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from crmsync.connectors.base import (
    AuthError,
    BudgetExhausted,
    ConnectorError,
    FatalError,
    PushItem,
    PushResult,
    PushTarget,
    RetriableError,
)
from crmsync.logging import get_logger
from crmsync.mirror.canonical import (
    BOOKKEEPING_FIELDS,
    apply_fields,
    coerce_fields,
    jsonable,
    object_type_of,
)
from crmsync.mirror.echoes import filter_echoes, is_echo
from crmsync.mirror.keys import parse_mirror_key
from crmsync.model import ObjectType, Record, now_utc, parse_timestamp
from crmsync.settings import ConnectionSettings
from crmsync.store import OutboxItem, OutboxStatus, Store, Transaction, content_hash
from crmsync.store import outbox as store_outbox
from crmsync.store.outbox import LEASE_NS, PAUSE_NS, RERUN_NS, WRITES_NS, Rerun
from crmsync.sync.budget import ApiBudget

log = get_logger("crmsync.outbox")
R = TypeVar("R", bound=Record)

#: env var: SIGKILL this process right after ``connector.push`` returns, before any bookkeeping
#: (the crash test of the push path; never set in production)
KILL_ENV = "CRMSYNC_TEST_KILL_AFTER_PUSH"

__all__ = [
    "BATCH_SIZES", "BOOKKEEPING_FIELDS", "KILL_ENV", "LEASE_NS", "PAUSE_NS", "RERUN_NS", "WRITES_NS",
    "DrainResult", "Rerun", "act", "backoff_seconds", "clear_rerun", "drain", "drop", "filter_echoes",
    "forget_writes", "get_item", "is_echo", "pending_reruns", "recent_errors", "refused_fields", "retry",
    "retry_failed",
]

#: records per push call (``drain(batch_size=)`` overrides)
BATCH_SIZES = {"salesforce": 200, "hubspot": 100, "pipedrive": 50, "meteroid": 50}
DEFAULT_MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 900.0


@dataclass
class DrainResult:
    connection: str
    status: str = "ok"  # ok | stopped | paused | busy | failed
    claimed: int = 0
    recovered: int = 0  # in_flight rows left by a killed drain, pushed again
    done: int = 0
    created: int = 0
    conflicts: int = 0
    retried: int = 0
    failed: int = 0
    refused: int = 0  # failed by field ownership, never sent
    batches: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    error: str | None = None
    errors: list[str] = field(default_factory=list)  # a sample of per-item errors

    def counts(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("claimed", "recovered", "done", "created", "conflicts", "retried",
                                               "failed", "refused", "batches", "api_calls")}


# --- public API -------------------------------------------------------------------------------
def drain(store: Store, connector: PushTarget, conn: ConnectionSettings, *, limit: int | None = None,
          stop_event: threading.Event | None = None, batch_size: int | None = None,
          max_attempts: int = DEFAULT_MAX_ATTEMPTS, lease_seconds: float = 300.0,
          backoff_base_s: float = BACKOFF_BASE_S) -> DrainResult:
    """Push the connection's pending outbox items; see the module docstring. A retriable failure
    waits ``backoff_base_s * 4**(attempts-1)`` seconds (capped at 15 min) before the next try."""
    started = time.perf_counter()
    result = DrainResult(conn.name)
    owner = _owner()
    if not _acquire_lease(store, conn.name, owner, lease_seconds):
        result.status = "busy"
        result.error = "another process is draining this connection"
        return result
    try:
        paused = _paused_until(store, conn.name)
        if paused is not None and paused > now_utc():
            result.status = "paused"
            result.error = f"rate limited; paused until {paused.isoformat(timespec='seconds')}"
            return result
        size = batch_size or BATCH_SIZES.get(conn.kind, 50)
        budget = ApiBudget(store, conn, clock=now_utc)
        retried_ids: set[int] = set()
        while limit is None or result.claimed < limit:
            if stop_event is not None and stop_event.is_set():
                result.status = "stopped"
                break
            want = size if limit is None else min(size, limit - result.claimed)
            items, recovered = _claim(store, conn.name, want, owner, lease_seconds, retried_ids, backoff_base_s)
            if not items:
                break
            result.claimed += len(items)
            result.recovered += recovered
            if not _push_batch(store, connector, conn, items, result, budget, max_attempts, retried_ids):
                break
    finally:
        _release_lease(store, conn.name, owner)
        result.seconds = time.perf_counter() - started
        log.info("outbox.drained", connection=conn.name, status=result.status, **result.counts())
    return result


def pending_reruns(store: Store, connection: str | None = None) -> list[Rerun]:
    with store.engine.connect() as db:
        return store_outbox.pending_reruns(db, connection)


def clear_rerun(store: Store, connection: str, object_type: ObjectType | str, source_id: str) -> bool:
    with store.transaction() as tx:
        return store_outbox.clear_rerun(tx.conn, connection, object_type, source_id)


def retry(store: Store, item_id: int) -> bool:
    """A failed/parked item back to pending, due now (attempts reset; the last error is kept)."""
    return act(store, item_id, "retry")[1] is None


def retry_failed(store: Store, connection: str | None = None) -> int:
    with store.transaction() as tx:
        return store_outbox.reset(tx.conn, to=OutboxStatus.PENDING, only=(OutboxStatus.FAILED,), connection=connection,
                          reset_attempts=True)


def drop(store: Store, item_id: int) -> bool:
    """Give up on an item that is not in flight (kept as ``dropped`` for the record)."""
    return act(store, item_id, "drop")[1] is None


#: what an operator may do to one item: (new status, statuses it may come from, statuses it may
#: not come from, attempts reset, why not)
_ACTIONS: dict[str, tuple[OutboxStatus, tuple[OutboxStatus, ...], tuple[OutboxStatus, ...], bool, str]] = {
    "retry": (OutboxStatus.PENDING, (OutboxStatus.FAILED, OutboxStatus.PARKED), (), True,
              "only failed or parked items can be retried"),
    "drop": (OutboxStatus.DROPPED, (), (OutboxStatus.IN_FLIGHT, OutboxStatus.DONE), False, "it cannot be dropped"),
}


def act(store: Store, item_id: int, action: str) -> tuple[OutboxItem | None, str | None]:
    """``outbox retry`` / ``drop`` of one item (the CLI and the console both come here): the item
    as it was, and None when done, else why not (no such item, or its status does not allow it)."""
    to, only, never, reset_attempts, why_not = _ACTIONS[action]
    with store.transaction() as tx:
        item = store_outbox.get_item(tx.conn, item_id)
        if item is None:
            return None, f"no outbox item {item_id}"
        changed = store_outbox.reset(tx.conn, to=to, item_id=item_id, only=only, never=never,
                                     reset_attempts=reset_attempts)
    if changed != 1:
        return item, f"outbox item {item_id} is {item.status}; {why_not}"
    return item, None


def get_item(store: Store, item_id: int) -> OutboxItem | None:
    with store.engine.connect() as db:
        return store_outbox.get_item(db, item_id)


def refused_fields(conn: ConnectionSettings, item: OutboxItem, native_names: dict[str, str] | None = None) -> list[str]:
    """Fields of ``item`` outside ``conn.writable_fields[object]`` (empty when not configured).
    A canonical field is allowed when it, or its native name (``native_names``), is listed."""
    allowed = conn.writable_fields.get(item.object_name)
    if allowed is None or item.operation == "delete":
        return []
    allowed_set = set(allowed)
    native_names = native_names or {}
    bad = []
    for name in item.fields:
        bare = name[6:] if name.startswith("extra.") else name
        if name in BOOKKEEPING_FIELDS or name in allowed_set or bare in allowed_set:
            continue
        if native_names.get(name) in allowed_set:
            continue
        bad.append(name)
    return bad


# --- lease ------------------------------------------------------------------------------------
_PROCESS_TOKEN = uuid.uuid4().hex[:8]


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": _PROCESS_TOKEN,
            "thread": threading.get_ident()}


def _same_owner(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("host", "pid", "token", "thread"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lease_free(holder: Any, owner: dict[str, Any], now: dt.datetime) -> bool:
    if not isinstance(holder, dict) or _same_owner(holder, owner):
        return True
    expires = parse_timestamp(holder.get("expires"))
    if expires is None or expires <= now:
        return True
    if holder.get("host") == owner["host"] and holder.get("pid") != owner["pid"]:
        return not _pid_alive(int(holder.get("pid", 0)))
    return False


def _lease_value(owner: dict[str, Any], lease_seconds: float) -> dict[str, Any]:
    return {**owner, "expires": (now_utc() + dt.timedelta(seconds=lease_seconds)).isoformat()}


def _acquire_lease(store: Store, connection: str, owner: dict[str, Any], lease_seconds: float) -> bool:
    now = now_utc()
    with store.transaction() as tx:
        return store_outbox.acquire_lease(tx.conn, connection, _lease_value(owner, lease_seconds),
                                  lambda holder: _lease_free(holder, owner, now))


def _release_lease(store: Store, connection: str, owner: dict[str, Any]) -> None:
    with store.transaction() as tx:
        store_outbox.release_lease(tx.conn, connection, lambda holder: isinstance(holder, dict) and _same_owner(holder, owner))


def _paused_until(store: Store, connection: str) -> dt.datetime | None:
    with store.engine.connect() as db:
        return store_outbox.paused_until(db, connection)


# --- claim ------------------------------------------------------------------------------------
def backoff_seconds(attempts: int, base: float = BACKOFF_BASE_S) -> float:
    """Wait before attempt ``attempts + 1`` after a retriable failure: 5 s, 20 s, 80 s, ... 15 min."""
    if attempts <= 0:
        return 0.0
    return float(min(BACKOFF_CAP_S, base * 4 ** (attempts - 1)))


def _claim(store: Store, connection: str, want: int, owner: dict[str, Any], lease_seconds: float,
           exclude: set[int], backoff_base_s: float = BACKOFF_BASE_S) -> tuple[list[OutboxItem], int]:
    """Orphaned in_flight rows first, then due pending rows (``store_outbox.claim``), committed as
    in_flight with attempts + 1, and the lease renewed in the same transaction."""
    now = now_utc()
    with store.transaction() as tx:
        due = store_outbox.due(now, lambda n: backoff_seconds(n, backoff_base_s), BACKOFF_CAP_S)
        items, recovered = store_outbox.claim(tx.conn, connection, want, due_clause=due, exclude=exclude, now=now)
        if items:
            store_outbox.write_lease(tx.conn, connection, _lease_value(owner, lease_seconds))
    return items, recovered


# --- push and bookkeeping ---------------------------------------------------------------------
def _native_names(connector: PushTarget, object_name: str) -> dict[str, str]:
    """canonical field -> native field, from the connector's field table, so ``writable_fields``
    may list either."""
    mapping = connector.mappings.get(object_name)
    fields = mapping.fields if mapping is not None else ()
    return {f.target: f.source for f in fields if isinstance(f.source, str)}


def _push_items(items: Sequence[OutboxItem]) -> list[PushItem]:
    out = []
    for item in items:
        # the crmsync key travels as the idempotency key; each connector stores it its own way
        # (Salesforce external id, HubSpot property, Pipedrive custom field or note marker)
        fields = {k: v for k, v in item.fields.items()
                  if not (k in BOOKKEEPING_FIELDS and v == item.idempotency_key)}
        out.append(PushItem(
            object_name=item.object_name,
            operation=item.operation,
            fields=coerce_fields(object_type_of(item.object_name), fields),
            source_id=item.source_id,
            idempotency_key=item.idempotency_key,
            based_on_modified_at=item.based_on_modified_at,
            ref=item.id,
        ))
    return out


def _push_batch(store: Store, connector: PushTarget, conn: ConnectionSettings, items: list[OutboxItem],
                result: DrainResult, budget: ApiBudget, max_attempts: int, retried_ids: set[int]) -> bool:
    """Push one claimed batch and book the answers; False stops the drain."""
    native = _native_names(connector, items[0].object_name)
    refusals: dict[int, str] = {}
    for item in items:
        bad = refused_fields(conn, item, native)
        if bad:
            refusals[_id(item)] = (f"refused: field(s) {', '.join(bad)} not writable on {conn.name}/{item.object_name} "
                                   f"(writable_fields: {', '.join(conn.writable_fields[item.object_name]) or 'none'})")
    sendable = [i for i in items if _id(i) not in refusals]
    results: dict[int, PushResult] = {}
    stop_error: ConnectorError | None = None
    calls_before = connector.usage.calls
    if sendable:
        result.batches += 1
        try:
            answers = connector.push(_push_items(sendable))
        except ConnectorError as exc:
            stop_error = exc
            answers = []
        except Exception:
            _requeue(store, sendable, "crashed: unexpected error in connector.push", restore_attempts=False)
            raise
        if os.environ.get(KILL_ENV) == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        results = _match_results(sendable, answers)
    calls = max(0, connector.usage.calls - calls_before)
    result.api_calls += calls
    if stop_error is not None:
        return _book_batch_error(store, conn, sendable, refusals, stop_error, result, max_attempts, budget, calls)
    _book(store, conn, items, refusals, results, result, max_attempts, retried_ids, budget, calls)
    return True


def _id(item: OutboxItem) -> int:
    assert item.id is not None
    return item.id


def _match_results(items: Sequence[OutboxItem], answers: Sequence[PushResult]) -> dict[int, PushResult]:
    by_ref = {a.ref: a for a in answers if a.ref is not None}
    out: dict[int, PushResult] = {}
    for index, item in enumerate(items):
        answer = by_ref.get(_id(item))
        if answer is None and not by_ref and index < len(answers):
            answer = answers[index]  # a connector that answers in order without refs
        if answer is None:
            answer = PushResult(ref=item.id, ok=False, retriable=True, error="no answer from the connector")
        out[_id(item)] = answer
    return out


def _requeue(store: Store, items: Sequence[OutboxItem], error: str, *, restore_attempts: bool) -> None:
    with store.transaction() as tx:
        for item in items:
            tx.update_outbox(_id(item), OutboxStatus.PENDING.value, last_error=error,
                             attempts=item.attempts - 1 if restore_attempts else item.attempts)


def _book_batch_error(store: Store, conn: ConnectionSettings, items: list[OutboxItem], refusals: dict[int, str],
                      exc: ConnectorError, result: DrainResult, max_attempts: int, budget: ApiBudget,
                      calls: int) -> bool:
    """The whole call failed: decide for the batch and whether the drain goes on."""
    message = f"{type(exc).__name__}: {exc}"
    with store.transaction() as tx:
        _book_refusals(tx, refusals, result)
        budget.charge(tx, calls)
        if isinstance(exc, BudgetExhausted | AuthError):
            for item in items:  # not the items' fault: the attempt does not count
                tx.update_outbox(_id(item), OutboxStatus.PENDING.value, attempts=item.attempts - 1,
                                 last_error=message)
            result.status = "stopped" if isinstance(exc, BudgetExhausted) else "failed"
            result.error = message
            return False
        if isinstance(exc, RetriableError):
            for item in items:
                _book_retriable(tx, item, message, result, max_attempts)
            pause = exc.retry_after if exc.retry_after is not None else backoff_seconds(1)
            until = now_utc() + dt.timedelta(seconds=pause)
            store_outbox.pause(tx.conn, conn.name, until, message)
            result.status = "paused"
            result.error = message
            return False
        assert isinstance(exc, (FatalError, ConnectorError))
        for item in items:
            tx.update_outbox(_id(item), OutboxStatus.FAILED.value, last_error=message)
            result.failed += 1
        _note_error(result, message)
        return True


def _book_refusals(tx: Transaction, refusals: dict[int, str], result: DrainResult) -> None:
    for item_id, message in refusals.items():
        tx.update_outbox(item_id, OutboxStatus.FAILED.value, last_error=message)
        result.refused += 1
        result.failed += 1
        _note_error(result, message)


def _book_retriable(tx: Transaction, item: OutboxItem, message: str, result: DrainResult, max_attempts: int) -> None:
    if item.attempts >= max_attempts:
        tx.update_outbox(_id(item), OutboxStatus.FAILED.value,
                         last_error=f"gave up after {item.attempts} attempts: {message}")
        result.failed += 1
        _note_error(result, message)
    else:
        tx.update_outbox(_id(item), OutboxStatus.PENDING.value, last_error=message)
        result.retried += 1


def _book(store: Store, conn: ConnectionSettings, items: list[OutboxItem], refusals: dict[int, str],
          results: dict[int, PushResult], result: DrainResult, max_attempts: int, retried_ids: set[int],
          budget: ApiBudget, calls: int) -> None:
    now = now_utc()
    with store.transaction() as tx:
        _book_refusals(tx, refusals, result)
        budget.charge(tx, calls)
        done: list[tuple[OutboxItem, str | None]] = []
        for item in items:
            answer = results.get(_id(item))
            if answer is None:
                continue
            if answer.ok:
                done.append((item, answer.source_id or item.source_id))
                result.done += 1
                result.created += int(answer.created)
            elif answer.conflict:
                reason = answer.error or "the record changed since the decision"
                tx.update_outbox(_id(item), OutboxStatus.PARKED.value, last_error=f"conflict: {reason}")
                result.conflicts += 1
                ot = object_type_of(item.object_name)
                if item.source_id:
                    store_outbox.mark_rerun(tx.conn, conn.name, ot or item.object_name, item.source_id,
                                    outbox_id=item.id, at=now, reason=reason, idempotency_key=item.idempotency_key)
            elif answer.retriable:
                _book_retriable(tx, item, answer.error or "retriable error", result, max_attempts)
                retried_ids.add(_id(item))
            else:
                message = answer.error or "refused by the CRM"
                tx.update_outbox(_id(item), OutboxStatus.FAILED.value, last_error=message)
                result.failed += 1
                _note_error(result, message)
        if done:
            store_outbox.mark_done(tx.conn, [(_id(item), rid) for item, rid in done], now)
            _remember_writes(tx, conn.name, [(i, r) for i, r in done if r], now)
            for item, rid in done:
                if rid and item.operation in ("create", "upsert"):
                    _link_mirror(tx, conn.name, item, rid)


def _note_error(result: DrainResult, message: str) -> None:
    if len(result.errors) < 20:
        result.errors.append(message)


# --- echo memory and links --------------------------------------------------------------------
def _remember_writes(tx: Transaction, connection: str, done: Sequence[tuple[OutboxItem, str]],
                     now: dt.datetime) -> None:
    """Echo memory for a batch of successful writes: the content hash the record should have when
    the next pull brings it back (stored record + written fields), or, for records not stored yet
    (creates), the written values themselves. One read and one upsert per batch."""
    by_type: dict[ObjectType, list[tuple[OutboxItem, str]]] = {}
    for item, record_id in done:
        object_type = object_type_of(item.object_name)
        if object_type is not None and item.operation != "delete":
            by_type.setdefault(object_type, []).append((item, record_id))
    entries: dict[str, dict[str, Any]] = {}
    for object_type, pairs in by_type.items():
        stored = store_outbox.stored_records(tx.conn, object_type, connection, [rid for _, rid in pairs])
        keys = {rid: store_outbox.write_key(connection, object_type, rid) for _, rid in pairs}
        previous = store_outbox.remembered_writes(tx.conn, [keys[rid] for _, rid in pairs if rid not in stored])
        for item, rid in pairs:
            fields = coerce_fields(object_type, item.fields)
            expected: str | None = None
            if rid in stored:
                try:
                    expected = content_hash(apply_fields(stored[rid], fields))
                except (TypeError, ValueError):
                    expected = None
            before = previous.get(keys[rid])
            merged = dict(before.get("fields", {})) if isinstance(before, dict) and expected is None else {}
            merged.update(jsonable(fields))
            entries[keys[rid]] = {"hash": expected, "fields": merged, "at": now.isoformat(), "outbox_id": item.id}
    store_outbox.remember_writes(tx.conn, entries, now)


def _link_mirror(tx: Transaction, connection: str, item: OutboxItem, record_id: str) -> None:
    """A mirror create's result: link the source record to the new copy (once)."""
    key = parse_mirror_key(item.idempotency_key)
    if key is None or item.operation not in ("create", "upsert"):
        return
    object_type = object_type_of(item.object_name)
    object_name = object_type.value if object_type else item.object_name
    if store_outbox.find_link(tx.conn, key.source_connection, object_name, key.source_id) is not None:
        return
    if store_outbox.find_link(tx.conn, connection, object_name, record_id) is not None:
        return
    store_outbox.link(tx.conn, (key.source_connection, object_name, key.source_id), (connection, object_name, record_id))


def forget_writes(store: Store, connection: str) -> int:
    """Drop the echo memory of a connection (e.g. after a full re-backfill)."""
    with store.transaction() as tx:
        return store_outbox.forget_writes(tx.conn, connection)


def recent_errors(store: Store, connection: str | None = None, *, limit: int = 5) -> list[OutboxItem]:
    """Failed and parked items, most recently updated first (for ``crmsync status``)."""
    with store.engine.connect() as db:
        return store_outbox.recent_errors(db, connection, limit=limit)
