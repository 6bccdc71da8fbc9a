"""The streamed deal facts (one pass over the store's rows) give the same figures as the facts built
from loaded records, on a store synced from the Pipedrive sandbox (its stage history included),
after some deals were deleted."""

from __future__ import annotations

from pathlib import Path

from report_harness import OBJECTS

from crmsync.model import ObjectType
from crmsync.report.deal_metrics import DIMENSIONS, deal_facts, rollup
from crmsync.report.deal_stream import iter_deal_facts
from crmsync.report.funnel_data import load_funnel_input, load_owners
from crmsync.sandbox.runner import SandboxHandle
from crmsync.settings import load_settings
from crmsync.store import Store
from crmsync.sync.runner import run_backfill


def test_streamed_facts_match_loaded_facts(store: Store, pipedrive: SandboxHandle, tmp_path: Path) -> None:
    settings = load_settings(pipedrive.write_config(tmp_path / "crmsync.yaml", store_url="sqlite:///unused.db"))
    name = settings.connections[0].name
    for obj in OBJECTS:
        assert run_backfill(settings, store, name, obj).status == "ok"
    with store.transaction() as tx:  # deleted deals keep their events: the stream must skip both
        tx.mark_deleted(ObjectType.DEAL, name, ["3", "40", "41"], pipedrive.world.now)
    owners = load_owners(store)
    loaded = rollup(deal_facts(load_funnel_input(store), owners))
    streamed = rollup(iter_deal_facts(store, owners=owners))
    assert streamed.summary() == loaded.summary()
    assert streamed.summary().deals == 497 and streamed.summary().lost > 0
    for dimension in (*DIMENSIONS, "quarter"):
        assert streamed.breakdown(dimension) == loaded.breakdown(dimension), dimension
    for by in ("stage", "competitor", "quarter", "segment", "owner"):
        assert streamed.loss_reasons(by) == loaded.loss_reasons(by), by
    assert {r.key for r in streamed.loss_reasons("stage")} <= {"Qualification", "Discovery", "Demo Scheduled",
                                                               "Proposal Sent", "Negotiation"}
