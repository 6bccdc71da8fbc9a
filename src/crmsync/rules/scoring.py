"""Scoring: points per condition, caps per group, fit and engagement parts, decay by days since
the last activity, grades and lifecycle transitions; plus the optional predictive probability.

Scores are whole numbers (Decimal); a decision is emitted only when the score, grade, lifecycle
stage or predicted probability differs from what the record already holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from crmsync.model import ObjectType
from crmsync.rules.conditions import (
    FieldRef,
    Path,
    Predicate,
    _as_number,
    compile_condition,
    condition_fields,
    resolve_field,
)
from crmsync.rules.decisions import SET_FIELDS, Decision
from crmsync.rules.predictive import FieldContribution, NaiveBayesModel
from crmsync.rules.schema import ScoringFile, ScoringModel


@dataclass(frozen=True, slots=True)
class CompiledScoreRule:
    name: str
    points: float
    pred: Predicate
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledGroup:
    name: str
    part: str
    cap: float | None
    rules: tuple[CompiledScoreRule, ...]


@dataclass(frozen=True, slots=True)
class CompiledTransition:
    name: str
    from_: frozenset[str | None]
    to: str
    min_score: float | None
    grades: frozenset[str] | None
    pred: Predicate | None


@dataclass(slots=True)
class ScoreResult:
    fit: float
    engagement: float
    decay_factor: float
    days_since_activity: float | None
    total: int
    grade: str | None
    lifecycle: str | None
    matched: list[tuple[str, str]]  # (group, "rule +points"); ("lifecycle", transition name)
    capped: list[str]
    probability: float | None = None
    contributions: list[FieldContribution] | None = None


def _num_equal(current: Any, new: Any) -> bool:
    if current is None:
        return new is None
    cur = _as_number(current)
    return cur is not None and cur == new


class CompiledScoringModel:
    kind = "scoring"

    def __init__(self, spec: ScoringModel, path: Path) -> None:
        self.spec = spec
        self.name = spec.name
        self.object_type = ObjectType(spec.object)
        ot = self.object_type
        self.applies = compile_condition(ot, spec.when, (*path, "when")) if spec.when else None
        self.score_ref = _ref(ot, spec.score_field, (*path, "score_field"))
        self._score_get = self.score_ref.getter
        self.grade_ref = _ref(ot, spec.grade_field, (*path, "grade_field")) if spec.grade_field else None
        groups = []
        for gi, g in enumerate(spec.groups):
            rules = tuple(
                CompiledScoreRule(
                    r.name,
                    float(r.points),
                    compile_condition(ot, r.when, (*path, "groups", gi, "rules", ri, "when")),
                    tuple(condition_fields(r.when)),
                )
                for ri, r in enumerate(g.rules)
            )
            groups.append(CompiledGroup(g.name, g.part, None if g.cap is None else float(g.cap), rules))
        self.groups = tuple(groups)
        # flat evaluation plan: (is_fit, cap, group name, ((pred, points, (group name, "rule +points")), ...))
        self._plan = tuple(
            (g.part == "fit", g.cap, g.name, tuple((r.pred, r.points, (g.name, f"{r.name} {r.points:+g}")) for r in g.rules))
            for g in self.groups
        )
        self._ot = ot.value
        self._key_prefix = f"score:{self.name}:"
        self._heads: dict[tuple[float, float, float], str] = {}
        self.rule_count = sum(len(g.rules) for g in groups)
        self.decay_ref: FieldRef | None = None
        self.decay_steps: tuple[tuple[float, float], ...] = ()
        if spec.decay:
            self.decay_ref = _ref(ot, spec.decay.field, (*path, "decay", "field"))
            self._decay_get = self.decay_ref.getter
            if self.decay_ref.kind not in ("date", "datetime"):
                raise _err((*path, "decay", "field"), f"decay field must be a date or timestamp, got {self.decay_ref.kind}")
            self.decay_steps = tuple((s.after_days, float(s.factor)) for s in reversed(spec.decay.steps))
            self.decay_missing = float(spec.decay.missing_factor)
            self.decay_total = spec.decay.applies_to == "total"
        self.grades = tuple((float(g.min), g.grade) for g in spec.grades)
        self.lifecycle_ref: FieldRef | None = None
        self.transitions: tuple[CompiledTransition, ...] = ()
        self.lifecycle_stages: tuple[str, ...] = ()
        if spec.lifecycle:
            self.lifecycle_stages = tuple(spec.lifecycle.stages)
            self.lifecycle_ref = _ref(ot, spec.lifecycle.field, (*path, "lifecycle", "field"))
            self.transitions = tuple(
                CompiledTransition(
                    t.name,
                    frozenset(t.from_),
                    t.to,
                    None if t.min_score is None else float(t.min_score),
                    None if t.grades is None else frozenset(t.grades),
                    compile_condition(ot, t.when, (*path, "lifecycle", "transitions", ti, "when")) if t.when else None,
                )
                for ti, t in enumerate(spec.lifecycle.transitions)
            )
        self.predictive = spec.predictive
        self.predictive_ref: FieldRef | None = None
        if spec.predictive:
            self.predictive_ref = _ref(ot, spec.predictive.target_field, (*path, "predictive", "target_field"))
            for fi, f in enumerate(spec.predictive.fields):
                _ref(ot, f, (*path, "predictive", "fields", fi))

    # ------------------------------------------------------------------ scoring
    def _compute(self, record: Any, ctx: Any) -> tuple[Any, ...]:
        """The score without the result object: (fit, engagement, decay factor, days since the
        activity, total, grade, lifecycle, matched, capped). ``score`` and ``evaluate`` share it."""
        fit = 0.0
        engagement = 0.0
        matched: list[tuple[str, str]] = []
        capped: list[str] = []
        hit = matched.append
        for is_fit, cap, gname, rules in self._plan:
            pts = 0.0
            for pred, points, pair in rules:
                if pred(record, ctx):
                    pts += points
                    hit(pair)
            if cap is not None and pts > cap:
                pts = cap
                capped.append(gname)
            if is_fit:
                fit += pts
            else:
                engagement += pts
        factor, days = self._decay(record, ctx) if self.decay_ref is not None else (1.0, None)
        if self.decay_ref is not None and self.decay_total:
            fit *= factor
        total = round(fit + engagement * factor)
        grade = None
        for minimum, name in self.grades:
            if total >= minimum:
                grade = name
                break
        lifecycle = None
        if self.lifecycle_ref is not None:
            lifecycle = self._lifecycle(record, ctx, total, grade, matched)
        return fit, engagement, factor, days, total, grade, lifecycle, matched, capped

    def _decay(self, record: Any, ctx: Any) -> tuple[float, float | None]:
        """(decay factor, days since the last activity); the missing-activity factor when unknown."""
        last = self._decay_get(record, ctx)
        if last is None:
            return self.decay_missing, None
        if hasattr(last, "hour"):
            days = (ctx.now - last).total_seconds() / 86400.0
        else:
            days = float((ctx.today - last).days)
        factor = 1.0
        for after, f in self.decay_steps:
            if days >= after:
                factor = f
                break
        return factor, days

    def _lifecycle(self, record: Any, ctx: Any, total: int, grade: str | None,
                   matched: list[tuple[str, str]]) -> Any:
        """The lifecycle stage after the first transition that applies (noted in ``matched``)."""
        assert self.lifecycle_ref is not None
        current = self.lifecycle_ref.get(record, ctx)
        for t in self.transitions:
            if (current in t.from_ and (t.min_score is None or total >= t.min_score)
                    and (t.grades is None or grade in t.grades) and (t.pred is None or t.pred(record, ctx))):
                matched.append(("lifecycle", t.name))
                return t.to
        return current

    def _predict(self, ctx: Any) -> NaiveBayesModel | None:
        model = ctx.predictive.get(self.name) if self.predictive is not None else None
        if isinstance(model, NaiveBayesModel) and model.samples >= self.predictive.min_samples:  # type: ignore[union-attr]
            return model
        return None

    def score(self, record: Any, ctx: Any, *, explain: bool = False) -> ScoreResult:
        result = ScoreResult(*self._compute(record, ctx))
        model = self._predict(ctx)
        if model is not None:
            prob, parts = model.predict(record, ctx)
            result.probability = prob
            result.contributions = parts
        return result

    def evaluate(self, record: Any, ctx: Any, out: list[Decision], rule_set: str) -> None:
        if self.applies is not None and not self.applies(record, ctx):
            return
        fit, engagement, factor, days, total, grade, lifecycle, matched, capped = self._compute(record, ctx)
        fields: dict[str, Any] = {}
        score = _decimal(total)
        if not _num_equal(self._score_get(record, ctx), score):
            fields[self.score_ref.path] = score
        if self.grade_ref is not None and self.grade_ref.getter(record, ctx) != grade:
            fields[self.grade_ref.path] = grade
        if self.lifecycle_ref is not None and self.lifecycle_ref.getter(record, ctx) != lifecycle:
            fields[self.lifecycle_ref.path] = lifecycle
        probability: float | None = None
        prob: Decimal | None = None
        model = self._predict(ctx) if self.predictive is not None else None
        if model is not None:
            probability = model.predict(record, ctx)[0]
            if self.predictive_ref is not None:
                prob = Decimal(round(probability, 3)).quantize(Decimal("0.001"))
                if not _num_equal(self.predictive_ref.get(record, ctx), prob):
                    fields[self.predictive_ref.path] = prob
        if not fields:
            return
        key = f"{self._key_prefix}{record.connection}:{record.source_id}:{total}:{grade}:{lifecycle}:{prob}"
        if key in ctx.known_keys:
            return
        out.append(
            Decision(
                "scoring",
                self.name,
                self._ot,
                record.connection,
                record.source_id,
                SET_FIELDS,
                fields,
                self._reason(fit, engagement, factor, days, total, grade, lifecycle, matched, capped, probability),
                key,
                rule_set,
            )
        )

    def _head(self, fit: float, engagement: float, factor: float) -> str:
        """``fit F + engagement E`` (and `` x decay D (last activity ``), memoised per triple of
        non-zero values (few distinct ones occur; 0.0 and -0.0 would share a key but print apart)."""
        key = (fit, engagement, factor)
        text = self._heads.get(key)
        if text is None:
            text = f"fit {_g(fit)} + engagement {_g(engagement)}"
            if self.decay_ref is not None:
                text += f" x decay {_g(factor)} (last activity "
            if fit and engagement and factor and len(self._heads) < 4096:
                self._heads[key] = text
        return text

    def reason(self, res: ScoreResult) -> str:
        return self._reason(res.fit, res.engagement, res.decay_factor, res.days_since_activity, res.total, res.grade,
                            res.lifecycle, res.matched, res.capped, res.probability)

    def _reason(
        self,
        fit: float,
        engagement: float,
        factor: float,
        days: float | None,
        total: int,
        grade: str | None,
        lifecycle: str | None,
        matched: list[tuple[str, str]],
        capped: list[str],
        probability: float | None,
    ) -> str:
        hits = ", ".join([label for g, label in matched if g != "lifecycle"]) or "no rule matched"
        text = self._head(fit, engagement, factor)
        if self.decay_ref is not None:
            text += ("never" if days is None else f"{days:.0f}d") + ")"
        text += f" = {total} [{hits}]"
        if capped:
            text += f" capped: {', '.join(capped)}"
        if grade is not None:
            text += f"; grade {grade}"
        moves = [rule for g, rule in matched if g == "lifecycle"]
        if moves:
            text += f"; lifecycle -> {lifecycle} ({moves[0]})"
        if probability is not None:
            text += f"; predicted win {probability:.1%}"
        return text

    def explain(self, record: Any, ctx: Any) -> list[dict[str, Any]]:
        """One row per scoring rule (matched or not), then decay, totals and predictive fields."""
        rows: list[dict[str, Any]] = []
        res = self.score(record, ctx)
        hit = {(g, label.rsplit(" ", 1)[0]) for g, label in res.matched}
        for g in self.groups:
            for r in g.rules:
                values = ", ".join(f"{f}={_show(resolve_field(self.object_type, f).get(record, ctx))}" for f in r.fields)
                rows.append(
                    {
                        "kind": "scoring",
                        "rule": f"{self.name}/{g.name}/{r.name}",
                        "result": f"{r.points:+g}" if (g.name, r.name) in hit else "no",
                        "detail": values,
                    }
                )
        rows.append({"kind": "scoring", "rule": f"{self.name}/total", "result": str(res.total), "detail": self.reason(res)})
        for c in res.contributions or []:
            rows.append(
                {
                    "kind": "predictive",
                    "rule": f"{self.name}/{c.field}",
                    "result": f"x{c.ratio:.2f}",
                    "detail": f"value {c.value!r}: P(won)={c.p_won:.3f} P(lost)={c.p_lost:.3f}",
                }
            )
        return rows


_FLOAT_TEXT: dict[float, str] = {}
_DECIMALS: dict[int, Decimal] = {}


def _decimal(n: int) -> Decimal:
    """``Decimal(n)``, shared for the few totals that occur (Decimals are immutable)."""
    d = _DECIMALS.get(n)
    if d is None:
        d = Decimal(n)
        if len(_DECIMALS) < 4096:
            _DECIMALS[n] = d
    return d


def _g(x: float) -> str:
    """``f"{x:g}"``, memoised: scores are sums of a few point values, so few distinct floats occur
    (zero is never cached: 0.0 and -0.0 are equal keys but print differently)."""
    text = _FLOAT_TEXT.get(x)
    if text is None:
        text = f"{x:g}"
        if x and len(_FLOAT_TEXT) < 4096:
            _FLOAT_TEXT[x] = text
    return text


def _show(v: Any) -> str:
    return "-" if v is None else str(v)


def _err(path: Path, message: str) -> Exception:
    from crmsync.rules.conditions import ConditionError

    return ConditionError(path, message)


def _ref(object_type: ObjectType, path_text: str, path: Path) -> FieldRef:
    try:
        return resolve_field(object_type, path_text)
    except ValueError as exc:
        raise _err(path, str(exc)) from exc


def compile_scoring(spec: ScoringFile) -> list[CompiledScoringModel]:
    names = set()
    models = []
    for i, m in enumerate(spec.models):
        if m.name in names:
            raise _err(("models", i, "name"), f"duplicate model name {m.name!r}")
        names.add(m.name)
        models.append(CompiledScoringModel(m, ("models", i)))
    return models
