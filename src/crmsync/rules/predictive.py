"""Predictive score: naive Bayes per field over won/lost history (as Odoo's lead scoring does).

``train`` counts, per field value, how many closed records were won and lost; ``predict`` combines
the per-field likelihoods with Laplace smoothing and returns the win probability plus, for each
field, the value seen and how strongly it pushed towards won (likelihood ratio).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crmsync.model import ObjectType
from crmsync.rules.conditions import FieldRef, resolve_field

MISSING = "(none)"


def bucket(value: Any) -> str:
    """Categorical key of a value: numbers by order of magnitude, text case-folded."""
    if value is None or value == "" or value == []:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal):
        n = float(value)
        if n <= 0:
            return "<=0"
        exp = math.floor(math.log10(n))
        return f"1e{exp}..1e{exp + 1}"
    if isinstance(value, list):
        return ",".join(sorted(map(str, value)))
    return str(value).strip().lower()


def deal_outcome(record: Any) -> bool | None:
    return bool(record.is_won) if record.is_closed else None


LOST_LEAD_STATUSES = frozenset({"unqualified", "disqualified", "lost", "closed - not converted", "junk"})


def lead_outcome(record: Any) -> bool | None:
    if record.is_converted:
        return True
    if record.status and record.status.strip().lower() in LOST_LEAD_STATUSES:
        return False
    return None


@dataclass(frozen=True, slots=True)
class FieldContribution:
    field: str
    value: str
    p_won: float  # P(value | won), smoothed
    p_lost: float  # P(value | lost), smoothed
    ratio: float  # p_won / p_lost: > 1 pushes towards won


@dataclass(slots=True)
class NaiveBayesModel:
    object_type: ObjectType
    fields: tuple[str, ...]
    alpha: float
    n_won: int = 0
    n_lost: int = 0
    counts: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # field -> value -> [won, lost]
    _refs: tuple[FieldRef, ...] = ()

    @classmethod
    def train(
        cls,
        object_type: ObjectType,
        fields: Iterable[str],
        records: Iterable[Any],
        ctx: Any = None,
        *,
        alpha: float = 1.0,
        outcome: Callable[[Any], bool | None] | None = None,
    ) -> NaiveBayesModel:
        names = tuple(fields)
        refs = tuple(resolve_field(object_type, f) for f in names)
        judge = outcome or (deal_outcome if object_type == ObjectType.DEAL else lead_outcome)
        model = cls(object_type, names, alpha, counts={f: {} for f in names}, _refs=refs)
        for record in records:
            won = judge(record)
            if won is None:
                continue
            if won:
                model.n_won += 1
            else:
                model.n_lost += 1
            slot = 0 if won else 1
            for name, ref in zip(names, refs, strict=True):
                cell = model.counts[name].setdefault(bucket(ref.get(record, ctx)), [0, 0])
                cell[slot] += 1
        return model

    @property
    def samples(self) -> int:
        return self.n_won + self.n_lost

    def predict(self, record: Any, ctx: Any = None) -> tuple[float, list[FieldContribution]]:
        """Win probability in [0, 1] and the per-field explanation."""
        if self.n_won == 0 or self.n_lost == 0:
            prior = 0.5 if self.samples == 0 else float(self.n_won > 0)
            return prior, []
        refs = self._refs or tuple(resolve_field(self.object_type, f) for f in self.fields)
        log_won = math.log(self.n_won / self.samples)
        log_lost = math.log(self.n_lost / self.samples)
        parts: list[FieldContribution] = []
        a = self.alpha
        for name, ref in zip(self.fields, refs, strict=True):
            values = self.counts.get(name, {})
            v = bucket(ref.get(record, ctx))
            won_c, lost_c = values.get(v, (0, 0))
            k = len(values) + 1  # +1: room for a value never seen in training
            p_won = (won_c + a) / (self.n_won + a * k)
            p_lost = (lost_c + a) / (self.n_lost + a * k)
            log_won += math.log(p_won)
            log_lost += math.log(p_lost)
            parts.append(FieldContribution(name, v, p_won, p_lost, p_won / p_lost))
        top = max(log_won, log_lost)
        won = math.exp(log_won - top)
        lost = math.exp(log_lost - top)
        return won / (won + lost), parts
