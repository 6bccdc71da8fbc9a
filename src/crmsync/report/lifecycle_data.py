"""What the lifecycle funnel reads: the lead scoring model's lifecycle (from the rule files), the
store's leads, crmsync's lifecycle decisions, the converted leads' opportunities and segments."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

from crmsync.model import Account, Deal, Lead, ObjectType
from crmsync.report.lifecycle import LeadFact, lead_facts
from crmsync.rules.context import RuleContext
from crmsync.rules.loader import load_rules
from crmsync.rules.scoring import CompiledScoringModel
from crmsync.store import Store
from crmsync.store import tables as t


class NoLifecycleRules(ValueError):
    """The rule files define no lead scoring model with a lifecycle."""


def lifecycle_model(rules_dir: Path) -> CompiledScoringModel:
    rules = load_rules(rules_dir)
    for model in rules.scoring:
        if model.object_type is ObjectType.LEAD and model.lifecycle_ref is not None:
            return model
    raise NoLifecycleRules(f"{rules_dir}: no lead scoring model with a lifecycle (scoring.yaml, lifecycle:)")


def _decisions(store: Store, field_name: str, connection: str | None
               ) -> dict[tuple[str, str], list[tuple[dt.datetime, str]]]:
    c = t.decisions.c
    stmt = select(c.connection, c.source_id, c.fields, c.created_at).where(c.object_type == ObjectType.LEAD.value)
    if connection is not None:
        stmt = stmt.where(c.connection == connection)
    out: dict[tuple[str, str], list[tuple[dt.datetime, str]]] = defaultdict(list)
    with store.engine.connect() as conn:
        for conn_name, source_id, fields, created_at in conn.execute(stmt):
            stage = (fields or {}).get(field_name)
            if source_id and isinstance(stage, str):
                out[(conn_name, source_id)].append((created_at, stage))
    return out


def load_lead_facts(store: Store, model: CompiledScoringModel, *, now: dt.datetime,
                    connection: str | None = None) -> list[LeadFact]:
    leads = [r for r in store.iter_records(ObjectType.LEAD, connection=connection) if isinstance(r, Lead)]
    assert model.lifecycle_ref is not None
    field_name = model.lifecycle_ref.path
    accounts = {(a.connection, a.source_id): a for a in store.iter_records(ObjectType.ACCOUNT, connection=connection)
                if isinstance(a, Account)}
    ctx = RuleContext(now=now, accounts=accounts)
    rule_stage = {}
    for lead in leads:
        if model.applies is None or model.applies(lead, ctx):
            rule_stage[(lead.connection, lead.source_id)] = model.score(lead, ctx).lifecycle
    deals: dict[tuple[str, str], Deal] = {}
    for lead in leads:
        opportunity = (lead.extra or {}).get("converted_opportunity_id")
        if opportunity:
            found = store.get(ObjectType.DEAL, lead.connection, str(opportunity))
            if isinstance(found, Deal):
                deals[(lead.connection, str(opportunity))] = found
    segments = {key: a.segment for key, a in accounts.items()}
    return lead_facts(leads, model.lifecycle_stages, field_name=field_name,
                      decisions=_decisions(store, field_name, connection), rule_stage=rule_stage, deals=deals,
                      segments=segments)
