"""Typed schema of the rule files (one YAML file per kind under ``config/rules/``).

Conditions are kept as plain mappings here and compiled (and checked field by field) by
``crmsync.rules.conditions``; everything else is validated by these models.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ObjectKind = Literal["deal", "lead"]
Condition = dict[str, Any]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------- scoring
class ScoreRule(_Base):
    name: str
    points: Decimal
    when: Condition


class ScoreGroup(_Base):
    name: str
    part: Literal["fit", "engagement"]
    cap: Decimal | None = Field(default=None, ge=0)
    rules: list[ScoreRule] = Field(min_length=1)


class DecayStep(_Base):
    after_days: float = Field(ge=0)
    factor: Decimal = Field(ge=0, le=1)


class Decay(_Base):
    field: str = "last_activity_at"
    applies_to: Literal["engagement", "total"] = "engagement"
    steps: list[DecayStep] = Field(min_length=1)
    # factor when the record has no activity date at all
    missing_factor: Decimal = Field(default=Decimal(1), ge=0, le=1)

    @field_validator("steps")
    @classmethod
    def _ascending(cls, steps: list[DecayStep]) -> list[DecayStep]:
        days = [s.after_days for s in steps]
        if days != sorted(days):
            raise ValueError("decay steps must be in ascending after_days order")
        return steps


class GradeBand(_Base):
    grade: str
    min: Decimal


class Transition(_Base):
    name: str
    from_: list[str | None] = Field(alias="from", min_length=1)  # null: no lifecycle stage yet
    to: str
    min_score: Decimal | None = None
    grades: list[str] | None = None
    when: Condition | None = None


class Lifecycle(_Base):
    field: str
    transitions: list[Transition] = Field(min_length=1)
    # The funnel's steps in order (``crmsync report lifecycle``): the transitions move a lead between
    # the first ones; the last two are reached by conversion (an opportunity) and by winning it.
    stages: list[str] = Field(default_factory=lambda: ["lead", "mql", "sql", "opportunity", "customer"],
                              min_length=3)


class PredictiveConfig(_Base):
    fields: list[str] = Field(min_length=1)
    target_field: str
    min_samples: int = Field(default=20, ge=2)
    alpha: float = Field(default=1.0, gt=0)  # Laplace smoothing


class ScoringModel(_Base):
    name: str
    object: ObjectKind
    when: Condition | None = None
    score_field: str
    grade_field: str | None = None
    groups: list[ScoreGroup] = Field(min_length=1)
    decay: Decay | None = None
    grades: list[GradeBand] = Field(default_factory=list)
    lifecycle: Lifecycle | None = None
    predictive: PredictiveConfig | None = None

    @field_validator("grades")
    @classmethod
    def _descending(cls, grades: list[GradeBand]) -> list[GradeBand]:
        mins = [g.min for g in grades]
        if mins != sorted(mins, reverse=True):
            raise ValueError("grades must be listed from the highest min to the lowest")
        return grades


class ScoringFile(_Base):
    version: Literal[1] = 1
    models: list[ScoringModel] = Field(default_factory=list)


# ---------------------------------------------------------------- routing
class Member(_Base):
    owner: str
    weight: int = Field(default=1, ge=1, le=1000)
    capacity_per_day: int | None = Field(default=None, ge=0)
    capacity_per_month: int | None = Field(default=None, ge=0)


class Fallback(_Base):
    pool: str | None = None
    owner: str | None = None  # a queue or a named person
    manager: bool = False  # the pool's manager

    @model_validator(mode="after")
    def _one(self) -> Fallback:
        chosen = [x for x in (self.pool, self.owner, self.manager or None) if x]
        if len(chosen) != 1:
            raise ValueError("fallback needs exactly one of pool, owner, manager: true")
        return self


class Pool(_Base):
    name: str
    connection: str | None = None
    strategy: Literal["round_robin", "weighted", "fewest_open"] = "round_robin"
    members: list[Member] = Field(default_factory=list)
    # members may also come from the owners' team (resolved per connection at evaluation time)
    teams: list[str] = Field(default_factory=list)
    team_weight: int = Field(default=1, ge=1, le=1000)
    respect_working_hours: bool = True
    manager: str | None = None
    fallback: Fallback | None = None

    @model_validator(mode="after")
    def _has_members(self) -> Pool:
        if not self.members and not self.teams:
            raise ValueError("a pool needs `members` or `teams`")
        return self


class Territory(_Base):
    field: str
    map: dict[str, str] = Field(min_length=1)  # field value -> pool name
    default: str | None = None


MatchBy = Literal["account", "domain", "company"]
_MATCH_ALL: tuple[MatchBy, ...] = ("account", "domain", "company")


class RoutingRule(_Base):
    name: str
    object: ObjectKind
    when: Condition | None = None
    strategy: Literal["pool", "territory", "account_match", "sticky_owner"] = "pool"
    pool: str | None = None
    territory: Territory | None = None
    match_by: list[MatchBy] = Field(default_factory=lambda: list(_MATCH_ALL))

    @model_validator(mode="after")
    def _targets(self) -> RoutingRule:
        if self.strategy == "pool" and not self.pool:
            raise ValueError("strategy pool needs `pool`")
        if self.strategy == "territory" and self.territory is None:
            raise ValueError("strategy territory needs `territory`")
        return self


class Sla(_Base):
    name: str
    object: ObjectKind
    hours: float = Field(gt=0)
    when: Condition | None = None
    pool: str | None = None  # default: the pool that made the assignment


class RoutingFile(_Base):
    version: Literal[1] = 1
    # owners that mean "not yet assigned" (queues, integration users)
    unassigned_owner_ids: list[str] = Field(default_factory=list)
    reroute_inactive_owner: bool = True
    pools: list[Pool] = Field(default_factory=list)
    rules: list[RoutingRule] = Field(default_factory=list)
    sla: list[Sla] = Field(default_factory=list)


# ---------------------------------------------------------------- hygiene
HygieneKind = Literal[
    "required_fields",
    "max_days_in_stage",
    "close_date_past",
    "missing_amount",
    "stage_skipped",
    "stage_backward",
    "no_activity",
    "probability_mismatch",
    "condition",
]


class HygieneRule(_Base):
    name: str
    kind: HygieneKind
    object: ObjectKind = "deal"
    stages: list[str] = Field(default_factory=list)  # stage names or ids; empty = every open stage
    fields: list[str] = Field(default_factory=list)
    days: float | None = Field(default=None, gt=0)
    tolerance: Decimal = Field(default=Decimal("0.2"), ge=0, le=1)
    when: Condition | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str | None = None
    task: bool = True
    task_subject: str | None = None
    due_in_days: int = Field(default=2, ge=0)

    @model_validator(mode="after")
    def _kind_args(self) -> HygieneRule:
        if self.kind == "required_fields" and not self.fields:
            raise ValueError("required_fields needs `fields`")
        if self.kind in ("max_days_in_stage", "no_activity") and self.days is None:
            raise ValueError(f"{self.kind} needs `days`")
        if self.kind == "condition" and not self.when:
            raise ValueError("condition needs `when`")
        return self


class SeverityTask(_Base):
    priority: Literal["low", "normal", "high"]
    due_in_days: int = Field(ge=0, le=365)


Severity = Literal["info", "warning", "critical"]


def _default_severity() -> dict[Severity, SeverityTask]:
    return {"critical": SeverityTask(priority="high", due_in_days=1),
            "warning": SeverityTask(priority="normal", due_in_days=3),
            "info": SeverityTask(priority="low", due_in_days=7)}


class TaskPolicy(_Base):
    """How hygiene findings become CRM tasks: bundled, capped per owner per day, closed when resolved.

    Handoff and renewal tasks are outside the policy: never bundled, capped or dropped."""

    # none: one task per finding; per_deal: one task per deal listing its findings;
    # per_owner: one task per owner per day listing every finding, most money at stake first
    bundle: Literal["none", "per_deal", "per_owner"] = "none"
    daily_cap_per_owner: int | None = Field(default=None, ge=1)  # hygiene tasks created per owner per day
    close_when_resolved: bool = False
    severity: dict[Severity, SeverityTask] = Field(default_factory=_default_severity)

    @model_validator(mode="after")
    def _every_severity(self) -> TaskPolicy:
        missing = {"info", "warning", "critical"} - set(self.severity)
        if missing:
            raise ValueError(f"severity needs an entry for {', '.join(sorted(missing))}")
        return self


class HygieneFile(_Base):
    version: Literal[1] = 1
    rules: list[HygieneRule] = Field(default_factory=list)
    tasks: TaskPolicy | None = None  # without it each finding is its own task, as before


# ---------------------------------------------------------------- handoff
class TaskSpec(_Base):
    subject: str
    due_in_days: int = Field(default=3, ge=0)


class HandoffConfig(_Base):
    name: str = "closed_won_handoff"
    when: Condition | None = None  # in addition to: deal is won
    sections: dict[
        Literal["use_case", "success_criteria", "stakeholders", "timeline", "technical", "expansion"], list[str]
    ] = Field(min_length=1)
    required: list[str] = Field(default_factory=list)
    cs_pool: str | None = None
    task: TaskSpec | None = None
    note: bool = True


class HandoffFile(_Base):
    version: Literal[1] = 1
    handoff: HandoffConfig | None = None


# ---------------------------------------------------------------- renewal
class CheckIn(_Base):
    days_before_end: int = Field(ge=0)
    subject: str


class RenewalConfig(_Base):
    name: str = "renewal"
    window_days: int = Field(default=90, ge=60, le=90)
    source: Literal["contract_end", "subscription", "either"] = "either"
    when: Condition | None = None  # in addition to: deal is won
    opportunity_name: str = "Renewal: {name}"
    stage: str | None = None
    owner: Literal["deal_owner", "pool"] = "deal_owner"
    pool: str | None = None
    check_ins: list[CheckIn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pool(self) -> RenewalConfig:
        if self.owner == "pool" and not self.pool:
            raise ValueError("owner: pool needs `pool`")
        return self


class RenewalFile(_Base):
    version: Literal[1] = 1
    renewal: RenewalConfig | None = None


# ---------------------------------------------------------------- health
class HealthWeights(_Base):
    usage: Decimal = Field(default=Decimal(40), ge=0)
    onboarding: Decimal = Field(default=Decimal(20), ge=0)
    billing: Decimal = Field(default=Decimal(25), ge=0)
    engagement: Decimal = Field(default=Decimal(15), ge=0)


class HealthUsage(_Base):
    metric: str = "active_seats"  # the metered component compared with the plan limit
    healthy_share: Decimal = Field(default=Decimal("0.6"), gt=0, le=2)  # at or above: full points
    low_share: Decimal = Field(default=Decimal("0.2"), ge=0, le=2)  # at or below: no points

    @model_validator(mode="after")
    def _order(self) -> HealthUsage:
        if self.low_share >= self.healthy_share:
            raise ValueError("low_share must be below healthy_share")
        return self


class Milestone(_Base):
    name: str
    days_after_start: int = Field(ge=0, le=3650)
    call: bool = False  # reached when a call was held on or after the contract start
    usage_share: Decimal | None = Field(default=None, ge=0, le=2)  # reached when usage reaches this share

    @model_validator(mode="after")
    def _test(self) -> Milestone:
        if not self.call and self.usage_share is None:
            raise ValueError("a milestone needs `call: true` or `usage_share`")
        return self


class HealthOnboarding(_Base):
    milestones: list[Milestone] = Field(default_factory=list)
    check_in_days_before: int = Field(default=7, ge=0, le=90)  # check-in task this long before a milestone
    check_in_subject: str = "Check-in: {milestone} for {name}"


class HealthBilling(_Base):
    overdue_penalty: Decimal = Field(default=Decimal(1), ge=0, le=1)  # share lost per overdue invoice


class HealthEngagement(_Base):
    recent_days: int = Field(default=45, ge=1, le=365)  # a call or meeting this recent: full points


class HealthGrade(_Base):
    min: Decimal = Field(ge=0, le=100)
    grade: str


class Expansion(_Base):
    usage_share: Decimal = Field(default=Decimal("0.9"), gt=0, le=5)  # usage / plan limit that opens one
    opportunity_name: str = "Expansion: {name}"
    stage: str | None = None
    owner: Literal["deal_owner", "pool"] = "deal_owner"
    pool: str | None = None

    @model_validator(mode="after")
    def _pool(self) -> Expansion:
        if self.owner == "pool" and not self.pool:
            raise ValueError("owner: pool needs `pool`")
        return self


class HealthConfig(_Base):
    name: str = "customer_health"
    weights: HealthWeights = Field(default_factory=HealthWeights)
    usage: HealthUsage = Field(default_factory=HealthUsage)
    onboarding: HealthOnboarding = Field(default_factory=HealthOnboarding)
    billing: HealthBilling = Field(default_factory=HealthBilling)
    engagement: HealthEngagement = Field(default_factory=HealthEngagement)
    grades: list[HealthGrade] = Field(default_factory=lambda: [HealthGrade(min=Decimal(75), grade="healthy"),
                                                               HealthGrade(min=Decimal(50), grade="watch"),
                                                               HealthGrade(min=Decimal(0), grade="at_risk")])
    expansion: Expansion | None = None

    @model_validator(mode="after")
    def _weights(self) -> HealthConfig:
        w = self.weights
        if w.usage + w.onboarding + w.billing + w.engagement != 100:
            raise ValueError("weights must add up to 100")
        if not any(g.min == 0 for g in self.grades):
            raise ValueError("grades need one with `min: 0`")
        return self


class HealthFile(_Base):
    version: Literal[1] = 1
    health: HealthConfig | None = None


FILE_MODELS: dict[str, type[_Base]] = {
    "scoring": ScoringFile,
    "routing": RoutingFile,
    "hygiene": HygieneFile,
    "handoff": HandoffFile,
    "renewal": RenewalFile,
    "health": HealthFile,
}
