"""Salesforce stage history in a backfill: read in batch (three Bulk 2.0 jobs) it stores exactly what
the per-page reads by ids store, in a handful of calls instead of three queries per 200 deals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from crmsync.model import Deal, ObjectType
from crmsync.sandbox.runner import CONNECTION_NAMES, start_sandbox
from crmsync.sandbox.world import generate_world
from crmsync.settings import load_settings
from crmsync.store import Store
from crmsync.store.stage_events import iter_stage_events
from crmsync.sync.runner import run_backfill

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DEALS = 1200
JOBS = "POST /services/data/v59.0/jobs/query"
QUERY = "GET /services/data/v59.0/query/"


def stored(store: Store, connection: str) -> tuple[dict[str, list[tuple[str, dt.datetime]]], dict[str, Any]]:
    events: dict[str, list[tuple[str, dt.datetime]]] = {}
    for event in iter_stage_events(store.engine, connection=connection):
        events.setdefault(event.deal_id, []).append((event.to_stage_id, event.at))
    losses = {}
    for deal_id in events:
        record = store.get(ObjectType.DEAL, connection, deal_id)
        assert isinstance(record, Deal)
        losses[deal_id] = {k: record.extra.get(k) for k in ("loss_reason", "competitor")}
    return events, losses


def backfill(tmp_path: Path, via: str, *, edit_between: bool = False) -> tuple[Any, dict[str, int], str | None]:
    handle = start_sandbox(systems=["salesforce"], world=generate_world(13, DEALS, now=NOW),
                           state_dir=tmp_path / f"sb-{via}")
    try:
        sim = handle.sims["salesforce"]
        settings = load_settings(handle.write_config(tmp_path / f"crmsync-{via}.yaml", store_url="sqlite:///unused.db"))
        name = CONNECTION_NAMES["salesforce"]
        conn = next(c for c in settings.connections if c.name == name)
        conn.options.update({"history_via": via, "page_size": 400, "bulk_poll_seconds": 0.01})
        store = Store.open(f"sqlite:///{tmp_path / f'{via}.db'}")
        store.upgrade()
        moved = None
        for obj in ("owners", "stages", "accounts"):
            assert run_backfill(settings, store, name, obj).status == "ok"
        if edit_between:
            # a deal moved after the history jobs' snapshot but before its page is read is read by id
            moved = sim.truth("Opportunity")[-1]["Id"]
        before = sim.log.snapshot()["by_route"]
        result = run_backfill(settings, store, name, "deals")
        assert result.status == "ok" and result.complete
        after = sim.log.snapshot()["by_route"]
        calls = {route: after.get(route, 0) - before.get(route, 0) for route in after}
        return stored(store, name), calls, moved
    finally:
        handle.stop()


def test_batched_history_stores_what_the_per_page_reads_store(tmp_path: Path) -> None:
    (by_ids, ids_losses), ids_calls, _ = backfill(tmp_path, "ids")
    (batched, batched_losses), bulk_calls, _ = backfill(tmp_path, "bulk")
    assert len(by_ids) == DEALS and batched == by_ids  # same stages, times and order for every deal
    assert batched_losses == ids_losses and any(v["loss_reason"] for v in ids_losses.values())
    assert bulk_calls.get(JOBS, 0) == 3  # OpportunityHistory, OpportunityFieldHistory, loss fields
    assert ids_calls.get(JOBS, 0) == 0
    # by ids: two history queries and one loss query per 200 deals; in batch: none of them
    assert ids_calls[QUERY] - bulk_calls[QUERY] >= 2 * DEALS // 200
    jobs = sum(n for route, n in bulk_calls.items() if "/jobs/query" in route)
    assert jobs == 3 * 4  # each job: create, one poll, resultPages, one results page (whatever the deals)
    assert sum(bulk_calls.values()) < sum(ids_calls.values())


def test_a_deal_moved_after_the_history_snapshot_is_read_by_id(tmp_path: Path) -> None:
    from crmsync.connectors.salesforce import SalesforceConnector

    handle = start_sandbox(systems=["salesforce"], world=generate_world(13, 600, now=NOW), state_dir=tmp_path / "sb")
    try:
        sim = handle.sims["salesforce"]
        settings = load_settings(handle.write_config(tmp_path / "crmsync.yaml", store_url="sqlite:///unused.db"))
        conn = next(c for c in settings.connections if c.name == CONNECTION_NAMES["salesforce"])
        conn.options.update({"page_size": 200, "bulk_poll_seconds": 0.01})
        sf = SalesforceConnector(conn)
        pages = sf.pull("deals", None, backfill=True)
        first = next(pages)
        sf.stage_histories([r for r in first.records if isinstance(r, Deal)])  # the batch is read here
        seen = {r.source_id for r in first.records}
        later = next(r for r in sim.truth("Opportunity") if r["Id"] not in seen and not r["IsClosed"])
        sim.move_stage(later["Id"], "closedwon")  # after the snapshot: the batch's rows for it are stale
        before = sim.log.snapshot()["by_route"].get(QUERY, 0)
        found = None
        for page in pages:
            deals = [r for r in page.records if isinstance(r, Deal)]
            if any(d.source_id == later["Id"] for d in deals):
                found = sf.stage_histories(deals).histories[later["Id"]]
            if page.done:
                break
        sf.close()
        assert found is not None and found[-1].stage_id == "Closed Won"
        # that deal alone, by id: its OpportunityHistory and OpportunityFieldHistory (won: no loss query)
        assert sim.log.snapshot()["by_route"].get(QUERY, 0) - before == 2
    finally:
        handle.stop()
