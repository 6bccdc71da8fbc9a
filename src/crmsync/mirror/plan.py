"""Pure mirror planning: changed deals on either side + links + the other side's records -> outbox items.

Every mirrored field has exactly one owner side (``field_owner``, default ``source``); values only
ever flow from the owner to the other side, and only when they differ (after the stage and owner
maps). That makes a two-way mirror settle by construction: once both sides hold the same values
nothing is planned, so crmsync's own writes coming back plan nothing and there is no ping-pong.

* A changed source deal with no link becomes a create on the target carrying the crmsync key
  ``mirror:{mirror}:{source conn}:{source id}`` (the connector makes the create idempotent by it;
  the drain links the two records when the id comes back). In ``two_way`` mode a target deal with
  no link is created on the source the same way, unless it is itself a mirror copy (its crmsync key
  names this mirror), which covers the window between a create and its link.
* A linked pair where either side changed gets, per non-owner side, one update with the fields
  that differ, conditional on that side's record not having changed since (``based_on_modified_at``).
* One-way mirrors never write to the source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from crmsync.mirror.canonical import field_kinds, jsonable, same_value
from crmsync.mirror.keys import PREFIX, mirror_key
from crmsync.model import Deal, ObjectType
from crmsync.settings import MirrorSettings
from crmsync.store import OutboxItem

Side = Literal["source", "target"]
DEFAULT_FIELDS = ("name", "amount", "stage_id", "close_date", "owner_id")
OBJECT_NAME = "deals"


@dataclass
class MirrorPlan:
    items: list[OutboxItem] = field(default_factory=list)
    creates: int = 0
    updates: int = 0
    in_sync: int = 0  # pairs looked at that needed nothing
    waiting: int = 0  # linked, but the other side's record is not pulled yet
    copies_skipped: int = 0  # unlinked records that are mirror copies in flight
    issues: list[str] = field(default_factory=list)  # values no map could translate


def field_pairs(mirror: MirrorSettings) -> dict[str, str]:
    """source canonical field -> target canonical field."""
    return dict(mirror.field_map) if mirror.field_map else {f: f for f in DEFAULT_FIELDS}


def owner_of(mirror: MirrorSettings, source_field: str, target_field: str) -> Side:
    if mirror.direction == "one_way":
        return "source"
    return mirror.field_owner.get(source_field) or mirror.field_owner.get(target_field) or "source"


class _Translator:
    def __init__(self, mirror: MirrorSettings) -> None:
        self.maps = {"stage_id": dict(mirror.stage_map), "owner_id": dict(mirror.owner_map)}
        self.inverse = {k: {v: s for s, v in m.items()} for k, m in self.maps.items()}

    def __call__(self, canonical_field: str, value: Any, *, to_target: bool) -> tuple[bool, Any]:
        """(ok, translated value); not ok when a map is configured and does not know the value."""
        table = (self.maps if to_target else self.inverse).get(canonical_field)
        if not table or value is None:
            return True, value
        if str(value) in table:
            return True, table[str(value)]
        return False, value


def is_mirror_copy(deal: Deal, mirror: str) -> bool:
    """The deal carries a crmsync key of this mirror (it was created by the mirror)."""
    prefix = f"{PREFIX}:{mirror}:"
    return any(isinstance(v, str) and v.startswith(prefix) for v in deal.extra.values())


def _update_key(mirror: str, connection: str, record_id: str, fields: Mapping[str, Any], basis: str) -> str:
    digest = hashlib.blake2b(repr(sorted(jsonable(dict(fields)).items())).encode(), digest_size=8).hexdigest()
    return f"mirror-update:{mirror}:{connection}:{record_id}:{digest}:{basis}"


def plan_mirror(
    mirror: MirrorSettings,
    *,
    changed_source: Iterable[Deal],
    changed_target: Iterable[Deal] = (),
    links: Mapping[tuple[str, str], tuple[str, str]],
    records: Mapping[tuple[str, str], Deal],
) -> MirrorPlan:
    """Plan the writes for the changed deals of one mirror.

    ``links`` maps (connection, deal id) -> (other connection, other deal id), both orientations;
    ``records`` holds the current stored deals by (connection, id), at least the linked partners.
    """
    plan = MirrorPlan()
    pairs = field_pairs(mirror)
    translate = _Translator(mirror)
    seen_pairs: set[tuple[str, str]] = set()
    kinds = field_kinds(ObjectType.DEAL)
    # target-side changes are looked at in both modes: an edit there to a source-owned field is undone
    sides: list[tuple[Side, Iterable[Deal]]] = [("source", changed_source), ("target", changed_target)]
    for side, deals in sides:
        my_conn = mirror.source if side == "source" else mirror.target
        other_conn = mirror.target if side == "source" else mirror.source
        for deal in deals:
            if deal.connection != my_conn or deal.deleted:
                continue
            partner = links.get((my_conn, deal.source_id))
            if partner is None:
                if side == "target" and mirror.direction == "one_way":
                    continue
                if is_mirror_copy(deal, mirror.name):
                    plan.copies_skipped += 1
                    continue
                _plan_create(plan, mirror, deal, side, other_conn, pairs, translate)
                continue
            source_id, target_id = (deal.source_id, partner[1]) if side == "source" else (partner[1], deal.source_id)
            if (source_id, target_id) in seen_pairs:
                continue
            seen_pairs.add((source_id, target_id))
            src = records.get((mirror.source, source_id)) if side == "target" else deal
            tgt = records.get((mirror.target, target_id)) if side == "source" else deal
            if src is None or tgt is None:
                plan.waiting += 1
                continue
            _plan_pair(plan, mirror, src, tgt, pairs, translate, kinds)
    return plan


def _plan_create(plan: MirrorPlan, mirror: MirrorSettings, deal: Deal, side: Side, other_conn: str,
                 pairs: Mapping[str, str], translate: _Translator) -> None:
    to_target = side == "source"
    fields: dict[str, Any] = {}
    for s_field, t_field in pairs.items():
        mine, theirs = (s_field, t_field) if to_target else (t_field, s_field)
        ok, value = translate(s_field if to_target else t_field, getattr(deal, mine), to_target=to_target)
        if not ok:
            plan.issues.append(f"{deal.connection}/{deal.source_id}: {mine}={value!r} has no mapping for {other_conn}")
            if mine == "stage_id":
                return  # a deal cannot be created without a valid stage
            continue
        if value is not None:
            fields[theirs] = value
    key = mirror_key(mirror.name, deal.connection, deal.source_id)  # the connector stores it on the copy
    plan.items.append(OutboxItem(connection=other_conn, object_name=OBJECT_NAME, operation="create",
                                 fields=jsonable(fields), idempotency_key=key))
    plan.creates += 1


def _plan_pair(plan: MirrorPlan, mirror: MirrorSettings, src: Deal, tgt: Deal, pairs: Mapping[str, str],
               translate: _Translator, kinds: Mapping[str, str]) -> None:
    to_target: dict[str, Any] = {}
    to_source: dict[str, Any] = {}
    for s_field, t_field in pairs.items():
        owner = owner_of(mirror, s_field, t_field)
        if owner == "source":
            ok, want = translate(s_field, getattr(src, s_field), to_target=True)
            if ok and not same_value(kinds.get(t_field, "str"), want, getattr(tgt, t_field)):
                to_target[t_field] = want
            elif not ok:
                plan.issues.append(f"{src.connection}/{src.source_id}: {s_field}={want!r} has no target mapping")
        else:
            ok, want = translate(s_field, getattr(tgt, t_field), to_target=False)
            if ok and not same_value(kinds.get(s_field, "str"), want, getattr(src, s_field)):
                to_source[s_field] = want
            elif not ok:
                plan.issues.append(f"{tgt.connection}/{tgt.source_id}: {t_field}={want!r} has no source mapping")
    if not to_target and not to_source:
        plan.in_sync += 1
        return
    for record, fields in ((tgt, to_target), (src, to_source)):
        if not fields:
            continue
        plan.items.append(OutboxItem(
            connection=record.connection, object_name=OBJECT_NAME, operation="update",
            source_id=record.source_id, fields=jsonable(fields), based_on_modified_at=record.modified_at,
            idempotency_key=_update_key(mirror.name, record.connection, record.source_id, fields,
                                        record.modified_at.isoformat()),
        ))
        plan.updates += 1


def link_index(links: Sequence[tuple[tuple[str, str], tuple[str, str]]]) -> dict[tuple[str, str], tuple[str, str]]:
    """Both orientations of (left, right) pairs of (connection, id)."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for left, right in links:
        out[left] = right
        out[right] = left
    return out
