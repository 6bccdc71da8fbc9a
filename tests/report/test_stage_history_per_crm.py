"""Stage history read from each CRM's own history API, through the sync engine over HTTP: the stored
stage events equal the world's history (stage, time and order) after a backfill, and after the
deal moves in the CRM and an incremental sync."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from report_harness import NOW

from crmsync.connectors.stage_history import COMPETITOR, LOSS_REASON
from crmsync.model import Deal, ObjectType
from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, SandboxHandle, start_sandbox
from crmsync.sandbox.salesforce.ids import make_id
from crmsync.sandbox.world import STAGES, StageDef, WDeal, World, generate_world
from crmsync.settings import Settings, load_settings
from crmsync.store import Store
from crmsync.store.stage_events import iter_stage_events
from crmsync.sync.runner import run_backfill, run_sync_cycle

DEALS = 150
SOURCE_ID: dict[str, Callable[[WDeal], str]] = {
    "salesforce": lambda d: make_id("006", d.id), "hubspot": lambda d: str(d.id), "pipedrive": lambda d: str(d.id)}
STAGE_ID: dict[str, Callable[[StageDef], str]] = {
    "salesforce": lambda s: s.label, "hubspot": lambda s: s.key, "pipedrive": lambda s: str(s.order + 1)}
OBJECTS = {"salesforce": ["owners", "stages", "accounts", "deals"],
           "hubspot": ["owners", "pipelines", "stages", "accounts", "deals"],
           "pipedrive": ["owners", "pipelines", "stages", "accounts", "deals"]}


@pytest.fixture(params=["salesforce", "hubspot", "pipedrive"])
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, SandboxHandle]]:
    system = str(request.param)
    handle = start_sandbox(systems=[system], world=generate_world(11, DEALS, now=NOW), state_dir=tmp_path / "sb")
    try:
        yield system, handle
    finally:
        handle.stop()


def world_history(world: World, system: str, deal: WDeal) -> list[tuple[str, dt.datetime]]:
    out: list[tuple[str, dt.datetime]] = []
    for stage, at in world.stage_history(deal):
        if not out or out[-1][0] != STAGE_ID[system](stage):
            out.append((STAGE_ID[system](stage), at))
    return out


def stored_history(store: Store, connection: str) -> dict[str, list[tuple[str, dt.datetime]]]:
    out: dict[str, list[tuple[str, dt.datetime]]] = {}
    for event in iter_stage_events(store.engine, connection=connection):
        out.setdefault(event.deal_id, []).append((event.to_stage_id, event.at))
    return out


def backfill(handle: SandboxHandle, system: str, store: Store, tmp_path: Path) -> tuple[Settings, str]:
    settings = load_settings(handle.write_config(tmp_path / "crmsync.yaml", store_url="sqlite:///unused.db"))
    name = CONNECTION_NAMES[system]
    assert set(OBJECTS[system]) <= set(CRM_OBJECTS[system])
    for obj in OBJECTS[system]:
        assert run_backfill(settings, store, name, obj).status == "ok", obj
    return settings, name


def test_history_matches_the_world_after_backfill_and_after_edits(
        crm: tuple[str, SandboxHandle], store: Store, tmp_path: Path) -> None:
    system, handle = crm
    world = handle.world
    settings, name = backfill(handle, system, store, tmp_path)
    stored = stored_history(store, name)
    expected = {SOURCE_ID[system](d): world_history(world, system, d) for d in world.deals}
    assert stored == expected  # every deal: same stages, same times, same order
    assert any(len(h) > 3 for h in expected.values())

    # loss reasons beside the history, as each CRM keeps them
    lost = next(d for d in world.deals if world.loss(d) is not None)
    record = store.get(ObjectType.DEAL, name, SOURCE_ID[system](lost))
    assert isinstance(record, Deal)
    reason, competitor = world.loss(lost) or ("", None)
    assert record.extra.get(LOSS_REASON) == reason
    if system != "pipedrive" and competitor is not None:  # Pipedrive keeps no competitor field
        assert record.extra.get(COMPETITOR) == competitor

    # the CRM user moves two open deals (one forward twice, one backwards); an incremental sync reads them again
    sim = handle.sims[system]
    open_deals = [d for d in world.deals if not STAGES[d.stage].is_closed and 1 <= d.stage <= 3]
    forward, backward = open_deals[0], open_deals[1]
    sim.move_stage(SOURCE_ID[system](forward), STAGES[forward.stage + 1].key)  # type: ignore[attr-defined]
    sim.move_stage(SOURCE_ID[system](forward), "closedwon")  # type: ignore[attr-defined]
    sim.move_stage(SOURCE_ID[system](backward), STAGES[backward.stage - 1].key)  # type: ignore[attr-defined]
    assert all(r.status == "ok" for r in run_sync_cycle(settings, store, name, objects=["deals"]))
    after = stored_history(store, name)
    for deal, moves in ((forward, [STAGES[forward.stage + 1], STAGES[5]]), (backward, [STAGES[backward.stage - 1]])):
        key = SOURCE_ID[system](deal)
        assert [s for s, _ in after[key]] == [s for s, _ in expected[key]] + [STAGE_ID[system](m) for m in moves]
        assert after[key][:len(expected[key])] == expected[key]
        new_times = [at for _, at in after[key][len(expected[key]):]]
        assert new_times == sorted(new_times) and new_times[0] > NOW
    untouched = {k: v for k, v in after.items() if k not in {SOURCE_ID[system](forward), SOURCE_ID[system](backward)}}
    assert untouched == {k: v for k, v in expected.items() if k in untouched}
