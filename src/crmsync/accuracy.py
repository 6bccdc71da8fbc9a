"""Precision and recall of every hygiene rule and billing check against the world's planted truth.

The sandbox world records which deals (and leads) it planted each problem in (``World.planted``).
Here the shipped hygiene rules (a rule directory) and the billing checks (with the shipped
thresholds) run over the world's records; each check's flagged ids are compared with the ids its
problem was planted in, within the records the check applies to (a rule scoped to Proposal Sent is
measured on deals in Proposal Sent). ``bench/bench_findings.py`` and ``crmsync demo`` print the table.

A check with nothing planted and nothing flagged has no precision or recall (shown as ``-``); one
that flags records where nothing was planted scores precision 0. Stage moves (skipped, backward)
need two versions of a deal, so they are not measured on a single world.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from crmsync.billing.catalog import BillingCatalog
from crmsync.billing.checks import CheckConfig, run_checks
from crmsync.billing.mapping import build_mapping
from crmsync.model import Deal, Lead, ObjectType, Record, Stage
from crmsync.rules.context import RuleContext
from crmsync.rules.decisions import FINDING, Decision
from crmsync.rules.hygiene import CompiledHygieneRule
from crmsync.rules.loader import RuleSet, load_rules
from crmsync.sandbox.records import deal_record, line_records
from crmsync.sandbox.world import STAGES, World
from crmsync.store import Store

CONNECTION = "world"
PIPELINE = "default"
# billing check -> the planted problems it should find
BILLING_TRUTH: dict[str, tuple[str, ...]] = {
    "amount_vs_lines": ("amount_off", "zero_amount"),
    "line_math": (),
    "product_unmapped": (),
    "list_price_drift": ("price_book_drift",),
    "discount_unapproved": ("unapproved_discount",),
    "currency_mismatch": (),
    "billing_period": (),
    "term_mismatch": ("term_mismatch",),
    "contract_dates": ("missing_contract_dates",),
    "backdated_contract": ("backdated_contract",),
    "seats": (),
}
# hygiene rule kind -> the planted problem it should find (per object)
HYGIENE_TRUTH: dict[tuple[str, str], str] = {
    ("required_fields", "deal"): "missing_exit_criteria",
    ("missing_amount", "deal"): "zero_amount",
    ("max_days_in_stage", "deal"): "stale_stage",
    ("close_date_past", "deal"): "close_date_past",
    ("no_activity", "deal"): "no_activity",
    ("no_activity", "lead"): "lead_untouched",
}
# condition rules are named by what they look for
CONDITION_TRUTH = {"big_deal_without_discount_approval": "big_deal_unapproved"}
NEEDS_HISTORY = frozenset({"stage_skipped", "stage_backward"})


@dataclass(frozen=True, slots=True)
class CheckScore:
    kind: str  # hygiene | billing
    check: str
    planted: int
    flagged: int
    found: int  # flagged and planted

    @property
    def precision(self) -> float | None:
        return self.found / self.flagged if self.flagged else (None if not self.planted else 0.0)

    @property
    def recall(self) -> float | None:
        return self.found / self.planted if self.planted else (None if not self.flagged else 0.0)

    @property
    def measured(self) -> bool:
        return bool(self.planted or self.flagged)


def _score(kind: str, check: str, truth: set[str], flagged: set[str]) -> CheckScore:
    return CheckScore(kind, check, len(truth), len(flagged), len(truth & flagged))


def world_stages(at: dt.datetime) -> dict[tuple[str, str], Stage]:
    return {(CONNECTION, s.key): Stage(connection=CONNECTION, source_object="stage", source_id=s.key, modified_at=at,
                                       name=s.label, pipeline_id=PIPELINE, display_order=s.order,
                                       probability=s.probability, is_closed=s.is_closed, is_won=s.is_won)
            for s in STAGES}


def world_leads(world: World) -> list[Lead]:
    return [Lead(connection=CONNECTION, source_object="lead", source_id=str(lead.id), modified_at=lead.modified_at,
                 created_at=lead.created_at, first_name=lead.first_name, last_name=lead.last_name, email=lead.email,
                 company=lead.company, status=lead.status, source=lead.source, country=lead.country,
                 region=lead.region, industry=lead.industry, employees=lead.employees,
                 owner_id=str(lead.owner_id) if lead.owner_id else None, last_activity_at=lead.last_activity_at)
            for lead in world.leads]


def hygiene_scores(world: World, rule_set: RuleSet) -> list[CheckScore]:
    """The hygiene rules (and the handoff's missing fields) over the world's own records."""
    ctx = RuleContext(now=world.now, stages=world_stages(world.now))
    records: dict[str, list[tuple[int, Record]]] = {
        "deal": [(d.id, deal_record(world, d, CONNECTION)) for d in world.deals],
        "lead": [(int(lead.source_id), lead) for lead in world_leads(world)],
    }
    return _hygiene(world, rule_set.hygiene, ctx, records) + _handoff(world, rule_set, ctx, records["deal"])


def _handoff(world: World, rule_set: RuleSet, ctx: RuleContext, deals: list[tuple[int, Record]]) -> list[CheckScore]:
    """The Closed Won handoff's finding (required CS fields missing) against the planted gaps."""
    if rule_set.handoff is None:
        return []
    from crmsync.rules.engine import evaluate

    ids = {record.source_id: wid for wid, record in deals}
    won = [record for _, record in deals if getattr(record, "is_won", False)]
    flagged = {str(ids[d.source_id]) for d in evaluate(rule_set, won, ctx, kinds=("handoff",))
               if d.action == FINDING}
    truth = {str(i) for i in world.planted.get("missing_handoff_fields", ())}
    return [_score("hygiene", rule_set.handoff.name, truth, flagged)]


def _hygiene(world: World, rules: Iterable[CompiledHygieneRule], ctx: RuleContext,
             records: dict[str, list[tuple[int, Record]]]) -> list[CheckScore]:
    scores = []
    for rule in rules:
        if rule.spec.kind in NEEDS_HISTORY:
            continue
        ot = rule.object_type.value
        problem = (CONDITION_TRUTH.get(rule.name) if rule.spec.kind == "condition"
                   else HYGIENE_TRUTH.get((rule.spec.kind, ot)))
        planted = world.planted.get(problem, frozenset()) if problem else frozenset()
        stage_ids = rule._stage_ids(ctx)
        check = rule.bind(ctx, "")
        truth: set[str] = set()
        flagged: set[str] = set()
        for world_id, record in records.get(ot, []):
            in_scope = True
            if rule.object_type == ObjectType.DEAL:
                stage_id = getattr(record, "stage_id", None)
                in_scope = stage_id in stage_ids if stage_ids is not None else not getattr(record, "is_closed", False)
            if in_scope and world_id in planted:
                truth.add(str(world_id))
            out: list[Decision] = []
            check(record, out)
            if any(d.action == FINDING for d in out):
                flagged.add(str(world_id))
        scores.append(_score("hygiene", rule.name, truth, flagged))
    return scores


def billing_scores(world: World, catalog: BillingCatalog, cfg: CheckConfig | None = None) -> list[CheckScore]:
    mapping = build_mapping([p.code for p in world.products], catalog)
    flagged: dict[str, set[str]] = {check: set() for check in BILLING_TRUTH}
    for deal in world.deals:
        for finding in run_checks(deal_record(world, deal, CONNECTION), line_records(world, deal, CONNECTION),
                                  catalog, mapping, cfg):
            flagged.setdefault(finding.check, set()).add(finding.deal_id)
    scores = []
    for check, ids in flagged.items():
        truth = {str(i) for problem in BILLING_TRUTH.get(check, ()) for i in world.planted.get(problem, ())}
        scores.append(_score("billing", check, truth, ids))
    return scores


def world_id(record: Record) -> int | None:
    """The world id behind a CRM record: deal names end with it, lead emails carry it."""
    if isinstance(record, Deal):
        tail = (record.name or "").rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else None
    if isinstance(record, Lead):
        local = (record.email or "").split("@", 1)[0].rsplit(".", 1)[-1]
        return int(local) if local.isdigit() else None
    return None


def crm_scores(store: Store, connection: str, world: World, rule_set: RuleSet,
               catalog: BillingCatalog, cfg: CheckConfig | None = None) -> list[CheckScore]:
    """The same measure through a CRM: the records as crmsync pulled them into the store."""
    from crmsync.billing.crm_side import load_crm_side
    from crmsync.decide.runner import build_context

    ctx = build_context(store, [connection], now=world.now)
    records: dict[str, list[tuple[int, Record]]] = {"deal": [], "lead": []}
    for object_type in (ObjectType.DEAL, ObjectType.LEAD):
        for record in store.iter_records(object_type, connection=connection):
            wid = world_id(record)
            if wid is not None and not record.deleted:
                records[object_type.value].append((wid, record))
    scores = _hygiene(world, rule_set.hygiene, ctx, records) + _handoff(world, rule_set, ctx, records["deal"])
    side = load_crm_side(store, connection)
    mapping = build_mapping(side.codes(), catalog)
    flagged: dict[str, set[str]] = {check: set() for check in BILLING_TRUTH}
    for deal, lines in side.deals_with_lines():
        wid = world_id(deal)
        if wid is None or deal.deleted:
            continue
        for finding in run_checks(deal, lines, catalog, mapping, cfg):
            flagged.setdefault(finding.check, set()).add(str(wid))
    for check, ids in flagged.items():
        truth = {str(i) for problem in BILLING_TRUTH.get(check, ()) for i in world.planted.get(problem, ())}
        scores.append(_score("billing", check, truth, ids))
    return scores


def world_catalog(world: World) -> BillingCatalog:
    """The billing catalog the Meteroid simulator serves for this world."""
    from crmsync.sandbox.meteroid import MeteroidSimulator

    truth = MeteroidSimulator(world)
    return BillingCatalog.from_api(truth.truth("plans"), truth.truth("products"), truth.truth("coupons"))


def measure(world: World, rules_dir: str | Path, cfg: CheckConfig | None = None) -> list[CheckScore]:
    """Every measurable hygiene rule of ``rules_dir`` and every billing check, on ``world``."""
    rule_set = load_rules(rules_dir)
    return hygiene_scores(world, rule_set) + billing_scores(world, world_catalog(world), cfg)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def scores_table(scores: Iterable[CheckScore], *, title: str) -> Table:
    table = Table(title=title)
    for col in ("kind", "check", "planted", "flagged", "found", "precision", "recall"):
        table.add_column(col, justify="left" if col in ("kind", "check") else "right")
    for s in scores:
        style = "" if not s.measured or min(s.precision or 0, s.recall or 0) >= 0.95 else "[red]"
        table.add_row(s.kind, s.check, str(s.planted), str(s.flagged), str(s.found),
                      style + _pct(s.precision), style + _pct(s.recall))
    return table


def crm_table(scores: dict[str, list[CheckScore]], *, title: str) -> Table:
    """One row per check: the records planted, then precision/recall per connection."""
    table = Table(title=title)
    table.add_column("check", no_wrap=True, overflow="ellipsis", max_width=30)
    table.add_column("planted", justify="right")
    for name in scores:
        table.add_column(name.removeprefix("sandbox-"), justify="right", no_wrap=True, min_width=9)
    checks = dict.fromkeys(s.check for rows in scores.values() for s in rows if s.measured)
    by = {name: {s.check: s for s in rows} for name, rows in scores.items()}
    for check in checks:
        planted = max((by[name][check].planted for name in scores if check in by[name]), default=0)
        cells = []
        for name in scores:
            s = by[name].get(check)
            if s is None or not s.measured:
                cells.append("-")
                continue
            good = min(s.precision or 0, s.recall or 0) >= 0.95
            cells.append(("" if good else "[red]") + f"{_short(s.precision)}/{_short(s.recall)}")
        table.add_row(check, str(planted), *cells)
    return table


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
