"""Read what the funnel needs from the store: stages, pipelines, deals, account segments, events."""

from __future__ import annotations

from collections import Counter

from crmsync.model import Account, Deal, ObjectType, Pipeline, Stage
from crmsync.report.funnel import FunnelInput
from crmsync.store import Store
from crmsync.store.stage_events import iter_stage_events


def load_funnel_input(store: Store, *, connection: str | None = None) -> FunnelInput:
    """Everything of ``connection`` (or of all connections) that the funnel maths reads."""
    stages = [r for r in store.iter_records(ObjectType.STAGE, connection=connection) if isinstance(r, Stage)]
    deals = [r for r in store.iter_records(ObjectType.DEAL, connection=connection) if isinstance(r, Deal)]
    segments: dict[tuple[str, str], str | None] = {}
    for account in store.iter_records(ObjectType.ACCOUNT, connection=connection):
        if isinstance(account, Account):
            segments[(account.connection, account.source_id)] = account.segment
    names: dict[tuple[str, str], str] = {}
    for pipeline in store.iter_records(ObjectType.PIPELINE, connection=connection):
        if isinstance(pipeline, Pipeline):
            names[(pipeline.connection, pipeline.source_id)] = pipeline.name
    events = list(iter_stage_events(store.engine, connection=connection))
    return FunnelInput(stages=stages, deals=deals, events=events, segments=segments, pipeline_names=names)


def load_owners(store: Store, *, connection: str | None = None) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(connection, owner id) -> (name, team) for the deal reports' owner and team breakdowns."""
    from crmsync.model import Owner

    owners = [o for o in store.iter_records(ObjectType.OWNER, connection=connection) if isinstance(o, Owner)]
    names = Counter(o.name or o.email or o.source_id for o in owners)
    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    for owner in owners:
        name = owner.name or owner.email or owner.source_id
        if names[name] > 1:  # two people with one name stay two rows
            name = f"{name} ({owner.source_id})"
        out[(owner.connection, owner.source_id)] = (name, owner.team)
    return out
