"""Impact preview of a draft: what it would decide differently from the live set over recent records.

Both sets are evaluated over the same records (the most recent leads and deals modified in the
last N days, at most ``limit`` of them) with routing on copies of the durable state, as ``rules simulate`` and
``rules diff`` do; nothing is written. The report has the changed decisions, assignments per rep
before and after, each weighted pool's shares against its weights, and a few changed records with
their full explanation under the draft.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crmsync.decide.runner import build_context, open_counts
from crmsync.model import ObjectType, Owner, Record, now_utc
from crmsync.rules.context import RuleContext
from crmsync.rules.diff import diff_decision_lists, diff_rule_sets
from crmsync.rules.explain import explain
from crmsync.rules.loader import RuleSet
from crmsync.rules.simulate import SimulationReport, simulate
from crmsync.store import Store

EXAMPLES = 5


@dataclass
class ImpactReport:
    days: int
    records: int
    truncated: bool
    rule_changes: list[dict[str, str]]
    changes: list[dict[str, str]]
    changed_records: int
    by_kind: dict[str, int]
    owners: list[dict[str, Any]]
    fairness: list[dict[str, Any]]
    examples: list[dict[str, Any]] = field(default_factory=list)


def recent_records(store: Store, connections: list[str], since: dt.datetime, limit: int) -> tuple[list[Record], bool]:
    """The most recently modified leads and deals since ``since``, at most ``limit`` in all
    (``True`` when more were left out)."""
    records: list[Record] = []
    for object_type in (ObjectType.LEAD, ObjectType.DEAL):
        for connection in connections:
            room = limit - len(records)
            batch = store.recent_records(object_type, connection, since, room + 1) if room >= 0 else []
            records.extend(batch[:max(room, 0)])
            if len(batch) > room:
                return records, True
    return records, False


def owner_label(owners: Mapping[tuple[str, str], Owner], owner_id: str) -> str:
    for (_, oid), owner in owners.items():
        if oid == owner_id:
            return f"{owner.name or owner.email or oid} ({oid})"
    return owner_id


class OpenCounts:
    """Open deals per (connection, owner) for fewest-open pools, counted at most once per ``ttl``:
    counting is a scan of the deals (seconds at a million), and a preview can live with counts a
    minute old."""

    def __init__(self, ttl: float = 120.0) -> None:
        self.ttl = ttl
        self._value: dict[tuple[str, str], int] | None = None
        self._at = 0.0

    def get(self, store: Store) -> dict[tuple[str, str], int]:
        if self._value is None or time.monotonic() - self._at > self.ttl:
            self._value, self._at = open_counts(store), time.monotonic()
        return self._value


def _fewest_open(*rule_sets: RuleSet) -> bool:
    return any(rs.router is not None and any(p.strategy == "fewest_open" for p in rs.router.pools.values())
               for rs in rule_sets)


def preview(store: Store, live: RuleSet, draft: RuleSet, *, connections: list[str], days: int, limit: int = 2000,
            now: dt.datetime | None = None, counts: OpenCounts | None = None) -> ImpactReport:
    now = now or now_utc()
    records, truncated = recent_records(store, connections, now - dt.timedelta(days=days), limit)
    needed = _fewest_open(live, draft)
    ctx = build_context(store, sorted({r.connection for r in records}), now=now,
                        counts=(counts or OpenCounts()).get(store) if needed else {})
    before = simulate(live, records, ctx)
    after = simulate(draft, records, ctx)
    changes = diff_decision_lists(before.decisions, after.decisions)
    changed_ids = list(dict.fromkeys(row["record"] for row in changes))
    by_kind = Counter(row["kind"] for row in changes)
    report = ImpactReport(
        days=days, records=len(records), truncated=truncated, rule_changes=diff_rule_sets(live, draft),
        changes=[_readable(row) for row in changes[:500]], changed_records=len(changed_ids), by_kind=dict(by_kind),
        owners=_owner_counts(before, after, ctx), fairness=_fairness(draft, after, ctx, records),
    )
    by_key = {f"{r.connection}:{r.source_id}": r for r in records}
    for key in changed_ids[:EXAMPLES]:
        record = by_key.get(key)
        if record is not None:
            report.examples.append({"record": key, "object": record.object_type.value,
                                    "name": getattr(record, "name", None) or getattr(record, "email", None) or key,
                                    "rows": explain(draft, record, ctx)})
    return report


def _readable(row: dict[str, str]) -> dict[str, str]:
    def short(text: str) -> str:
        if text == "-":
            return "(none)"
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in value.items())[:200]
        return str(value)[:200]

    return {**row, "old": short(row["old"]), "new": short(row["new"])}


def _owner_counts(before: SimulationReport, after: SimulationReport, ctx: RuleContext) -> list[dict[str, Any]]:
    a = {row["owner_id"]: row["assigned"] for row in before.by_owner}
    b = {row["owner_id"]: row["assigned"] for row in after.by_owner}
    rows = [{"owner_id": oid, "owner": owner_label(ctx.owners, oid), "before": a.get(oid, 0), "after": b.get(oid, 0),
             "delta": b.get(oid, 0) - a.get(oid, 0)} for oid in set(a) | set(b)]
    rows.sort(key=lambda r: (-abs(r["delta"]), -r["after"], r["owner_id"]))
    return rows


def _fairness(draft: RuleSet, after: SimulationReport, ctx: RuleContext, records: list[Record]) -> list[dict[str, Any]]:
    """Per weighted pool: each member's share of the pool's assignments against its weight share."""
    if draft.router is None:
        return []
    assigned = Counter(str(d.fields.get("owner_id")) for d in after.decisions if d.action == "assign_owner")
    connections = sorted({r.connection for r in records})
    out = []
    for pool in draft.router.pools.values():
        if pool.strategy != "weighted":
            continue
        members: dict[str, int] = {}
        for connection in connections:
            if pool.connection not in (None, connection):
                continue
            for m in pool.members_for(connection, ctx):
                members[m.owner] = m.weight
        total_weight = sum(members.values())
        total_assigned = sum(assigned[o] for o in members)
        if not members or not total_assigned:
            continue
        rows: list[dict[str, Any]] = [{"owner": owner_label(ctx.owners, o), "weight": w,
                 "weight_share": w / total_weight, "assigned": assigned[o],
                 "share": assigned[o] / total_assigned} for o, w in members.items()]
        rows.sort(key=lambda r: -r["weight_share"])
        out.append({"pool": pool.name, "assigned": total_assigned, "members": rows[:25]})
    return out
