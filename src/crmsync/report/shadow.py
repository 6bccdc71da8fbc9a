"""What a shadow rule set would have changed against what the live set did, record by record.

Both sides of a period (``crmsync.trials.shadow``) are reduced to their effects per record:

* **owner**: the last owner assigned (``assign_owner``), else the owner the record had when the
  period first evaluated it;
* **score**: the scoring fields set (score, grade, lifecycle stage...), over the record's values
  when first evaluated;
* **tasks**: the tasks created (hygiene, bundles, handoffs), by their idempotency key.

A record differs when any of the three differs; the counts add those up. Nothing here is sampled
or estimated: every decision both sides logged in the period is read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from crmsync.report.page import ReportPage, Table
from crmsync.rules.decisions import ASSIGN_OWNER, CREATE_TASK, SET_FIELDS
from crmsync.store import Store
from crmsync.store.workflow_tables import shadow_decisions, shadow_records
from crmsync.trials.shadow import Period, period

RecordKey = tuple[str, str, str]  # connection, object type, source id


@dataclass
class Effects:
    owner: str | None = None
    score: dict[str, str | None] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)  # task key -> subject


@dataclass(frozen=True)
class RecordDiff:
    connection: str
    object_type: str
    source_id: str
    live: Effects
    shadow: Effects

    @property
    def owner_differs(self) -> bool:
        return self.live.owner != self.shadow.owner

    @property
    def score_differs(self) -> bool:
        return self.live.score != self.shadow.score

    @property
    def only_live_tasks(self) -> list[str]:
        return sorted(set(self.live.tasks) - set(self.shadow.tasks))

    @property
    def only_shadow_tasks(self) -> list[str]:
        return sorted(set(self.shadow.tasks) - set(self.live.tasks))

    @property
    def differs(self) -> bool:
        return self.owner_differs or self.score_differs or bool(self.only_live_tasks or self.only_shadow_tasks)


@dataclass
class ShadowReport:
    period: Period
    evaluated: int
    decisions: dict[str, dict[str, int]]  # side -> action -> count
    differences: list[RecordDiff]

    @property
    def counts(self) -> dict[str, int]:
        d = self.differences
        return {"records_evaluated": self.evaluated, "records_differing": len(d),
                "owners_differ": sum(x.owner_differs for x in d), "scores_differ": sum(x.score_differs for x in d),
                "tasks_only_live": sum(len(x.only_live_tasks) for x in d),
                "tasks_only_shadow": sum(len(x.only_shadow_tasks) for x in d)}


def _norm(value: Any) -> str | None:
    return None if value is None else str(value)


def apply_decision(effects: Effects, rule_kind: str, action: str, fields: dict[str, Any], key: str) -> None:
    """One logged decision's effect on a record (in log order)."""
    if action == ASSIGN_OWNER:
        effects.owner = _norm(fields.get("owner_id"))
    elif action == SET_FIELDS and rule_kind == "scoring":
        effects.score.update({k: _norm(v) for k, v in fields.items()})
    elif action == CREATE_TASK:
        effects.tasks[key] = str(fields.get("subject") or "")


def _start(base: dict[str, Any] | None, scoring_paths: Iterable[str]) -> Effects:
    base = base or {}
    return Effects(owner=_norm(base.get("owner_id")), score={p: _norm(base.get(p)) for p in scoring_paths})


def shadow_report(store: Store, period_id: int) -> ShadowReport:
    p = period(store, period_id)
    if p is None:
        raise ValueError(f"no shadow period {period_id}")
    d, r = shadow_decisions.c, shadow_records.c
    with store.engine.connect() as conn:
        bases: dict[RecordKey, dict[str, Any]] = {
            (str(c), str(o), str(s)): dict(b or {}) for c, o, s, b in conn.execute(
                select(r.connection, r.object_type, r.source_id, r.base).where(r.period_id == period_id))}
        rows = list(conn.execute(select(d.side, d.connection, d.object_type, d.source_id, d.rule_kind, d.action,
                                        d.fields, d.idempotency_key)
                                 .where(d.period_id == period_id).order_by(d.id)))
    counts: dict[str, dict[str, int]] = {"live": defaultdict(int), "shadow": defaultdict(int)}
    scoring_paths: dict[RecordKey, set[str]] = defaultdict(set)
    for _, c, o, s, kind, action, fields, _ in rows:
        if action == SET_FIELDS and kind == "scoring":
            scoring_paths[(str(c), str(o), str(s))].update((fields or {}).keys())
    sides: dict[str, dict[RecordKey, Effects]] = {"live": {}, "shadow": {}}
    touched: set[RecordKey] = set()
    for side, c, o, s, kind, action, fields, key in rows:
        rk = (str(c), str(o), str(s))
        counts[side][action] += 1
        touched.add(rk)
        effects = sides[side].get(rk)
        if effects is None:
            effects = sides[side][rk] = _start(bases.get(rk), scoring_paths[rk])
        apply_decision(effects, kind, action, dict(fields or {}), str(key))
    diffs = []
    for rk in sorted(touched):
        live = sides["live"].get(rk) or _start(bases.get(rk), scoring_paths[rk])
        shadow = sides["shadow"].get(rk) or _start(bases.get(rk), scoring_paths[rk])
        diff = RecordDiff(rk[0], rk[1], rk[2], live, shadow)
        if diff.differs:
            diffs.append(diff)
    return ShadowReport(p, len(bases), {k: dict(v) for k, v in counts.items()}, diffs)


def _score_text(score: dict[str, str | None]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(score.items())) or "-"


def shadow_page(report: ShadowReport, *, limit: int | None = 200,
                names: dict[tuple[str, str], str] | None = None) -> ReportPage:
    """The report as a page; ``names`` ((connection, owner id) -> name) shows owners by name."""
    p, c = report.period, report.counts
    names = names or {}

    def who(connection: str, owner: str | None) -> str:
        if owner is None:
            return "-"
        name = names.get((connection, owner))
        return f"{name} ({owner})" if name else owner

    page = ReportPage(f"Shadow period {p.id}",
                      f"version {p.version_id} ({p.rule_set_hash[:12]}) beside the live rules, "
                      f"{p.starts_at:%Y-%m-%d %H:%M} to {p.ends_at:%Y-%m-%d %H:%M} UTC")
    page.findings.append(f"{c['records_evaluated']:,} records evaluated; {c['records_differing']:,} would change: "
                         f"{c['owners_differ']:,} owners, {c['scores_differ']:,} scores, "
                         f"{c['tasks_only_shadow']:,} tasks only the shadow set creates, "
                         f"{c['tasks_only_live']:,} tasks only the live set creates.")
    page.findings.append("Nothing the shadow set decided was pushed: it has no outbox rows.")
    actions = sorted({a for side in report.decisions.values() for a in side})
    page.tables.append(Table("Decisions per side", ("action", "live", "shadow"),
                             tuple((a, str(report.decisions["live"].get(a, 0)),
                                    str(report.decisions["shadow"].get(a, 0))) for a in actions)))
    rows = []
    for diff in report.differences[:limit] if limit else report.differences:
        rows.append((diff.connection, diff.object_type, diff.source_id,
                     f"{who(diff.connection, diff.live.owner)} -> {who(diff.connection, diff.shadow.owner)}"
                     if diff.owner_differs else "",
                     f"{_score_text(diff.live.score)} -> {_score_text(diff.shadow.score)}" if diff.score_differs
                     else "",
                     "; ".join(diff.only_live_tasks), "; ".join(diff.only_shadow_tasks)))
    page.tables.append(Table("Records that would change", ("connection", "object", "id", "owner (live -> shadow)",
                                                           "score (live -> shadow)", "tasks only live",
                                                           "tasks only shadow"), tuple(rows),
                             note="" if not limit or len(report.differences) <= limit else
                             f"first {limit} of {len(report.differences):,}; --csv writes every row"))
    return page
