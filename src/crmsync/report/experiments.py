"""Experiment results from the store: each group's outcomes, intervals and tests against control.

Outcomes per assigned record (``experiment_assignments`` joined with the records):

* ``time_to_first_touch``: hours from the record's creation to its first touch: a done task on it
  that crmsync did not create (a rep's call, email or meeting), or its last activity stamp when no
  such task exists; records not touched yet are left out of the mean (counted as untouched);
* ``conversion``: a lead converted; a deal moved forward to a later stage, or won;
* ``win_rate``: won deals among the group's closed deals;
* ``cycle_time``: days from creation to close of the group's won deals.

Each variant and the holdout group is compared with the control (the first variant). The
experiment's status: ``stopped`` (stop date passed, or ``stopped: true``), ``not started`` (before
its start), ``planned n reached``
(every variant has ``planned_sample_size`` records), else ``not yet significant`` or
``significant at an interim look`` (a test under ``alpha`` before the planned size: not a result
to act on yet).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select

from crmsync.model import ObjectType
from crmsync.report.experiment_stats import (
    Comparison,
    Interval,
    compare_means,
    compare_proportions,
    mean_interval,
    wilson,
)
from crmsync.report.page import ReportPage, Table
from crmsync.rules.experiments import HOLDOUT, CompiledExperiment
from crmsync.store import Store
from crmsync.store import tables as t
from crmsync.store.workflow_tables import experiment_assignments

PROPORTIONS = frozenset({"conversion", "win_rate"})
UNITS = {"time_to_first_touch": "h", "cycle_time": "d"}


@dataclass
class Outcome:
    """One record's measured outcomes (None: not measurable yet)."""

    touch_hours: float | None = None
    converted: bool = False
    closed: bool = False
    won: bool = False
    cycle_days: float | None = None


@dataclass(frozen=True)
class GroupMetric:
    group: str
    n: int  # records the metric is measured on
    value: float  # a proportion, or a mean
    interval: Interval
    successes: int | None = None  # proportions
    versus_control: Comparison | None = None


@dataclass
class ExperimentResult:
    name: str
    kind: str
    object_type: str
    status: str
    start: dt.date
    stop: dt.date
    planned: int
    alpha: float
    control: str
    groups: dict[str, int] = field(default_factory=dict)  # group -> assigned records
    metrics: dict[str, list[GroupMetric]] = field(default_factory=dict)

    def significant(self) -> list[tuple[str, str, float]]:
        return [(m, g.group, g.versus_control.p_value) for m, rows in self.metrics.items() for g in rows
                if g.versus_control is not None and g.versus_control.p_value < self.alpha]


def load_outcomes(store: Store, experiment: CompiledExperiment) -> dict[str, list[Outcome]]:
    """Outcomes of every assigned record, by group."""
    a = experiment_assignments.c
    ot = experiment.object_type
    records = t.record_table(ot).c
    stmt = (select(a.variant, a.connection, a.source_id, records.created_at, records.last_activity_at,
                   *((records.is_closed, records.is_won, records.close_date) if ot == ObjectType.DEAL
                     else (records.is_converted,)))
            .join(t.record_table(ot), and_(records.connection == a.connection, records.source_id == a.source_id))
            .where(and_(a.experiment == experiment.name, a.object_type == ot.value, records.deleted.is_(False))))
    tasks = t.record_table(ObjectType.TASK).c
    link = tasks.deal_id if ot == ObjectType.DEAL else tasks.lead_id
    touch_stmt = (select(tasks.connection, link, tasks.modified_at)
                  .where(and_(tasks.done.is_(True), tasks.deleted.is_(False), tasks.crmsync_key.is_(None),
                              link.is_not(None))))
    with store.engine.connect() as conn:
        rows = list(conn.execute(stmt))
        wanted = {(str(r[1]), str(r[2])) for r in rows}
        first_task: dict[tuple[str, str], dt.datetime] = {}
        for connection, record_id, at in conn.execute(touch_stmt):
            key = (str(connection), str(record_id))
            if key in wanted and (key not in first_task or at < first_task[key]):
                first_task[key] = at
        advanced = _advanced_deals(conn, wanted) if ot == ObjectType.DEAL else set()
    out: dict[str, list[Outcome]] = defaultdict(list)
    for row in rows:
        group, connection, source_id, created, last_activity = row[:5]
        key = (str(connection), str(source_id))
        outcome = Outcome()
        touched = first_task.get(key) or last_activity
        if created is not None and touched is not None and touched >= created:
            outcome.touch_hours = (touched - created).total_seconds() / 3600.0
        if ot == ObjectType.DEAL:
            is_closed, is_won, close_date = row[5:8]
            outcome.closed, outcome.won = bool(is_closed), bool(is_won)
            outcome.converted = outcome.won or key in advanced
            if outcome.won and close_date is not None and created is not None:
                outcome.cycle_days = float((close_date - created.date()).days)
        else:
            outcome.converted = bool(row[5])
        out[str(group)].append(outcome)
    return out


def _advanced_deals(conn: Any, wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Deals with a stage move to a later stage of their pipeline (stage events + stage order)."""
    s, e = t.record_table(ObjectType.STAGE).c, t.stage_events.c
    order = {(str(c), str(i)): int(o) for c, i, o in conn.execute(select(s.connection, s.source_id, s.display_order))}
    out: set[tuple[str, str]] = set()
    stmt = select(e.connection, e.deal_id, e.from_stage_id, e.to_stage_id).where(e.from_stage_id.is_not(None))
    for connection, deal_id, before, after in conn.execute(stmt):
        key = (str(connection), str(deal_id))
        if key not in wanted:
            continue
        b, a = order.get((key[0], str(before))), order.get((key[0], str(after)))
        if b is not None and a is not None and a > b:
            out.add(key)
    return out


def _metric(name: str, group: str, outcomes: Sequence[Outcome]) -> tuple[GroupMetric, Any]:
    if name == "conversion":
        x, n = sum(o.converted for o in outcomes), len(outcomes)
        return GroupMetric(group, n, x / n if n else math.nan, wilson(x, n), x), (x, n)
    if name == "win_rate":
        closed = [o for o in outcomes if o.closed]
        x, n = sum(o.won for o in closed), len(closed)
        return GroupMetric(group, n, x / n if n else math.nan, wilson(x, n), x), (x, n)
    values = [v for o in outcomes if (v := (o.touch_hours if name == "time_to_first_touch" else o.cycle_days))
              is not None]
    mean = sum(values) / len(values) if values else math.nan
    return GroupMetric(group, len(values), mean, mean_interval(values)), values


def experiment_result(experiment: CompiledExperiment, outcomes: dict[str, list[Outcome]],
                      today: dt.date) -> ExperimentResult:
    spec = experiment.spec
    groups = [v.name for v in spec.variants] + ([HOLDOUT] if spec.holdout > 0 else [])
    result = ExperimentResult(spec.name, spec.kind, spec.object, "", spec.start, spec.stop, spec.planned_sample_size,
                              float(spec.alpha), experiment.control,
                              groups={g: len(outcomes.get(g, [])) for g in groups})
    for name in experiment.metrics:
        measured = {g: _metric(name, g, outcomes.get(g, [])) for g in groups}
        control_raw = measured[experiment.control][1]
        rows: list[GroupMetric] = []
        for g in groups:
            metric, raw = measured[g]
            if g != experiment.control:
                if name in PROPORTIONS:
                    comparison = compare_proportions(raw[0], raw[1], control_raw[0], control_raw[1])
                else:
                    comparison = compare_means(raw, control_raw)
                metric = GroupMetric(metric.group, metric.n, metric.value, metric.interval, metric.successes,
                                     comparison)
            rows.append(metric)
        result.metrics[name] = rows
    if spec.stopped or today > spec.stop:
        result.status = "stopped"
    elif today < spec.start:
        result.status = "not started"
    elif all(result.groups[v.name] >= spec.planned_sample_size for v in spec.variants):
        result.status = "planned n reached"
    elif result.significant():
        result.status = "significant at an interim look (planned n not reached)"
    else:
        result.status = "not yet significant"
    return result


def experiment_results(store: Store, experiments: Sequence[CompiledExperiment], today: dt.date) -> list[ExperimentResult]:
    return [experiment_result(e, load_outcomes(store, e), today) for e in experiments]


def _num(value: float, metric: str) -> str:
    if math.isnan(value):
        return "-"
    if metric in PROPORTIONS:
        return f"{value:.1%}"
    return f"{value:,.1f} {UNITS.get(metric, '')}".strip()


def _ci(interval: Interval, metric: str) -> str:
    if math.isnan(interval.low):
        return "-"
    if metric in PROPORTIONS:
        return f"[{interval.low:.1%}, {interval.high:.1%}]"
    return f"[{interval.low:,.1f}, {interval.high:,.1f}]"


def _diff(c: Comparison | None, metric: str) -> tuple[str, str, str, str]:
    if c is None:
        return ("-", "-", "-", "-")
    if metric in PROPORTIONS:
        d = f"{c.difference * 100:+.1f} pts"
        ci = f"[{c.interval.low * 100:+.1f}, {c.interval.high * 100:+.1f}]"
    else:
        d = f"{c.difference:+,.1f} {UNITS.get(metric, '')}".strip()
        ci = f"[{c.interval.low:+,.1f}, {c.interval.high:+,.1f}]"
    return d, ci, f"{c.p_value:.4f}", c.test


def experiments_page(results: Sequence[ExperimentResult], *, now: dt.datetime) -> ReportPage:
    page = ReportPage("Experiments", f"{len(results)} experiments, as of {now:%Y-%m-%d %H:%M} UTC")
    if not results:
        page.findings.append("No experiment is defined (config/rules/experiments.yaml).")
    for r in results:
        sizes = ", ".join(f"{g} {n:,}" for g, n in r.groups.items())
        page.findings.append(f"{r.name} ({r.kind}, {r.object_type}s, {r.start} to {r.stop}): {r.status}; "
                             f"assigned {sizes}; planned {r.planned:,} per variant.")
        for metric, group, p_value in r.significant():
            page.findings.append(f"{r.name}: {metric} of {group} differs from {r.control} (p = {p_value:.4f}).")
        rows: list[tuple[str, ...]] = []
        for metric, groups in r.metrics.items():
            for g in groups:
                d, ci, p, test = _diff(g.versus_control, metric)
                rows.append((metric, g.group + (" (control)" if g.group == r.control else ""), f"{g.n:,}",
                             _num(g.value, metric), _ci(g.interval, metric), d, ci, p, test))
        page.tables.append(Table(f"{r.name}: {r.status}",
                                 ("metric", "group", "n", "value", "95% CI", "vs control", "95% CI of difference",
                                  "p", "test"), tuple(rows),
                                 note=f"alpha {r.alpha:g}; planned {r.planned:,} records per variant; "
                                      f"stop date {r.stop}"))
    page.footnotes.append("Intervals: Wilson (proportions), Newcombe hybrid score (difference of proportions), "
                          "Student t (means), Welch t (difference of means); scipy.stats.")
    return page
