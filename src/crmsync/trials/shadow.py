"""Shadow mode: a rule-set version evaluated beside the live one for a period, never pushed.

A period (``shadow_periods``) names a version from ``rule_set_versions`` and a UTC window. While it
is open, the worker's rules step (before the live rules run, over the same records, at the same
instant) evaluates **both** the live set and the shadow set the way the live runner does: the same
context, routing state read from the store but never written, the task budget and task closing,
the known decision keys. Each side's new decisions go into ``shadow_decisions`` (once per key and side); nothing goes
to the outbox, the decision log or the routing state. The live side is therefore exactly what the
live runner decides in that cycle, and the report (``crmsync.report.shadow``) compares the two
record by record.

The first cycle of a period evaluates every lead and deal of the connection with both sets (the
live side then is what the live set decides for each record at that moment, whether or not the
live runner looks at it in that cycle); later cycles take exactly the changed records the live
runner gets, so their live side is exactly what it decides.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crmsync.decide.closing import created_today, open_crm_tasks
from crmsync.logging import get_logger
from crmsync.model import ObjectType, Record, now_utc, utc
from crmsync.rules.budget import apply_budget
from crmsync.rules.decisions import Decision
from crmsync.rules.engine import incremental
from crmsync.rules.loader import RuleSet, load_rules
from crmsync.rules.state import StoreRoutingState
from crmsync.store import Store
from crmsync.store import tables as t
from crmsync.store.workflow_tables import shadow_decisions, shadow_periods, shadow_records

log = get_logger("crmsync.shadow")
SIDES = ("live", "shadow")


class ShadowError(ValueError):
    """A shadow period cannot be started as asked (unknown version, bad window)."""


@dataclass(frozen=True, slots=True)
class Period:
    id: int
    version_id: int
    rule_set_hash: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_by: str
    created_at: dt.datetime
    note: str | None
    stopped_at: dt.datetime | None

    def open_at(self, now: dt.datetime) -> bool:
        return self.stopped_at is None and self.starts_at <= now < self.ends_at

    def state(self, now: dt.datetime) -> str:
        if self.stopped_at is not None:
            return "stopped"
        if now < self.starts_at:
            return "scheduled"
        return "open" if now < self.ends_at else "ended"


@dataclass
class ShadowRun:
    period_id: int
    evaluated: int = 0
    logged: dict[str, int] = field(default_factory=lambda: {"live": 0, "shadow": 0})


_COLUMNS = [shadow_periods.c[n] for n in ("id", "version_id", "rule_set_hash", "starts_at", "ends_at", "created_by",
                                          "created_at", "note", "stopped_at")]


def start_period(store: Store, version_id: int, starts_at: dt.datetime, ends_at: dt.datetime, *, created_by: str,
                 note: str | None = None) -> int:
    starts_at, ends_at = utc(starts_at, field_name="start"), utc(ends_at, field_name="end")
    if ends_at <= starts_at:
        raise ShadowError("the shadow period's end must be after its start")
    v = t.rule_set_versions.c
    with store.engine.begin() as conn:
        row = conn.execute(select(v.hash).where(v.id == version_id)).first()
        if row is None:
            raise ShadowError(f"no rule-set version {version_id} (see the console's versions, or crmsync rules "
                              "shadow versions)")
        return int(conn.execute(insert(shadow_periods).values(
            version_id=version_id, rule_set_hash=row[0], starts_at=starts_at, ends_at=ends_at, created_by=created_by,
            created_at=now_utc(), note=note).returning(shadow_periods.c.id)).scalar_one())


def stop_period(store: Store, period_id: int, *, at: dt.datetime | None = None) -> bool:
    with store.engine.begin() as conn:
        done = conn.execute(update(shadow_periods).where(and_(shadow_periods.c.id == period_id,
                                                              shadow_periods.c.stopped_at.is_(None)))
                            .values(stopped_at=at or now_utc()))
    return bool(done.rowcount)


def periods(store: Store) -> list[Period]:
    with store.engine.connect() as conn:
        return [Period(*row) for row in conn.execute(select(*_COLUMNS).order_by(shadow_periods.c.id.desc()))]


def period(store: Store, period_id: int) -> Period | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).where(shadow_periods.c.id == period_id)).first()
    return Period(*row) if row else None


def open_periods(store: Store, now: dt.datetime) -> list[Period]:
    return [p for p in periods(store) if p.open_at(now)]


_cache_lock = threading.Lock()
_compiled: dict[str, RuleSet] = {}


def version_rule_set(store: Store, version_id: int) -> RuleSet:
    """The compiled rule set of a stored version (its files' exact text), cached by version."""
    v = t.rule_set_versions.c
    with store.engine.connect() as conn:
        row = conn.execute(select(v.hash, v.files).where(v.id == version_id)).first()
    if row is None:
        raise ShadowError(f"no rule-set version {version_id}")
    key = f"{version_id}:{row[0]}"
    with _cache_lock:
        if key not in _compiled:
            with tempfile.TemporaryDirectory(prefix="crmsync-shadow-") as scratch:
                for name, text in dict(row[1]).items():
                    (Path(scratch) / name).write_text(str(text), encoding="utf-8")
                _compiled[key] = load_rules(scratch, author=f"version {version_id}")
        return _compiled[key]


def _base(record: Record, rule_sets: Sequence[RuleSet]) -> dict[str, Any]:
    """What the record holds now for the effects compared: its owner and every scoring output."""
    out: dict[str, Any] = {"owner_id": getattr(record, "owner_id", None)}
    for rs in rule_sets:
        for model in rs.scoring:
            if model.object_type != record.object_type:
                continue
            for ref in (model.score_ref, model.grade_ref, model.lifecycle_ref):
                if ref is not None and ref.path not in out:
                    try:
                        out[ref.path] = ref.getter(record, None)
                    except Exception:  # noqa: BLE001 - a getter that needs the context: not a base value
                        out[ref.path] = None
    return out


def _side_decisions(store: Store, rule_set: RuleSet, records: Sequence[Record], connection: str, now: dt.datetime,
                    known: set[str]) -> list[Decision]:
    """What one rule set newly decides for ``records``, as the live runner would (budget included)."""
    from crmsync.decide.runner import _closings, build_context

    ctx = build_context(store, [connection], now=now, known_keys=known)
    assert isinstance(ctx.routing_state, StoreRoutingState)  # read through, never flushed
    decisions = incremental(rule_set, records, ctx)
    policy = rule_set.task_policy
    if policy is not None:
        by_key = {(r.object_type.value, r.source_id): r for r in records}
        decisions = apply_budget(decisions, policy, today=ctx.today,
                                 record_of=lambda d: by_key.get((d.object_type, d.source_id)),
                                 created_today=created_today(store, [connection], ctx.now),
                                 open_tasks=open_crm_tasks(store, connection), known_keys=known).decisions
        if policy.close_when_resolved:  # the open crmsync tasks this set would complete
            decisions = decisions + _closings(store, rule_set, by_key, ctx, connection)
    return [d for d in decisions if d.idempotency_key not in known]


def _side_keys(store: Store, period_id: int, side: str, connection: str) -> set[str]:
    c = shadow_decisions.c
    with store.engine.connect() as conn:
        return {k for (k,) in conn.execute(select(c.idempotency_key).where(
            and_(c.period_id == period_id, c.side == side, c.connection == connection)))}


def _seen_any(store: Store, period_id: int, connection: str) -> bool:
    c = shadow_records.c
    with store.engine.connect() as conn:
        return bool(conn.execute(select(func.count()).select_from(shadow_records).where(
            and_(c.period_id == period_id, c.connection == connection))).scalar_one())


def _insert_ignore(conn: Any, table: Any, rows: list[dict[str, Any]], keys: list[str],
                   update_cols: dict[str, Any] | None = None) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    if update_cols:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={k: stmt.excluded[k] for k in update_cols})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, rows)


def run_shadow(store: Store, live: RuleSet, connection: str, changed: Sequence[tuple[str, str]], *,
               now: dt.datetime | None = None) -> list[ShadowRun]:
    """One cycle of every open shadow period for ``connection`` (call before the live rules run)."""
    from crmsync.decide.runner import OBJECT_NAMES, known_decision_keys
    from crmsync.sync.outbox import filter_echoes

    now = now or now_utc()
    runs: list[ShadowRun] = []
    for p in open_periods(store, now):
        shadow = version_rule_set(store, p.version_id)
        if _seen_any(store, p.id, connection):
            wanted = [(ot, sid) for ot, sid in dict.fromkeys(changed) if ot in OBJECT_NAMES]
            got = [store.get(ot, connection, sid) for ot, sid in wanted]
            records: list[Record] = filter_echoes(store, [r for r in got if r is not None and not r.deleted])
        else:
            records = [r for r in (*store.iter_records(ObjectType.LEAD, connection=connection),
                                   *store.iter_records(ObjectType.DEAL, connection=connection)) if not r.deleted]
        run = ShadowRun(p.id, evaluated=len(records))
        if not records:
            runs.append(run)
            continue
        base_known = known_decision_keys(store, [connection])
        rows: list[dict[str, Any]] = []
        for side, rule_set in (("live", live), ("shadow", shadow)):
            known = base_known | _side_keys(store, p.id, side, connection)
            for d in _side_decisions(store, rule_set, records, connection, now, known):
                rows.append({"period_id": p.id, "side": side, "connection": d.connection, "object_type": d.object_type,
                             "source_id": d.source_id, "rule_kind": d.rule_kind, "rule_name": d.rule_name,
                             "action": d.action, "fields": dict(d.fields), "reason": d.reason,
                             "idempotency_key": d.idempotency_key, "created_at": now})
                run.logged[side] += 1
        seen = [{"period_id": p.id, "connection": connection, "object_type": r.object_type.value,
                 "source_id": r.source_id, "base": _base(r, (live, shadow)), "first_evaluated_at": now,
                 "last_evaluated_at": now} for r in records]
        with store.engine.begin() as conn:
            _insert_ignore(conn, shadow_decisions, rows, ["period_id", "side", "idempotency_key"])
            _insert_ignore(conn, shadow_records, seen, ["period_id", "connection", "object_type", "source_id"],
                           update_cols={"last_evaluated_at": now})
        log.info("shadow.evaluated", connection=connection, period=p.id, evaluated=run.evaluated,
                 live=run.logged["live"], shadow=run.logged["shadow"])
        runs.append(run)
    return runs


def record_version(store: Store, directory: Path, *, author: str, note: str | None = None) -> int:
    """Record a rule directory (a draft, a candidate) as a version to shadow, without publishing it.
    Refused with the loader's issues when it does not load."""
    from crmsync.rules.loader import KINDS

    rule_set = load_rules(directory, author=author)
    files = {}
    for kind in KINDS:
        path = next((p for p in (directory / f"{kind}.yaml", directory / f"{kind}.yml") if p.exists()), None)
        if path is not None:
            files[path.name] = path.read_text(encoding="utf-8")
    with store.engine.begin() as conn:
        return int(conn.execute(insert(t.rule_set_versions).values(
            hash=rule_set.hash, author=author, note=note, origin="shadow", files=files,
            published_at=now_utc()).returning(t.rule_set_versions.c.id)).scalar_one())
