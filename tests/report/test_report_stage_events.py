"""Stage events in the store: computed against the stored stages in the page's transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from report_harness import OBJECTS, history_events_in

from crmsync.model import Deal, ObjectType
from crmsync.sandbox.pipedrive import PipedriveSimulator
from crmsync.sandbox.runner import SandboxHandle
from crmsync.settings import load_settings
from crmsync.store import Store
from crmsync.store.stage_events import (
    StageEvent,
    count_stage_events,
    events_for_page,
    iter_stage_events,
    record_stage_events,
)
from crmsync.sync.runner import run_backfill, run_sync_cycle

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def deal(source_id: str, stage: str | None, *, at: dt.datetime, changed: dt.datetime | None = None,
         **kw: object) -> Deal:
    return Deal(connection="c", source_object="deals", source_id=source_id, modified_at=at,
                created_at=T0 - dt.timedelta(days=30), pipeline_id="p", stage_id=stage,
                stage_changed_at=changed, **kw)  # type: ignore[arg-type]


def apply_page(store: Store, records: list[Deal]) -> int:
    """What the engine does with a page of deals: events first, then the upsert, one transaction."""
    with store.transaction() as tx:
        added = record_stage_events(tx.conn, records)
        tx.upsert(records)
    return added


def events(store: Store) -> list[StageEvent]:
    return list(iter_stage_events(store.engine, connection="c"))


def test_first_sight_then_change_then_repull(store: Store) -> None:
    first = [deal("1", "s1", at=T0, changed=T0 - dt.timedelta(days=3)), deal("2", "s2", at=T0)]
    assert apply_page(store, first) == 2
    got = {e.deal_id: e for e in events(store)}
    assert got["1"] == StageEvent("c", "1", "p", None, "s1", T0 - dt.timedelta(days=3))
    assert got["2"].at == T0 - dt.timedelta(days=30)  # no stage_changed_at: created_at

    assert apply_page(store, first) == 0  # the same records again
    later = T0 + dt.timedelta(days=2)
    moved = [deal("1", "s2", at=later, changed=later), deal("2", "s2", at=later)]
    assert apply_page(store, moved) == 1
    assert apply_page(store, moved) == 0
    history = [e for e in events(store) if e.deal_id == "1"]
    assert [(e.from_stage_id, e.to_stage_id, e.at) for e in history] == [
        (None, "s1", T0 - dt.timedelta(days=3)), ("s1", "s2", later)]
    assert all(e.at.tzinfo is dt.UTC for e in history)


def test_stale_deleted_and_stageless_rows_make_no_event(store: Store) -> None:
    apply_page(store, [deal("1", "s1", at=T0)])
    stale = deal("1", "s9", at=T0 - dt.timedelta(hours=1))  # older than stored: the upsert ignores it
    gone = deal("2", "s1", at=T0, deleted=True)
    blank = deal("3", None, at=T0)
    with store.transaction() as tx:
        assert events_for_page(tx.conn, [stale, gone, blank]) == []


def test_change_without_stage_changed_at_uses_modified_at(store: Store) -> None:
    apply_page(store, [deal("1", "s1", at=T0)])
    later = T0 + dt.timedelta(hours=5)
    assert apply_page(store, [deal("1", "s3", at=later)]) == 1
    assert events(store)[-1].at == later


def test_duplicates_in_one_page_collapse_to_the_newest(store: Store) -> None:
    page = [deal("1", "s1", at=T0), deal("1", "s2", at=T0 + dt.timedelta(minutes=1))]
    assert apply_page(store, page) == 1
    assert events(store)[0].to_stage_id == "s2"


def test_crm_history_in_extra_is_used_and_idempotent(store: Store) -> None:
    history = [{"stage_id": "s1", "at": "2026-01-01T00:00:00Z"}, {"stage_id": "s2", "at": "2026-01-03T12:00:00+00:00"},
               {"stage_id": "s3", "at": "2026-01-04T00:00:00Z"}]
    record = deal("1", "s3", at=T0, extra={"stage_history": history})
    assert apply_page(store, [record]) == 3
    assert [(e.from_stage_id, e.to_stage_id, e.source) for e in events(store)] == [
        (None, "s1", "history"), ("s1", "s2", "history"), ("s2", "s3", "history")]
    assert apply_page(store, [dataclasses.replace(record, modified_at=T0 + dt.timedelta(days=1))]) == 0


def test_engine_records_events_on_pull(store: Store, pipedrive: SandboxHandle, tmp_path: Path) -> None:
    """Through the real sync engine over HTTP: a backfill gives every deal its history's events, a
    stage move in the CRM one more, and a sync that brings nothing new none."""
    config = pipedrive.write_config(tmp_path / "crmsync.yaml", store_url="sqlite:///unused.db")
    settings = load_settings(config)
    name = settings.connections[0].name
    for obj in OBJECTS:
        assert run_backfill(settings, store, name, obj).status == "ok"
    deals = store.count(ObjectType.DEAL, name)
    assert deals == 500
    backfilled = history_events_in(pipedrive.world)
    assert count_stage_events(store.engine, name) == backfilled

    sim = pipedrive.sims["pipedrive"]
    assert isinstance(sim, PipedriveSimulator)
    target = next(d for d in pipedrive.world.deals if not pipedrive.world.stages[d.stage].is_closed)
    before = store.get(ObjectType.DEAL, name, str(target.id))
    assert isinstance(before, Deal)
    sim.advance(3 * 86_400)
    sim.move_stage(str(target.id), "negotiation" if target.stage != 4 else "closedwon")
    run_sync_cycle(settings, store, name, objects=["deals"])
    assert count_stage_events(store.engine, name) == backfilled + 1
    last = [e for e in iter_stage_events(store.engine, connection=name) if e.deal_id == str(target.id)][-1]
    after = store.get(ObjectType.DEAL, name, str(target.id))
    assert isinstance(after, Deal)
    assert (last.from_stage_id, last.to_stage_id) == (before.stage_id, after.stage_id)
    assert last.at == after.stage_changed_at

    run_sync_cycle(settings, store, name, objects=["deals"])  # the lookback re-reads the moved deal
    assert count_stage_events(store.engine, name) == backfilled + 1
