"""Experiments on the workflow itself (``config/rules/experiments.yaml``): schema and assignment.

An experiment splits leads or deals between variants of a routing strategy, a sequence, a
follow-up cadence or a handoff template. Assignment is deterministic and needs no state: the
sha256 of ``<experiment name>:<connection>:<record id>`` read as a number in [0, 1) falls into the
holdout share first, then into each variant's share in file order. The same record always lands in
the same group, whatever the order or time it is seen; renaming the experiment reshuffles it.

What a variant does:

* ``pool`` (routing experiments): a record of the variant that needs routing is assigned from that
  routing pool (``routing.yaml``) instead of by the routing rules;
* ``set``: fields written to the record (canonical names or ``extra.<CRM field>``), e.g. the
  sequence, cadence or handoff template the CRM's own automation reads.

The holdout group gets neither: it is what the workflow does without the experiment. Records are
eligible while the experiment runs (``start`` <= created day <= ``stop``, and ``when`` holds).
Everything here is pure; ``crmsync.trials.experiments`` stores assignments and writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crmsync.model import ObjectType
from crmsync.rules.conditions import ConditionError, compile_condition

HOLDOUT = "holdout"
Metric = Literal["time_to_first_touch", "conversion", "win_rate", "cycle_time"]
DEFAULT_METRICS: dict[str, list[str]] = {"lead": ["time_to_first_touch", "conversion"],
                                         "deal": ["time_to_first_touch", "conversion", "win_rate", "cycle_time"]}
DEAL_ONLY = frozenset({"win_rate", "cycle_time"})


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantSpec(_Base):
    name: str = Field(min_length=1, max_length=60)
    share: Decimal = Field(gt=0, le=1)
    pool: str | None = None  # routing experiments: the routing pool this variant assigns from
    set: dict[str, Any] = Field(default_factory=dict)  # fields written to the record


class ExperimentSpec(_Base):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")
    object: Literal["deal", "lead"]
    kind: Literal["routing", "sequence", "cadence", "handoff_template"]
    start: dt.date
    stop: dt.date
    planned_sample_size: int = Field(ge=2, description="records per variant")
    holdout: Decimal = Field(default=Decimal(0), ge=0, lt=1)
    alpha: Decimal = Field(default=Decimal("0.05"), gt=0, lt=1)
    stopped: bool = False  # stopped early by hand
    when: dict[str, Any] | None = None
    metrics: list[Metric] | None = None
    variants: list[VariantSpec] = Field(min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if self.stop < self.start:
            raise ValueError("stop must not be before start")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names) or HOLDOUT in names:
            raise ValueError(f"variant names must be unique and not {HOLDOUT!r}")
        total = self.holdout + sum((v.share for v in self.variants), Decimal(0))
        if total != 1:
            raise ValueError(f"holdout + variant shares must add up to 1, got {total}")
        if self.kind == "routing" and not all(v.pool for v in self.variants):
            raise ValueError("every variant of a routing experiment needs `pool`")
        if self.kind != "routing" and not all(v.set for v in self.variants):
            raise ValueError(f"every variant of a {self.kind} experiment needs `set` (the fields that select it)")
        if self.object == "lead" and self.metrics and DEAL_ONLY & set(self.metrics):
            raise ValueError(f"metrics {sorted(DEAL_ONLY & set(self.metrics))} are measured on deals only")
        return self


class ExperimentsFile(_Base):
    version: int = 1
    experiments: list[ExperimentSpec] = Field(default_factory=list)


def bucket(experiment: str, connection: str, source_id: str) -> float:
    """The record's point in [0, 1): the first 8 bytes of sha256 over name and record id."""
    digest = hashlib.sha256(f"{experiment}:{connection}:{source_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class CompiledExperiment:
    spec: ExperimentSpec
    object_type: ObjectType
    when: Callable[[Any, Any], bool] | None
    bounds: tuple[tuple[float, str], ...]  # (upper bound, group), ascending; holdout first

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def metrics(self) -> list[str]:
        return list(self.spec.metrics or DEFAULT_METRICS[self.spec.object])

    @property
    def control(self) -> str:
        return self.spec.variants[0].name

    def variant_spec(self, name: str) -> VariantSpec | None:
        return next((v for v in self.spec.variants if v.name == name), None)

    def group_of(self, connection: str, source_id: str) -> str:
        point = bucket(self.spec.name, connection, source_id)
        for upper, group in self.bounds:
            if point < upper:
                return group
        return self.bounds[-1][1]

    def running_on(self, day: dt.date) -> bool:
        return not self.spec.stopped and self.spec.start <= day <= self.spec.stop

    def eligible(self, record: Any, ctx: Any) -> bool:
        if record.object_type != self.object_type or record.deleted:
            return False
        created = (record.created_at or record.modified_at).date()
        if not (self.spec.start <= created <= self.spec.stop) or not self.running_on(ctx.today):
            return False
        return self.when is None or bool(self.when(record, ctx))


def compile_experiments(spec: ExperimentsFile, pools: frozenset[str] | None = None) -> list[CompiledExperiment]:
    out: list[CompiledExperiment] = []
    names: set[str] = set()
    for i, e in enumerate(spec.experiments):
        path: tuple[str | int, ...] = ("experiments", i)
        if e.name in names:
            raise ConditionError((*path, "name"), f"duplicate experiment name {e.name!r}")
        names.add(e.name)
        ot = ObjectType(e.object)
        when = compile_condition(ot, e.when, (*path, "when")) if e.when else None
        if e.kind == "routing":
            for j, v in enumerate(e.variants):
                if pools is None or v.pool not in pools:
                    raise ConditionError((*path, "variants", j, "pool"),
                                         f"unknown routing pool {v.pool!r} (pools of routing.yaml: "
                                         f"{', '.join(sorted(pools or ())) or 'none'})")
        bounds: list[tuple[float, str]] = []
        edge = Decimal(0)
        if e.holdout > 0:
            edge += e.holdout
            bounds.append((float(edge), HOLDOUT))
        for v in e.variants:
            edge += v.share
            bounds.append((float(edge), v.name))
        out.append(CompiledExperiment(e, ot, when, tuple(bounds)))
    return out
