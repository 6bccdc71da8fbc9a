"""Stage hygiene: required fields per stage, days in stage, past close dates, missing amounts,
skipped or backward stage moves, no activity, probability inconsistent with the stage.

Each finding yields a ``finding`` decision (stored) and, when the rule asks, a ``create_task`` for
the owner. Keys carry the scope of the finding (the stage, the close date, the last activity), so
the same problem produces one task, not one per cycle; a new lapse produces a new one.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from crmsync.model import ObjectType
from crmsync.rules.conditions import ConditionError, FieldRef, Path, compile_condition, resolve_field
from crmsync.rules.decisions import CREATE_TASK, FINDING, Decision
from crmsync.rules.schema import HygieneFile, HygieneRule
from crmsync.rules.template import Template, compile_template

STAGE_KINDS = frozenset({"max_days_in_stage", "stage_skipped", "stage_backward", "probability_mismatch"})
Bound = Callable[[Any, list[Decision]], None]


def _missing(v: Any) -> bool:
    return v is None or v == "" or v == [] or (isinstance(v, str) and not v.strip())


def open_stage_order(ctx: Any, connection: str, pipeline_id: str | None) -> list[Any]:
    """Open stages of one pipeline in display order (cached on the context)."""

    def build() -> list[Any]:
        stages = [
            s
            for (conn, _), s in ctx.stages.items()
            if conn == connection and s.pipeline_id == pipeline_id and not s.is_closed and not s.deleted
        ]
        return sorted(stages, key=lambda s: (s.display_order, s.source_id))

    result: list[Any] = ctx.cached(("hygiene.order", connection, pipeline_id), build)
    return result


class CompiledHygieneRule:
    kind = "hygiene"

    def __init__(self, spec: HygieneRule, path: Path) -> None:
        self.spec = spec
        self.name = spec.name
        self.object_type = ObjectType(spec.object)
        ot = self.object_type
        if ot != ObjectType.DEAL and (spec.kind in STAGE_KINDS or spec.stages or spec.kind in ("close_date_past", "missing_amount")):
            raise ConditionError((*path, "kind"), f"{spec.kind} with stages works on deals only")
        self.when = compile_condition(ot, spec.when, (*path, "when")) if spec.when else None
        self.fields: tuple[FieldRef, ...] = ()
        refs = []
        for i, f in enumerate(spec.fields):
            try:
                refs.append(resolve_field(ot, f))
            except ValueError as exc:
                raise ConditionError((*path, "fields", i), str(exc)) from exc
        self.fields = tuple(refs)
        self._field_getters = tuple((f.path, f.getter) for f in refs)
        self.stage_names = frozenset(s.strip().lower() for s in spec.stages)
        self.days = spec.days
        self._max_days_text = f" days in stage (max {self.days:g})" if self.days is not None else ""
        self.tolerance = float(spec.tolerance)
        self._ot = ot.value
        self._id_field = f"{ot.value}_id"
        self._key_prefix = f"hygiene:{self.name}:"
        self._task_prefix = f"hygiene-task:{self.name}:"
        self._severity = spec.severity
        self._task = spec.task
        self.subject: Template | None = None
        if spec.task_subject:
            try:
                self.subject = compile_template(ot, spec.task_subject)
            except ValueError as exc:
                raise ConditionError((*path, "task_subject"), str(exc)) from exc

    def _stage_ids(self, ctx: Any) -> frozenset[str] | None:
        if not self.stage_names:
            return None
        return frozenset(
            s.source_id
            for s in ctx.stages.values()
            if s.source_id.lower() in self.stage_names or (s.name or "").strip().lower() in self.stage_names
        )

    def bind(self, ctx: Any, rule_set: str) -> Bound:
        """A per-evaluation checker with stage sets resolved against this context's stages."""
        stage_ids = self._stage_ids(ctx)
        check = self.bind_unfiltered(ctx, rule_set) or _nothing
        if self.object_type != ObjectType.DEAL:
            return check

        def run(record: Any, out: list[Decision]) -> None:
            if stage_ids is None:
                if record.is_closed:
                    return
            elif record.stage_id not in stage_ids:
                return
            check(record, out)

        return run

    def bind_unfiltered(self, ctx: Any, rule_set: str) -> Bound | None:
        """The check without the stage filter (``bind_rules`` dispatches on the stage instead);
        None when it cannot find anything in this context (stage moves without previous versions)."""
        if self.spec.kind in ("stage_skipped", "stage_backward") and not ctx.previous:
            return None
        when = self.when
        check = getattr(self, f"_check_{self.spec.kind}")
        emit = self._emitter(ctx, rule_set)

        if when is None:

            def run(record: Any, out: list[Decision]) -> None:
                found = check(record, ctx)
                if found is not None:
                    emit(record, out, found[0], found[1])

        else:

            def run(record: Any, out: list[Decision]) -> None:
                if not when(record, ctx):
                    return
                found = check(record, ctx)
                if found is not None:
                    emit(record, out, found[0], found[1])

        return run

    def _emitter(self, ctx: Any, rule_set: str) -> Callable[[Any, list[Decision], str, str], None]:
        """Appends the finding and, when the rule asks and the record has an owner, the task
        (each unless its key is already known)."""
        name, ot, id_field = self.name, self._ot, self._id_field
        key_prefix, task_prefix = self._key_prefix, self._task_prefix
        severity, fixed, want_task, subject = self._severity, self.spec.message, self._task, self.subject
        due = ctx.today + dt.timedelta(days=self.spec.due_in_days)
        known = ctx.known_keys

        def emit(r: Any, out: list[Decision], scope: str, message: str) -> None:
            conn = r.connection
            sid = r.source_id
            owner = r.owner_id
            tail = f"{conn}:{sid}:{scope}"
            key = key_prefix + tail
            if fixed:
                message = fixed
            if key not in known:
                out.append(
                    Decision(
                        "hygiene", name, ot, conn, sid, FINDING,
                        {"severity": severity, "message": message, "owner_id": owner, "scope": scope},
                        message, key, rule_set,
                    )
                )
            if want_task and owner:
                task_key = task_prefix + tail
                if task_key in known:
                    return
                out.append(
                    Decision(
                        "hygiene", name, ot, conn, sid, CREATE_TASK,
                        {"subject": subject(r, ctx) if subject is not None else "Fix: " + message, "owner_id": owner,
                         "due_date": due, id_field: sid, "crmsync_key": task_key, "severity": severity},
                        message, task_key, rule_set,
                    )
                )

        return emit

    # each check returns (scope for the idempotency key, message) or None
    def _check_required_fields(self, r: Any, ctx: Any) -> tuple[str, str] | None:
        missing = [
            path for path, get in self._field_getters
            if (v := get(r, ctx)) is None or v == "" or v == [] or (isinstance(v, str) and not v.strip())
        ]
        if not missing:
            return None
        return f"{getattr(r, 'stage_id', None) or '-'}", f"missing {', '.join(missing)}" + self._in_stage(r, ctx)

    def _check_max_days_in_stage(self, r: Any, ctx: Any) -> tuple[str, str] | None:
        since = r.stage_changed_at or r.created_at
        if since is None or self.days is None:
            return None
        days = (ctx.now - since).total_seconds() / 86400.0
        if days <= self.days:
            return None
        return f"{r.stage_id or '-'}", f"{days:.0f}" + self._max_days_text + self._in_stage(r, ctx)

    def _check_close_date_past(self, r: Any, ctx: Any) -> tuple[str, str] | None:
        if r.is_closed or r.close_date is None or r.close_date >= ctx.today:
            return None
        day = r.close_date.isoformat()
        return day, f"open deal with close date {day} in the past"

    def _check_missing_amount(self, r: Any, ctx: Any) -> tuple[str, str] | None:
        if r.amount is not None and r.amount != 0:
            return None
        return f"{r.stage_id or '-'}", ("zero amount" if r.amount is not None else "missing amount") + self._in_stage(r, ctx)

    def _moves(self, r: Any, ctx: Any) -> tuple[Any, Any, list[Any]] | None:
        prev = ctx.previous_of(r)
        if prev is None or prev.stage_id == r.stage_id or prev.stage_id is None or r.stage_id is None:
            return None
        before = ctx.stage(r.connection, prev.stage_id)
        after = ctx.stage(r.connection, r.stage_id)
        if before is None or after is None or before.pipeline_id != after.pipeline_id:
            return None
        return before, after, open_stage_order(ctx, r.connection, after.pipeline_id)

    def _check_stage_skipped(self, r: Any, ctx: Any) -> tuple[str, str] | None:
        moved = self._moves(r, ctx)
        if moved is None:
            return None
        before, after, order = moved
        if after.is_closed or before.display_order >= after.display_order:
            return None
        skipped = [s.name for s in order if before.display_order < s.display_order < after.display_order]
        if not skipped:
            return None
        return f"{before.source_id}->{after.source_id}", f"moved {before.name} -> {after.name}, skipping {', '.join(skipped)}"

    def _check_stage_backward(self, r: Any, ctx: Any) -> tuple[str, str] | None:
        moved = self._moves(r, ctx)
        if moved is None:
            return None
        before, after, _ = moved
        if before.is_closed or after.is_closed or after.display_order >= before.display_order:
            return None
        return f"{before.source_id}->{after.source_id}", f"moved backward {before.name} -> {after.name}"

    def _check_no_activity(self, r: Any, ctx: Any) -> tuple[str, str] | None:
        last = r.last_activity_at or r.created_at
        if last is None or self.days is None:
            return None
        days = (ctx.now - last).total_seconds() / 86400.0
        if days <= self.days:
            return None
        label = "last activity" if r.last_activity_at else "created, no activity since"
        day = last.date().isoformat()
        return day, f"no activity for {days:.0f} days ({label} {day})"

    def _check_probability_mismatch(self, r: Any, ctx: Any) -> tuple[str, str] | None:
        if r.probability is None:
            return None
        stage = ctx.stage(r.connection, r.stage_id)
        if stage is None or stage.probability is None:
            return None
        diff = abs(float(r.probability) - float(stage.probability))
        if diff <= self.tolerance:
            return None
        return (
            f"{r.stage_id}:{r.probability}",
            f"probability {float(r.probability):.0%} vs {float(stage.probability):.0%} expected in {stage.name}",
        )

    def _check_condition(self, r: Any, ctx: Any) -> tuple[str, str] | None:
        return f"{getattr(r, 'stage_id', None) or '-'}", self.spec.message or f"matches {self.name}"

    def _in_stage(self, r: Any, ctx: Any) -> str:
        stage = ctx.stage(r.connection, getattr(r, "stage_id", None))
        return f" in stage {stage.name}" if stage is not None else ""

    def explain(self, record: Any, ctx: Any) -> dict[str, Any]:
        out: list[Decision] = []
        self.bind(ctx, "")(record, out)
        found = [d for d in out if d.action == FINDING]
        return {
            "kind": "hygiene",
            "rule": self.name,
            "result": "finding" if found else "ok",
            "detail": found[0].fields["message"] if found else self.spec.kind,
        }


def _nothing(record: Any, out: list[Decision]) -> None:
    return None


def bind_rules(rules: Iterable[CompiledHygieneRule], ctx: Any, rule_set: str, object_type: ObjectType) -> Bound:
    """All hygiene checks for one object type as one callable. For deals the checks are indexed by
    stage once per evaluation, so each record only runs the rules that apply to its stage."""
    mine = [r for r in rules if r.object_type == object_type]
    bound = [(r, b) for r in mine if (b := r.bind_unfiltered(ctx, rule_set)) is not None]
    if object_type != ObjectType.DEAL:
        checks = tuple(b for _, b in bound)

        def run_all(record: Any, out: list[Decision]) -> None:
            for check in checks:
                check(record, out)

        return run_all
    any_open = tuple(b for r, b in bound if not r.stage_names)
    stage_sets = [(r._stage_ids(ctx), b) for r, b in bound if r.stage_names]
    stage_ids = {s.source_id for s in ctx.stages.values()}
    for ids, _ in stage_sets:
        stage_ids |= ids or set()
    when_open: dict[str | None, tuple[Bound, ...]] = {}
    when_closed: dict[str | None, tuple[Bound, ...]] = {}
    for sid in stage_ids:
        specific = tuple(b for ids, b in stage_sets if ids is not None and sid in ids)
        when_open[sid] = specific + any_open
        when_closed[sid] = specific
    open_get, closed_get = when_open.get, when_closed.get
    empty: tuple[Bound, ...] = ()

    def run_deal(record: Any, out: list[Decision]) -> None:
        if record.is_closed:
            for check in closed_get(record.stage_id, empty):
                check(record, out)
        else:
            for check in open_get(record.stage_id, any_open):
                check(record, out)

    return run_deal


def compile_hygiene(spec: HygieneFile) -> list[CompiledHygieneRule]:
    names: set[str] = set()
    rules = []
    for i, r in enumerate(spec.rules):
        if r.name in names:
            raise ConditionError(("rules", i, "name"), f"duplicate rule name {r.name!r}")
        names.add(r.name)
        rules.append(CompiledHygieneRule(r, ("rules", i)))
    return rules


def digest(decisions: Iterable[Decision]) -> dict[str, list[dict[str, Any]]]:
    """Findings grouped by owner (``-`` when unowned), most severe first, for a daily digest."""
    order = {"critical": 0, "warning": 1, "info": 2}
    by_owner: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in decisions:
        if d.action != FINDING:
            continue
        by_owner[d.fields.get("owner_id") or "-"].append(
            {
                "rule": d.rule_name,
                "object": d.object_type,
                "connection": d.connection,
                "source_id": d.source_id,
                "severity": d.fields.get("severity", "warning"),
                "message": d.fields.get("message", ""),
            }
        )
    for rows in by_owner.values():
        rows.sort(key=lambda row: (order.get(row["severity"], 3), row["rule"], row["source_id"]))
    return dict(sorted(by_owner.items()))
