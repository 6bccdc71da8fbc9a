""""Why this rep": everything crmsync decided about one lead or deal, and what became of it.

The explanation under the live rule set (routing chain, score, hygiene, decisions it would make
now), the decisions logged for the record (findings, tasks, notes, assignments) and the outbox
writes they queued with their state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select

from crmsync.decide.runner import open_counts
from crmsync.model import ObjectType, Owner, Record, Stage, now_utc
from crmsync.rules.context import RuleContext
from crmsync.rules.explain import explain
from crmsync.rules.loader import RuleSet
from crmsync.rules.state import StoreRoutingState
from crmsync.store import Store
from crmsync.store import outbox as store_outbox
from crmsync.store import tables as t
from crmsync.store.repository import Decision, OutboxItem

OBJECTS = (ObjectType.LEAD, ObjectType.DEAL)


@dataclass(frozen=True, slots=True)
class Hit:
    object_type: str
    connection: str
    source_id: str
    name: str | None
    owner_id: str | None


@dataclass
class RecordStory:
    record: Record
    explanation: dict[str, list[dict[str, Any]]]  # section -> rows
    decisions: list[Decision]
    findings: list[Decision]
    created: list[Decision]  # tasks, notes, handoffs, renewals
    writes: list[OutboxItem] = field(default_factory=list)


def search(store: Store, connections: list[str], query: str, limit: int = 20) -> list[Hit]:
    """Exact source id first (primary-key lookups), then names containing the text."""
    query = query.strip()
    if not query:
        return []
    hits: list[Hit] = []
    seen: set[tuple[str, str, str]] = set()
    for object_type in OBJECTS:
        table = t.record_table(object_type)
        c = table.c
        if object_type is ObjectType.DEAL:
            label, matches = c.name, c.name.contains(query, autoescape=True)
        else:
            label = c.email
            matches = or_(c.email.contains(query, autoescape=True), c.company.contains(query, autoescape=True),
                          c.last_name.contains(query, autoescape=True))
        with store.engine.connect() as conn:
            rows = list(conn.execute(select(c.connection, c.source_id, label, c.owner_id)
                                     .where(c.source_id == query, c.connection.in_(connections), ~c.deleted)))
            if not rows:  # an id found is the answer; otherwise the text is a name (a scan, bounded by limit)
                rows += conn.execute(select(c.connection, c.source_id, label, c.owner_id)
                                     .where(matches, ~c.deleted).limit(limit)).all()
        for connection, source_id, name, owner in rows:
            key = (object_type.value, connection, source_id)
            if key not in seen:
                seen.add(key)
                hits.append(Hit(object_type.value, connection, source_id, name, owner))
    return hits[:limit]


def record_context(store: Store, rule_set: RuleSet, record: Record) -> RuleContext:
    """What explaining one record needs, without reading the whole store: the connection's owners
    and stages; the deal's own account (a lead's account matching needs them all); open-deal
    counts only when the record would be routed now and a pool routes by fewest open deals."""
    conn = record.connection
    owners = {(conn, o.source_id): o for o in store.iter_records(ObjectType.OWNER, connection=conn)
              if isinstance(o, Owner)}
    stages = {(conn, s.source_id): s for s in store.iter_records(ObjectType.STAGE, connection=conn)
              if isinstance(s, Stage)}
    accounts: dict[tuple[str, str], Any] = {}
    account_id = getattr(record, "account_id", None)
    if record.object_type is ObjectType.DEAL:
        account = store.get(ObjectType.ACCOUNT, conn, account_id) if account_id else None
        if account is not None:
            accounts[(conn, account.source_id)] = account
    else:
        accounts = {(conn, a.source_id): a for a in store.iter_records(ObjectType.ACCOUNT, connection=conn)}
    ctx = RuleContext(now=now_utc(), owners=owners, stages=stages, accounts=accounts,
                      routing_state=StoreRoutingState(store))
    router = rule_set.router
    if router is not None and router.needs_routing(record, ctx) is not None and any(
            p.strategy == "fewest_open" for p in router.pools.values()):
        ctx.open_counts = {k: v for k, v in open_counts(store).items() if k[0] == conn}
    return ctx


def story(store: Store, rule_set: RuleSet | None, object_type: str, connection: str, source_id: str) -> RecordStory | None:
    record = store.get(ObjectType(object_type), connection, source_id)
    if record is None:
        return None
    sections: dict[str, list[dict[str, Any]]] = {}
    if rule_set is not None:
        ctx = record_context(store, rule_set, record)
        for row in explain(rule_set, record, ctx):
            kind = str(row.get("kind", ""))
            section = "decisions now" if kind.startswith("decision:") else kind
            sections.setdefault(section, []).append(row)
    decisions = store.decisions(connection=connection, object_type=object_type, source_id=source_id, limit=200)
    keys = [d.idempotency_key for d in decisions if d.idempotency_key]
    with store.engine.connect() as conn:
        ids = store_outbox.ids_for_record(conn, connection, source_id, keys, limit=200)
    from crmsync.sync.outbox import get_item

    writes = [item for item in (get_item(store, i) for i in ids) if item is not None]
    return RecordStory(
        record=record, explanation=sections, decisions=decisions,
        findings=[d for d in decisions if d.action == "finding"],
        created=[d for d in decisions if d.action in ("create_task", "create_note", "create_handoff", "create_renewal")],
        writes=writes,
    )
