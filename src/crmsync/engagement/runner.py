"""Sequence rules against the store: people, their memberships, decisions, outbox rows.

For one CRM connection: every lead (or the ones a cycle changed, plus everyone crmsync has
enrolled, whose exits may be due) becomes a ``Person`` with its routed owner (the newest routing
decision unless the record changed after it) and score (likewise); its memberships are the tool's
sequence states found by the person's email plus the enrolments crmsync queued that the tool has
not shown yet. The decisions are logged and their writes queued on the tool's connection in one
transaction, keyed by the decision's idempotency key (a decision already made is never made again).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, select

from crmsync.engagement import records as er
from crmsync.errors import describe_error
from crmsync.logging import get_logger
from crmsync.model import Lead, ObjectType, Owner, now_utc
from crmsync.rules.decisions import ASSIGN_OWNER, SET_FIELDS
from crmsync.rules.sequence import (
    ENROL_SEQUENCE,
    EXIT_SEQUENCE,
    CompiledSequenceRules,
    Membership,
    Person,
    SequenceContext,
)
from crmsync.store import Store
from crmsync.store import tables as t
from crmsync.store.repository import Decision as LoggedDecision
from crmsync.store.repository import OutboxItem

log = get_logger("crmsync.sequences")
PUSH_FIELDS = ("email", "first_name", "last_name", "company", "title", "sequence_id", "mailbox_id")


@dataclass
class SequenceRun:
    evaluated: int = 0
    enrolled: int = 0
    exited: int = 0
    findings: int = 0
    enqueued: int = 0
    decisions: list[LoggedDecision] = field(default_factory=list)


def run_sequences(store: Store, connection: str, rules: CompiledSequenceRules, *,
                  changed: Sequence[tuple[str, str]] | None = None, now: dt.datetime | None = None) -> SequenceRun:
    now = now or now_utc()
    tool = rules.tool
    logged = _sequence_decisions(store, connection)
    enrolments: dict[str, list[dict[str, Any]]] = {}
    for d in logged:
        if d["action"] == ENROL_SEQUENCE:
            enrolments.setdefault(d["source_id"], []).append(d)
    leads = _leads(store, connection, changed, set(enrolments))
    owners = {o.source_id: o for o in store.iter_records(ObjectType.OWNER, connection=connection)
              if isinstance(o, Owner)}
    routed, scored = _latest(store, connection, {lead.source_id for lead in leads})
    prospects = er.read(store, tool, "prospects", emails=[lead.email or "" for lead in leads])
    prospect_of_email: dict[str, list[dict[str, Any]]] = {}
    for p in prospects:
        for email in p.get("emails") or []:
            prospect_of_email.setdefault(str(email).lower(), []).append(p)
    states = _by(er.read(store, tool, "sequence_states"), "prospectId")
    calls = _by(er.read(store, tool, "calls"), "sequenceStateId")
    sequences = er.read(store, tool, "sequences")
    name_of = {str(s["id"]): str(s.get("name") or "") for s in sequences}
    ctx = SequenceContext(
        now=now, sequence_ids={str(s.get("name") or "").strip().lower(): str(s["id"]) for s in sequences},
        mailbox_ids={str(m.get("email") or "").lower(): str(m["id"]) for m in er.read(store, tool, "mailboxes")},
        known_keys=_known_keys(store, connection, tool))
    outbox = _outbox_by_key(store, tool)
    run = SequenceRun()
    decisions = []
    meeting = {o.lower() for o in rules.spec.meeting_outcomes}
    for lead in leads:
        mine = prospect_of_email.get((lead.email or "").lower(), [])
        person = _person(lead, routed, scored, owners, mine)
        members = _memberships(rules, person, mine, states, calls, name_of, enrolments.get(lead.source_id, []),
                               outbox, meeting)
        decisions.extend(rules.evaluate(person, members, ctx))
        run.evaluated += 1
    _record(store, connection, tool, decisions, run)
    return run


def _record(store: Store, connection: str, tool: str, decisions: list[Any], run: SequenceRun) -> None:
    run_id = store.start_run("rules", connection)  # a rules run (of the sequence kind)
    try:
        with store.transaction() as tx:
            rows = []
            for d in decisions:
                rows.append(LoggedDecision(rule_kind=d.rule_kind, rule_name=d.rule_name, connection=d.connection,
                                           object_type=d.object_type, source_id=d.source_id, action=d.action,
                                           fields=dict(d.fields), reason=d.reason, run_id=run_id,
                                           rule_set_hash=d.rule_set, idempotency_key=d.idempotency_key))
                item = _outbox_item(d, tool)
                if item is not None and tx.enqueue(item):
                    run.enqueued += 1
                run.enrolled += d.action == ENROL_SEQUENCE
                run.exited += d.action == EXIT_SEQUENCE
                run.findings += d.action not in (ENROL_SEQUENCE, EXIT_SEQUENCE)
            tx.log_decisions(rows)
            run.decisions = rows
        store.finish_run(run_id, "ok", {"kind": "sequence", "evaluated": run.evaluated, "enrolled": run.enrolled, "exited": run.exited,
                                        "findings": run.findings, "enqueued": run.enqueued})
    except Exception as exc:
        store.finish_run(run_id, "failed", {"evaluated": run.evaluated}, describe_error(exc))
        raise
    log.info("sequences.applied", connection=connection, tool=tool, evaluated=run.evaluated, enrolled=run.enrolled,
             exited=run.exited, enqueued=run.enqueued)


def _outbox_item(d: Any, tool: str) -> OutboxItem | None:
    if d.action == ENROL_SEQUENCE:
        fields = {k: d.fields.get(k) for k in PUSH_FIELDS if d.fields.get(k) is not None}
        fields["crm_ref"] = f"{d.connection}:{d.object_type}:{d.source_id}"
        return OutboxItem(connection=tool, object_name="sequence_states", operation="create", fields=fields,
                          idempotency_key=d.idempotency_key)
    if d.action == EXIT_SEQUENCE:
        return OutboxItem(connection=tool, object_name="sequence_states", operation="update",
                          source_id=str(d.fields["state_id"]), fields={"action": "finish"},
                          idempotency_key=d.idempotency_key)
    return None


# --- reading the store ------------------------------------------------------------------------------
def _leads(store: Store, connection: str, changed: Sequence[tuple[str, str]] | None,
           enrolled: set[str]) -> list[Lead]:
    """The leads to evaluate, read in one pass (not one query per lead)."""
    wanted: set[str] | None = None
    if changed is not None:
        wanted = {sid for ot, sid in changed if ot == ObjectType.LEAD.value} | enrolled
        if not wanted:
            return []
    return [r for r in store.iter_records(ObjectType.LEAD, connection=connection)
            if isinstance(r, Lead) and not r.deleted and (wanted is None or r.source_id in wanted)]


def _sequence_decisions(store: Store, connection: str) -> list[dict[str, Any]]:
    c = t.decisions.c
    stmt = (select(c.source_id, c.action, c.fields, c.idempotency_key)
            .where(and_(c.connection == connection, c.rule_kind == "sequence")).order_by(c.id))
    with store.engine.connect() as db:
        return [dict(row._mapping) for row in db.execute(stmt)]


Routed = dict[str, tuple[str, dt.datetime, str | None]]  # lead -> (owner, decided at, owner before or "?")


def _owner_before(key: str | None) -> str | None:
    """The owner a routing decision replaced, from its key (``route:lead:<conn>:<id>:<owner or ->``);
    "?" when the key does not say (SLA re-routes)."""
    if not key or not key.startswith("route:"):
        return "?"
    before = key.rsplit(":", 1)[-1]
    return None if before == "-" else before


def _latest(store: Store, connection: str, ids: set[str]) -> tuple[Routed, dict[str, tuple[Decimal, dt.datetime]]]:
    """The newest routing owner and score decided per lead (of ``ids``), with when."""
    c = t.decisions.c
    routed: Routed = {}
    scored: dict[str, tuple[Decimal, dt.datetime]] = {}
    wanted = sorted(ids)
    rows: list[Any] = []
    with store.engine.connect() as db:
        for start in range(0, len(wanted), 500):
            rows.extend(db.execute(
                select(c.id, c.source_id, c.action, c.fields, c.created_at, c.idempotency_key)
                .where(and_(c.connection == connection, c.object_type == "lead",
                            c.action.in_([ASSIGN_OWNER, SET_FIELDS]), c.source_id.in_(wanted[start:start + 500])))))
        for _, sid, action, fields, at, key in sorted(rows, key=lambda r: r[0]):
            if action == ASSIGN_OWNER and fields.get("owner_id"):
                routed[sid] = (str(fields["owner_id"]), at, _owner_before(key))
            elif action == SET_FIELDS and fields.get("score") is not None:
                try:
                    scored[sid] = (Decimal(str(fields["score"])), at)
                except InvalidOperation:
                    continue
    return routed, scored


def _known_keys(store: Store, connection: str, tool: str) -> set[str]:
    with store.engine.connect() as db:
        o, d = t.outbox.c, t.decisions.c
        keys = {k for (k,) in db.execute(select(o.idempotency_key).where(o.connection == tool))}
        keys.update(k for (k,) in db.execute(select(d.idempotency_key).where(
            and_(d.connection == connection, d.rule_kind == "sequence", d.idempotency_key.is_not(None)))))
    return keys


def _outbox_by_key(store: Store, tool: str) -> dict[str, tuple[str, str | None]]:
    o = t.outbox.c
    with store.engine.connect() as db:
        return {k: (s, r) for k, s, r in db.execute(select(o.idempotency_key, o.status, o.result_id)
                                                     .where(o.connection == tool))}


def _by(rows: Iterable[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get(key) is not None:
            out.setdefault(str(row[key]), []).append(row)
    return out


def _person(lead: Lead, routed: Routed, scored: dict[str, tuple[Decimal, dt.datetime]],
            owners: dict[str, Owner], prospects: list[dict[str, Any]]) -> Person:
    """The routed owner wins while the CRM still shows the owner routing replaced (its write may not
    be pushed or pulled back yet); once a person changes the owner in the CRM, the CRM wins."""
    owner_id = lead.owner_id
    decided = routed.get(lead.source_id)
    if decided is not None:
        before = decided[2]
        if owner_id is None or owner_id == before or (before == "?" and decided[1] >= lead.modified_at):
            owner_id = decided[0]
    score = lead.score
    if lead.source_id in scored and (score is None or scored[lead.source_id][1] >= lead.modified_at):
        score = scored[lead.source_id][0]
    owner = owners.get(owner_id) if owner_id else None
    return Person(connection=lead.connection, object_type="lead", source_id=lead.source_id, email=lead.email,
                  first_name=lead.first_name, last_name=lead.last_name, company=lead.company, title=lead.title,
                  source=lead.source, status=lead.status, employees=lead.employees, score=score, owner_id=owner_id,
                  owner_email=owner.email if owner is not None else None,
                  opted_out=any(bool(p.get("optedOut")) for p in prospects))


def _memberships(rules: CompiledSequenceRules, person: Person, prospects: list[dict[str, Any]],
                 states: dict[str, list[dict[str, Any]]], calls: dict[str, list[dict[str, Any]]],
                 name_of: dict[str, str], enrolments: list[dict[str, Any]],
                 outbox: dict[str, tuple[str, str | None]], meeting: set[str]) -> list[Membership]:
    ours = {str(e["fields"].get("sequence_id")): e for e in enrolments}
    out: list[Membership] = []
    seen: set[str] = set()
    for p in prospects:
        for s in states.get(str(p["id"]), []):
            seq = str(s.get("sequenceId"))
            mine = ours.get(seq)
            replied = s.get("repliedAt") is not None or int(s.get("replyCount") or 0) > 0
            met = any(str(c.get("outcome") or "").lower() in meeting for c in calls.get(str(s["id"]), []))
            out.append(Membership(seq, str(s.get("state") or "active"), str(s["id"]), rules.kind_of(name_of.get(seq)),
                                  replied, met, (mine or {}).get("fields", {}).get("owner_id") if mine else None,
                                  (mine or {}).get("fields", {}).get("status") if mine else None))
            seen.add(seq)
    for seq, e in ours.items():
        if seq in seen:
            continue
        status, result = outbox.get(str(e["idempotency_key"]), ("failed", None))
        state = "active" if status == "done" else "pending" if status in ("pending", "in_flight") else status
        out.append(Membership(seq, state, result, str(e["fields"].get("kind") or "") or None,
                              enrolled_owner_id=e["fields"].get("owner_id"), enrolled_status=e["fields"].get("status")))
    return out
