"""The mirror step: read what changed in the store since the last run, plan, enqueue.

Changed means "written by a pull since the mirror last looked" (the stored rows' ``synced_at``),
minus crmsync's own writes coming back (``filter_echoes``). The plan (``crmsync.mirror.plan``) is
pure; this module only loads its inputs and commits the outbox rows and the new cursor together,
so a crash re-plans the same changes and the idempotency keys keep the outbox free of duplicates.
The drain then pushes the rows (``crmsync.sync.outbox.drain``, run by the worker) and links created copies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from crmsync.logging import get_logger
from crmsync.mirror.echoes import filter_echoes
from crmsync.mirror.plan import MirrorPlan, link_index, plan_mirror
from crmsync.model import Deal, ObjectType, now_utc, parse_timestamp
from crmsync.settings import MirrorSettings, Settings
from crmsync.store import Store
from crmsync.store import outbox as store_outbox
from crmsync.store.upsert import plan_for

log = get_logger("crmsync.mirror")
CURSOR_NS = "mirror.cursor"
SKEW = dt.timedelta(seconds=2)  # rows committed by a pull that started before our cursor time


@dataclass
class MirrorRun:
    mirror: str
    changed_source: int = 0
    changed_target: int = 0
    echoes: int = 0
    enqueued: int = 0
    plan: MirrorPlan = field(default_factory=MirrorPlan)


def changed_deals(store: Store, connection: str, since: dt.datetime | None) -> list[Deal]:
    """Deals of ``connection`` written by a pull at or after ``since`` (all when None)."""
    kind = plan_for(ObjectType.DEAL)
    table = kind.table
    stmt = select(*[table.c[n] for n in kind.field_names]).where(table.c.connection == connection)
    if since is not None:
        stmt = stmt.where(table.c.synced_at >= since)
    with store.engine.connect() as db:
        deals = [kind.to_record(row) for row in db.execute(stmt.order_by(table.c.source_id))]
    return [d for d in deals if isinstance(d, Deal)]


def load_deals(store: Store, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Deal]:
    kind = plan_for(ObjectType.DEAL)
    table = kind.table
    by_conn: dict[str, list[str]] = {}
    for conn, source_id in keys:
        by_conn.setdefault(conn, []).append(source_id)
    out: dict[tuple[str, str], Deal] = {}
    with store.engine.connect() as db:
        for conn, ids in by_conn.items():
            ids = sorted(set(ids))
            for start in range(0, len(ids), 500):
                stmt = select(*[table.c[n] for n in kind.field_names]).where(
                    table.c.connection == conn, table.c.source_id.in_(ids[start : start + 500]))
                for row in db.execute(stmt):
                    deal = kind.to_record(row)
                    assert isinstance(deal, Deal)
                    out[(conn, deal.source_id)] = deal
    return out


def load_links(store: Store, connections: Sequence[str]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    with store.engine.connect() as db:
        return store_outbox.deal_links(db, connections)


def _pending_reruns(store: Store) -> list[store_outbox.Rerun]:
    with store.engine.connect() as db:
        return store_outbox.pending_reruns(db)


def run_mirror(store: Store, mirror: MirrorSettings, *, full: bool = False) -> MirrorRun:
    """Plan and enqueue one mirror's writes for the deals changed since its last run."""
    started = now_utc()
    run = MirrorRun(mirror.name)
    cursor = store.get_state(CURSOR_NS, mirror.name)
    since = None if full or not isinstance(cursor, dict) else parse_timestamp(cursor.get("since"))
    source = changed_deals(store, mirror.source, since)
    target = changed_deals(store, mirror.target, since)
    run.changed_source, run.changed_target = len(source), len(target)
    reruns = [r for r in _pending_reruns(store)
              if r.connection in (mirror.source, mirror.target) and r.object_type == ObjectType.DEAL.value
              and r.idempotency_key.startswith(f"mirror-update:{mirror.name}:")]
    source_f = filter_echoes(store, source)
    target_f = filter_echoes(store, target)
    run.echoes = len(source) + len(target) - len(source_f) - len(target_f)
    index = link_index(load_links(store, [mirror.source, mirror.target]))
    rerun_deals = load_deals(store, [(r.connection, r.source_id) for r in reruns])
    seen = {(d.connection, d.source_id) for d in (*source_f, *target_f)}
    for key, deal in rerun_deals.items():  # parked on a conflict: decide again on the new data
        if key not in seen:
            (source_f if deal.connection == mirror.source else target_f).append(deal)
    partners = [index[(d.connection, d.source_id)] for d in (*source_f, *target_f)
                if (d.connection, d.source_id) in index]
    records = load_deals(store, partners)
    run.plan = plan_mirror(mirror, changed_source=source_f, changed_target=target_f, links=index, records=records)
    with store.transaction() as tx:
        for item in run.plan.items:
            run.enqueued += int(tx.enqueue(item))
        for r in reruns:
            store_outbox.clear_rerun(tx.conn, r.connection, r.object_type, r.source_id)
        tx.set_state(CURSOR_NS, mirror.name, {"since": (started - SKEW).isoformat()})
    log.info("mirror.planned", mirror=mirror.name, changed_source=run.changed_source,
             changed_target=run.changed_target, echoes=run.echoes, creates=run.plan.creates,
             updates=run.plan.updates, enqueued=run.enqueued, waiting=run.plan.waiting,
             issues=len(run.plan.issues))
    return run


def run_mirrors(settings: Settings, store: Store, *, connection: str | None = None) -> list[MirrorRun]:
    """Every configured mirror (or those touching ``connection``)."""
    return [run_mirror(store, m) for m in settings.mirrors
            if connection is None or connection in (m.source, m.target)]
